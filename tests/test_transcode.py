"""``transcode`` with real FFmpeg (PyAV) and the shipped idsa-net-s x2; Debian's ffprobe checks the outputs.

Fixtures are tiny clips written here with PyAV; the one real file is the shared Big Buck Bunny clip.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from idsa_plugin import hookimpl
from idsa_plugin.filters.pyav import TranscodeError, decode_timestamps, transcode
from idsa_plugin.plugins import get_host

HDR_PARAMS = ("log-level=error:hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
              "L(10000000,1):max-cll=1000,400")
BT2020_PQ = (1, 9, 9, 16)  # range tv, matrix bt2020nc, primaries bt2020, transfer smpte2084


# ---- fixtures ----------------------------------------------------------------------------------
def pattern(i: int, h: int, w: int, deep: bool = False) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 4 + i * 9) % 256, (y * 5 + i * 3) % 256, ((x + y) * 3 + i * 17) % 256], -1)
    return img.astype(np.uint16) * 257 if deep else img.astype(np.uint8)


def add_audio(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    cc = stream.codec_context
    size, total, t = cc.frame_size or 1024, int(seconds * cc.sample_rate), 0
    while t < total:
        n = min(size, total - t)
        wave = np.sin(2 * np.pi * 440 * np.arange(t, t + n) / cc.sample_rate)
        data = np.repeat((wave * 0.3).astype(np.float32)[None], cc.layout.nb_channels, 0) if cc.format.name == "fltp" \
            else np.ascontiguousarray(np.repeat((wave * 8000).astype(np.int16)[None], cc.layout.nb_channels, 0).T.reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(data, format=cc.format.name, layout=cc.layout)
        frame.sample_rate, frame.pts, frame.time_base = cc.sample_rate, t, Fraction(1, cc.sample_rate)
        out.mux(stream.encode(frame))
        t += n
    out.mux(stream.encode())


def write_video(path: Path, n: int = 12, w: int = 64, h: int = 48, codec: str = "libx264", pix_fmt: str = "yuv420p",
                durations: list[int] | None = None, options: dict | None = None, audio: list[tuple] = (),
                colour: tuple | None = None, rotation: int | None = None, sar: Fraction | None = None,
                extra=None) -> Path:
    """A clip of ``n`` frames (time base 1/12288, 24 fps unless ``durations``) plus audio tracks."""
    tb = Fraction(1, 12288)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=24, options={"preset": "ultrafast"} if codec == "libx264" else options or {})
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.time_base = v.codec_context.time_base = tb
        if colour:
            cc = v.codec_context
            cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = colour
        if sar:
            v.codec_context.sample_aspect_ratio = sar
        if rotation is not None:
            v.set_display_rotation(rotation)
        tracks = []
        for codec_a, rate, layout, tags in audio:
            a = out.add_stream(codec_a, rate=rate)
            a.layout = layout
            a.metadata.update(tags)
            tracks.append(a)
        if extra:
            extra(out)
        pts = 0
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(pattern(i, h, w, "10" in pix_fmt), format="rgb48le" if "10" in pix_fmt else "rgb24")
            frame = frame.reformat(format=pix_fmt)
            if colour:
                frame.color_range, frame.colorspace, frame.color_primaries, frame.color_trc = colour
            frame.pts, frame.time_base = pts, tb
            pts += durations[i] if durations else 512
            out.mux(v.encode(frame))
        out.mux(v.encode())
        for a in tracks:
            add_audio(out, a, float(pts * tb))
    return path


def subtitles_and_attachment(out: av.container.OutputContainer) -> None:
    subs = out.add_mux_stream("subrip")
    subs.time_base = Fraction(1, 1000)
    subs.metadata["language"] = "deu"
    out.add_attachment("font.ttf", "application/x-truetype-font", b"\0\1\0\0not really a font")
    out.metadata["title"] = "Fixture"
    out.set_chapters([{"id": 1, "start": 0, "end": 250, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
                      {"id": 2, "start": 250, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Two"}}])
    for start, text in ((100, "Hallo"), (300, "Welt")):
        packet = av.Packet(text.encode())
        packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = subs, Fraction(1, 1000), start, start, 150
        out.mux(packet)


def corrupt_copy(src: Path, dst: Path, bad: set[int]) -> Path:
    """``src`` with the payload of the video packets numbered in ``bad`` replaced by noise."""
    rng = np.random.default_rng(1)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0], opaque=True)
        for i, packet in enumerate(p for p in inp.demux(video=0) if p.size):
            if i in bad:
                noisy = av.Packet(bytes(packet)[:4] + rng.integers(0, 256, packet.size - 4, dtype=np.uint8).tobytes())
                noisy.pts, noisy.dts, noisy.time_base = packet.pts, packet.dts, packet.time_base
                packet = noisy
            packet.stream = stream
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    stereo = ("aac", 48000, "stereo", {"language": "eng", "title": "Main"})
    files = {
        "vfr": write_video(d / "vfr.mp4", durations=[512, 1024, 256, 512, 2048, 512, 512, 1000, 24, 512, 700, 512], audio=[stereo]),
        "hdr": write_video(d / "hdr.mkv", n=6, codec="libx265", pix_fmt="yuv420p10le", options={"x265-params": HDR_PARAMS},
                           colour=BT2020_PQ, rotation=90, sar=Fraction(4, 3)),
        "multi": write_video(d / "multi.mkv", audio=[stereo, ("flac", 44100, "mono", {"language": "fra", "title": "Commentary"})],
                             extra=subtitles_and_attachment),
        "odd": write_video(d / "odd.mkv", n=4, w=33, h=25, codec="ffv1"),
        "clean": write_video(d / "clean.mkv", n=24),
        "long": write_video(d / "long.mp4", n=48, audio=[stereo]),
    }
    files["corrupt"] = corrupt_copy(files["clean"], d / "corrupt.mkv", {8, 9, 10})
    data = files["clean"].read_bytes()
    (d / "truncated.mkv").write_bytes(data[: len(data) * 6 // 10])
    files["truncated"] = d / "truncated.mkv"
    with av.open(str(d / "audio.m4a"), "w") as out:
        add_audio(out, out.add_stream("aac", rate=48000), 0.5)
    files["audio"] = d / "audio.m4a"
    (d / "notes.txt").write_text("not a video\n")
    files["text"] = d / "notes.txt"
    return files


def ffprobe_json(ffprobe: str, path: Path, *args: str) -> dict:
    out = subprocess.run([ffprobe, "-v", "error", "-of", "json", *args, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def frame_pts(ffprobe: str, path: Path) -> list[float]:
    """Frame times in seconds (exact to the microsecond ffprobe prints)."""
    frames = ffprobe_json(ffprobe, path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")["frames"]
    return [float(f["pts_time"]) for f in frames]


def packet_hashes(ffprobe: str, path: Path, stream: str) -> list[tuple[float, str]]:
    packets = ffprobe_json(ffprobe, path, "-select_streams", stream, "-show_data_hash", "MD5",
                           "-show_entries", "packet=pts_time,data_hash")["packets"]
    return [(float(p["pts_time"]), p["data_hash"]) for p in packets]


def streams(ffprobe: str, path: Path) -> list[dict]:
    return ffprobe_json(ffprobe, path, "-show_streams")["streams"]


def framemd5(path: Path) -> list[str]:
    """Per-frame MD5 of the decoded video (Debian ffmpeg)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                         check=True, capture_output=True, text=True).stdout
    return [line.split(",")[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("IDSA_TEST_THREADS", "2"), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "idsa_plugin.cli", "transcode", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


# ---- the real file -----------------------------------------------------------------------------
def test_real_clip_first_frames(data_dir, ffprobe, tmp_path):
    """Big Buck Bunny 480p (H.264 + 5.1 AAC): x2 frames, source pts, audio copied byte for byte.

    Two frames only: 854x480 at x2 takes 10-40 s a frame on two busy CPU cores.
    """
    src, dst = data_dir / "video" / "bbb_480p_5s.mp4", tmp_path / "bbb_x2.mp4"
    summary = transcode(src, dst, frames=2)
    assert summary.frames == 2 and (summary.width, summary.height) == (1708, 960)
    out = {s["codec_type"]: s for s in streams(ffprobe, dst)}
    assert (out["video"]["width"], out["video"]["height"]) == (1708, 960)
    assert out["video"]["time_base"] == "1/12288" and out["audio"]["channels"] == 6
    assert frame_pts(ffprobe, dst) == frame_pts(ffprobe, src)[:2]
    copied = packet_hashes(ffprobe, dst, "a")
    assert copied and copied == packet_hashes(ffprobe, src, "a")[: len(copied)]
    assert all(t < 2 / 24 for t, _ in copied)
    assert abs(float(out["video"]["duration"]) - 2 / 24) <= 1 / 24


# ---- timing, colour, streams -------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    @hookimpl
    def job_started(self, job):
        self.events.append(("started", job.frames))

    @hookimpl
    def batch_done(self, job, frames):
        self.events.append(("batch", frames))

    @hookimpl
    def job_finished(self, job, summary):
        self.events.append(("finished", summary.frames))


def test_vfr_timing_audio_and_hooks(media, ffprobe, tmp_path):
    src, dst = media["vfr"], tmp_path / "vfr_x2.mp4"
    recorder = Recorder()
    get_host().manager.register(recorder, name="test-recorder")
    try:
        summary = transcode(src, dst, segment_frames=5)
    finally:
        get_host().manager.unregister(name="test-recorder")
    assert recorder.events[0] == ("started", 12) and recorder.events[-1] == ("finished", 12)
    assert sum(n for kind, n in recorder.events if kind == "batch") == 12
    assert summary.frames == 12 and summary.streams["copied"] == ["#1 audio aac (eng)"]
    assert frame_pts(ffprobe, dst) == frame_pts(ffprobe, src)  # VFR stays VFR
    vin, ain = streams(ffprobe, src)
    vout, aout = streams(ffprobe, dst)
    for key in ("time_base", "duration", "avg_frame_rate", "nb_frames"):
        assert vout[key] == vin[key], key
    assert (vout["width"], vout["height"]) == (128, 96)
    assert aout["tags"]["language"] == "eng"
    assert packet_hashes(ffprobe, dst, "a") == packet_hashes(ffprobe, src, "a")


def colour_of(stream: dict) -> tuple:
    return tuple(stream.get(k) for k in ("pix_fmt", "color_range", "color_space", "color_primaries", "color_transfer"))


def test_10bit_hdr_x265_keeps_colour_hdr_sar_rotation(media, ffprobe, tmp_path):
    src, dst = media["hdr"], tmp_path / "hdr_x2.mp4"
    transcode(src, dst, codec="libx265")
    info = ffprobe_json(ffprobe, dst, "-show_streams", "-show_frames", "-read_intervals", "%+#1")
    stream, frame = info["streams"][0], info["frames"][0]
    assert colour_of(stream) == ("yuv420p10le", "tv", "bt2020nc", "bt2020", "smpte2084")
    assert stream["sample_aspect_ratio"] == "4:3" and (stream["width"], stream["height"]) == (128, 96)
    assert any(s.get("rotation") == 90 for s in stream.get("side_data_list", []))
    side = {s["side_data_type"]: s for s in frame["side_data_list"]}
    assert side["Mastering display metadata"]["max_luminance"] == "10000000/10000"
    assert side["Content light level metadata"]["max_content"] == 1000
    assert frame_pts(ffprobe, dst) == frame_pts(ffprobe, src)


def test_10bit_default_codec_stays_10bit(media, ffprobe, tmp_path, caplog):
    dst = tmp_path / "hdr_x264.mkv"
    with caplog.at_level(logging.WARNING, logger="idsa_plugin"):
        summary = transcode(media["hdr"], dst)
    assert summary.codec == "libx264" and summary.pix_fmt == "yuv420p10le"
    assert colour_of(streams(ffprobe, dst)[0]) == ("yuv420p10le", "tv", "bt2020nc", "bt2020", "smpte2084")
    assert any("HDR10" in r.message for r in caplog.records)


def test_mkv_keeps_every_stream_tag_and_chapter(media, ffprobe, tmp_path):
    src, dst = media["multi"], tmp_path / "multi_x2.mkv"
    transcode(src, dst, segment_frames=4)
    info = ffprobe_json(ffprobe, dst, "-show_streams", "-show_chapters", "-show_format")
    kinds = [(s["codec_type"], s["codec_name"], s.get("tags", {}).get("language"), s.get("tags", {}).get("title"))
             for s in info["streams"]]
    assert kinds == [("video", "h264", None, None), ("audio", "aac", "eng", "Main"), ("audio", "flac", "fra", "Commentary"),
                     ("subtitle", "subrip", "deu", None), ("attachment", "ttf", None, None)]
    assert info["streams"][4]["tags"]["filename"] == "font.ttf"
    assert [c["tags"]["title"] for c in info["chapters"]] == ["One", "Two"]
    assert info["format"]["tags"]["title"] == "Fixture"
    for index in ("a:0", "a:1", "s"):
        assert packet_hashes(ffprobe, dst, index) == packet_hashes(ffprobe, src, index)
    assert frame_pts(ffprobe, dst) == frame_pts(ffprobe, src)


def test_mov_reencodes_audio_it_cannot_hold_and_drops_the_rest(media, ffprobe, tmp_path, caplog):
    dst = tmp_path / "multi_x2.mov"
    with caplog.at_level(logging.WARNING, logger="idsa_plugin"):
        summary = transcode(media["multi"], dst)
    assert summary.streams == {"copied": ["#1 audio aac (eng)"], "reencoded": ["#2 audio flac (fra)"],
                               "dropped": ["#3 subtitle subrip (deu)", "#4 attachment font.ttf"]}
    assert any("re-encoded to aac" in r.message for r in caplog.records)
    audio = [s for s in streams(ffprobe, dst) if s["codec_type"] == "audio"]
    assert [(s["codec_name"], s["tags"]["language"]) for s in audio] == [("aac", "eng"), ("aac", "fra")]
    # in sync with the 0.5 s of FLAC it came from (AAC frame size aside)
    assert abs(float(audio[1]["start_time"])) < 0.03 and abs(float(audio[1]["duration"]) - 0.5) < 0.03


def test_odd_size_at_x3_crops_one_pixel(media, imdn_weights, ffprobe, tmp_path):
    dst = tmp_path / "odd_x3.mkv"
    transcode(media["odd"], dst, scale=3, model="imdn", weights=imdn_weights(3))
    (stream,) = streams(ffprobe, dst)
    assert (stream["width"], stream["height"], stream["pix_fmt"]) == (98, 74, "yuv420p")  # 99x75 cropped to even


def test_selection_keeps_source_timestamps(media, ffprobe, tmp_path):
    src, dst = media["multi"], tmp_path / "part.mkv"
    summary = transcode(src, dst, start=0.1, frames=5)  # frames 3-7: 0.125 s up to 0.333 s
    assert summary.frames == 5
    assert frame_pts(ffprobe, dst) == frame_pts(ffprobe, src)[3:8]
    kept = packet_hashes(ffprobe, dst, "a:0")
    assert kept and kept == [p for p in packet_hashes(ffprobe, src, "a:0") if 0.125 <= p[0] < 1 / 3]
    assert packet_hashes(ffprobe, dst, "s") == packet_hashes(ffprobe, src, "s")[1:]  # the one at 0.1 s is outside
    assert [c["tags"]["title"] for c in ffprobe_json(ffprobe, dst, "-show_chapters")["chapters"]] == ["One", "Two"]


def test_decode_timestamps_are_valid_across_segments():
    pts = [0, 3, 1, 2, 4, 7, 5, 6, 8]  # decode order of two B-frame GOPs
    dts = decode_timestamps(pts, end=9)
    assert all(a < b for a, b in zip(dts, dts[1:])) and all(d <= p for d, p in zip(dts, pts))
    assert dts[-1] + 1 - dts[0] >= 9  # a dts-based track length covers the presentation


# ---- interruption and resume -------------------------------------------------------------------
def test_sigint_leaves_nothing_and_resume_matches_an_uninterrupted_run(tmp_path):
    # frames large enough (256x192) that the run is still going when the first segment is recorded
    src = write_video(tmp_path / "long.mp4", n=48, w=256, h=192, audio=[("aac", 48000, "stereo", {"language": "eng"})])
    dst = tmp_path / "long_x2.mkv"
    reference = tmp_path / "reference.mkv"
    transcode(src, reference, codec="ffv1")
    args = (str(src), str(dst), "--codec", "ffv1", "--segment-frames", "4", "--resume", "--quiet")
    state = tmp_path / f".{dst.name}.resume" / "state.json"
    proc = cli(*args)
    deadline = time.monotonic() + 120
    while not (state.exists() and json.loads(state.read_text())["segments"]) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not dst.exists() and not list(tmp_path.glob(".long_x2*.part*"))
    done = json.loads(state.read_text())["segments"]
    assert 0 < len(done) < 12 and all(s["frames"] == 4 for s in done)

    proc = cli(*args, "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["frames"] == 48 and summary["resumed_frames"] == 4 * len(done)
    assert framemd5(dst) == framemd5(reference)
    assert not state.parent.exists()


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, extra, message", [
    ("missing", (), "no such file"),
    ("text", (), "not a media file"),
    ("audio", (), "no video stream"),
    ("truncated", (), "truncated"),
    ("corrupt", (), "corrupt or truncated video near"),
    ("clean", ("--codec", "nosuchcodec"), "unknown encoder"),
    ("clean", ("--codec", "libsvtav1", "--pix-fmt", "yuv444p"), "cannot encode pixel format"),
    ("clean", ("--codec", "ffv1", "--crf", "10"), "ffv1 takes no option 'crf'"),
    ("same", (), "the output is the input"),
    ("exists", (), "exists"),
    ("clean", ("--start", "60"), "holds no video frame"),
])
def test_errors_are_one_line(media, tmp_path, case, extra, message):
    src = {"missing": tmp_path / "missing.mp4", "same": media["clean"], "exists": media["clean"]}.get(case) or media[case]
    dst = {"same": src, "exists": media["vfr"]}.get(case, tmp_path / "out.mkv")
    before = sorted(tmp_path.iterdir())
    proc = cli(str(src), str(dst), *extra)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("idsa-sr transcode: error:") and message in lines[0], err
    assert sorted(tmp_path.iterdir()) == before  # no output, no temporary file, no work folder


def test_skip_drops_and_counts_bad_frames(media, ffprobe, tmp_path):
    summary = transcode(media["corrupt"], tmp_path / "skipped.mkv", on_error="skip")
    assert summary.decode_errors >= 1 and summary.frames + summary.decode_errors <= 24 and summary.frames >= 18
    assert len(frame_pts(ffprobe, tmp_path / "skipped.mkv")) == summary.frames


def test_unknown_container_and_overwrite(media, tmp_path):
    with pytest.raises(TranscodeError, match="unknown output container"):
        transcode(media["clean"], tmp_path / "out.xyz")
    target = tmp_path / "out.mkv"
    target.write_bytes(b"old")
    transcode(media["odd"], target, overwrite=True, codec="ffv1")
    assert target.stat().st_size > 3


def test_disk_full_is_a_clear_error(media, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        with pytest.raises(TranscodeError, match="disk full"):
            transcode(media["long"], mount / "full.mkv", codec="ffv1", pix_fmt="yuv444p")
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_compile_gives_the_eager_frames(media, tmp_path):
    """`--compile` runs torch.compile in the engine's inference thread and decodes to the eager frames.

    In float32: the automatic precision is bf16 on CPUs with AMX, whose rounding differs between fused and eager kernels."""
    eager, compiled = tmp_path / "eager.mkv", tmp_path / "compiled.mkv"
    transcode(media["odd"], eager, codec="ffv1", dtype="float32")
    proc = cli(str(media["odd"]), str(compiled), "--codec", "ffv1", "--compile", "--dtype", "float32", "--quiet",
               env={"TORCH_LOGS": "dynamo"})
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "torchdynamo" in err.lower()  # the model really went through torch.compile

    def frames(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)])

    a, b = frames(eager), frames(compiled)
    assert a.shape == b.shape == (4, 50, 66, 3)
    assert np.abs(a - b).max() <= 1
