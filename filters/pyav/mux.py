"""Concatenating the segments and muxing them with every other stream of the source."""
from __future__ import annotations

import heapq
import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np

from .errors import TranscodeError
from .plan import header_error
from .probe import SourceVideo, open_input

log = logging.getLogger("idsa_plugin")

READ_PAST = 10  # seconds demuxed past the end of a selection for interleaved streams
_STALE_TAGS = {"duration", "encoder", "bps", "number_of_frames", "number_of_bytes", "major_brand", "minor_version", "compatible_brands"}
Window = tuple[Fraction | None, Fraction | None]  # a selection in seconds (None: open)


def decode_timestamps(pts: Sequence[int], end: int) -> np.ndarray:
    """Strictly increasing dts for packets with these (unique) pts in decode order; ``end`` is where the last frame ends.

    With D the largest number of places a packet comes before its presentation rank, the g-th
    packet gets the (g - D)-th presentation timestamp, which never exceeds its own pts; the first
    D mirror the next ones below the first pts. Works across segment boundaries, CFR or VFR. The
    first dts is lowered when needed so that a dts-based track length (MP4: last dts + its
    duration - first dts) covers the whole presentation.
    """
    pts = np.asarray(pts, dtype=np.int64)
    order = np.sort(pts)
    rank = np.searchsorted(order, pts)
    g = np.arange(len(pts))
    delay = int(max(0, (g - rank).max(initial=0)))
    dts = np.where(g >= delay, order[np.maximum(g - delay, 0)], 2 * order[0] - order[np.clip(delay - g, 0, len(pts) - 1)])
    last_duration = (order[rank[-1] + 1] if rank[-1] + 1 < len(order) else end) - pts[-1]
    dts[0] = min(dts[0], dts[-1] + last_duration - (end - order[0]))
    return dts


def _segment_pts(files: Sequence[Path]) -> tuple[list[int], Fraction]:
    """Every video packet's pts in decode order, and the segments' time base; the segments must agree on their settings."""
    pts: list[int] = []
    extradata = None
    for path in files:
        with av.open(str(path)) as seg:
            video = seg.streams.video[0]
            time_base = Fraction(video.time_base)
            if extradata is not None and video.codec_context.extradata != extradata:
                raise TranscodeError(f"{path.name} was encoded with other settings than the segments before it; delete the work folder")
            extradata = video.codec_context.extradata
            pts.extend(p.pts for p in seg.demux(video) if p.size)
    return pts, time_base


def video_packets(files: Sequence[Path], stream: av.VideoStream, end: Fraction) -> Iterator[av.Packet]:
    """The segments' packets in order for ``stream``, with fresh dts, each frame lasting until the
    next one and the last until ``end`` (seconds)."""
    pts, time_base = _segment_pts(files)
    end_pts = round(end / time_base)
    dts = decode_timestamps(pts, end_pts)
    order = np.sort(np.asarray(pts, dtype=np.int64))
    durations = np.diff(order, append=end_pts)
    g = 0
    for path in files:
        with av.open(str(path)) as seg:
            for packet in seg.demux(seg.streams.video[0]):
                if packet.size:
                    packet.dts, packet.duration = int(dts[g]), int(durations[np.searchsorted(order, packet.pts)])
                    packet.stream = stream
                    g += 1
                    yield packet


def _tags(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata without the tags that describe the old file (durations, statistics, encoder)."""
    return {k: v for k, v in metadata.items()
            if k.lower().split("-")[0] not in _STALE_TAGS and not k.lower().startswith("_statistics")}


@dataclass
class MuxReport:
    """What happened to the other streams."""

    copied: list[str] = field(default_factory=list)
    reencoded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _describe(stream: av.stream.Stream) -> str:
    if stream.type == "attachment":
        return f"#{stream.index} attachment {stream.metadata.get('filename', '')}".rstrip()
    lang = stream.metadata.get("language")
    return f"#{stream.index} {stream.type} {stream.codec_context.codec.canonical_name}" + (f" ({lang})" if lang else "")


class _AudioReencoder:
    """Decodes one audio stream and encodes it with an encoder the output container takes."""

    def __init__(self, source: av.AudioStream, target: av.AudioStream) -> None:
        self.source, self.target = source, target

    def packets(self, packet: av.Packet | None) -> list[av.Packet]:
        """Encoded packets for one source packet (None: flush both codecs)."""
        out: list[av.Packet] = []
        for frame in self.source.decode(packet):
            out.extend(self.target.encode(frame))
        if packet is None:
            out.extend(self.target.encode(None))
        return out


Mapping = dict[int, tuple[av.stream.Stream, _AudioReencoder | None]]


def _add_audio_encoder(container: av.container.OutputContainer, source: av.AudioStream, codec: str) -> av.AudioStream:
    rate = source.codec_context.sample_rate
    if codec in ("libopus", "opus"):
        rate = min((r for r in (8000, 12000, 16000, 24000, 48000) if r >= rate), default=48000)
    stream = container.add_stream(codec, rate=rate)
    stream.layout = source.codec_context.layout
    return stream


def _audio_reencoder(out: av.container.OutputContainer, stream: av.AudioStream) -> _AudioReencoder | None:
    """An AAC (else Opus) re-encoder into ``out`` for an audio stream it cannot copy; None when it takes neither."""
    fmt = out.format.name
    codec = next((c for c in ("aac", "libopus", "opus") if c in av.codecs_available
                  and header_error(fmt, lambda o: _add_audio_encoder(o, stream, c)) is None), None)
    return None if codec is None else _AudioReencoder(stream, _add_audio_encoder(out, stream, codec))


def _plan_streams(inp: av.container.InputContainer, out: av.container.OutputContainer, video_index: int,
                  report: MuxReport) -> Mapping:
    """Output streams for every stream but the upscaled video: copied, re-encoded audio, or dropped."""
    mapping: Mapping = {}
    fmt = out.format.name
    for stream in inp.streams:
        if stream.index == video_index:
            continue
        what = _describe(stream)
        reencoder = None
        if header_error(fmt, lambda c: c.add_stream_from_template(stream, opaque=True)) is None:
            target = out.add_stream_from_template(stream, opaque=True)
            report.copied.append(what)
        elif stream.type == "audio" and (reencoder := _audio_reencoder(out, stream)) is not None:
            target = reencoder.target
            report.reencoded.append(what)
            log.warning("%s: %s cannot store it: re-encoded to %s", what, fmt, target.codec_context.name)
        else:
            report.dropped.append(what)
            log.warning("%s: %s takes neither it nor AAC/Opus: dropped" if stream.type == "audio"
                        else "%s: %s cannot store it: dropped (.mkv keeps it)", what, fmt)
            continue
        target.metadata.update(_tags(stream.metadata))
        target.disposition = stream.disposition
        mapping[stream.index] = (target, reencoder)
    return mapping


def _other_packets(inp: av.container.InputContainer, mapping: Mapping, window: Window) -> Iterator[av.Packet]:
    """The other streams' packets that start inside ``window`` (seconds, None: open), copied or re-encoded."""
    streams = [inp.streams[i] for i in mapping if inp.streams[i].type != "attachment"]
    if not streams:
        return
    t0, t1 = window
    if t0 is not None:
        inp.seek(max(0, int((t0 - 1) * av.time_base)), backward=True)
    for packet in inp.demux(*streams):
        if not packet.size:
            continue
        when = packet.pts if packet.pts is not None else packet.dts
        t = when * Fraction(packet.time_base) if when is not None else None
        if t is not None and t1 is not None and t >= t1 + READ_PAST:
            break
        if t is not None and ((t0 is not None and t < t0) or (t1 is not None and t >= t1)):
            continue
        target, reencoder = mapping[packet.stream.index]
        if reencoder is None:
            packet.stream = target
            yield packet
        else:
            yield from reencoder.packets(packet)
    for _, reencoder in mapping.values():
        if reencoder is not None:
            yield from reencoder.packets(None)


def _when(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None else 0.0


def _add_upscaled_stream(out: av.container.OutputContainer, inp: av.container.InputContainer, first_segment: Path,
                         source: SourceVideo) -> av.VideoStream:
    """The output's video stream: the segments' codec, the source's time base, tags, disposition and rotation."""
    with av.open(str(first_segment)) as first:
        video = out.add_stream_from_template(first.streams.video[0], opaque=True)
    video.time_base = source.time_base
    src_video = inp.streams[source.index]
    video.metadata.update(_tags(src_video.metadata))
    video.disposition = src_video.disposition
    if video.codec_context.name == "hevc" and out.format.name in ("mp4", "mov"):
        video.codec_tag = "hvc1"
    if source.display_matrix is not None:
        video.set_display_matrix(source.display_matrix)
    return video


def mux(src: str | os.PathLike, dst: str | os.PathLike, files: Sequence[Path], source: SourceVideo, end: Fraction,
        window: Window = (None, None)) -> MuxReport:
    """Write ``dst``: the segments' video (its last frame ending at ``end`` seconds) plus every other
    stream of ``src`` that starts inside ``window`` (seconds, None: open)."""
    report = MuxReport()
    with open_input(src) as inp, av.open(str(dst), "w") as out:
        out.metadata.update(_tags(inp.metadata))
        video = _add_upscaled_stream(out, inp, files[0], source)
        mapping = _plan_streams(inp, out, source.index, report)
        t0, t1 = window
        chapters = [c for c in inp.chapters()
                    if (t1 is None or c["start"] * Fraction(c["time_base"]) < t1) and (t0 is None or c["end"] * Fraction(c["time_base"]) > t0)]
        if chapters:
            out.set_chapters(chapters)
        for packet in heapq.merge(video_packets(files, video, end), _other_packets(inp, mapping, window), key=_when):
            out.mux(packet)
    return report
