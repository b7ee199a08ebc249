"""``batch_transcode`` and ``idsa-sr batch`` on a real local Ray runtime with two CPU workers and real FFmpeg.

Every output is checked against single-process ``transcode`` of the same clip with ffv1 (lossless):
identical decoded frames, frame times, stream layout and other streams packet for packet. Clips are
tiny (64x48) so the file runs in a couple of minutes on two busy cores.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'idsa-plugin[ray]'): the Ray batch runner is untested")

from test_transcode import (ffprobe_json, frame_pts, framemd5, packet_hashes,  # noqa: E402
                            subtitles_and_attachment, write_video)

from idsa_plugin.filters.pyav import TranscodeError, plan_transcode, transcode  # noqa: E402
from idsa_plugin.filters.ray_batch import (RAY_MISSING, TOKEN_FILE, BatchEvent, SegmentWorker, VideoTask,  # noqa: E402
                                           batch_transcode, cluster, targets)

SEGMENT = 4 / 24  # seconds: 4 frames at the clips' 24 fps
STEREO = ("aac", 48000, "stereo", {"language": "eng", "title": "Main"})
LONG_SEGMENTS = 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A small library: a long clip (10 segments) and three short ones with audio, subtitles, VFR."""
    d = tmp_path_factory.mktemp("library")
    write_video(d / "long.mp4", n=4 * LONG_SEGMENTS, audio=[STEREO])
    write_video(d / "multi.mkv", n=8, audio=[STEREO], extra=subtitles_and_attachment)
    write_video(d / "plain.mkv", n=6)
    write_video(d / "vfr.mp4", durations=[512, 1024, 256, 512, 2048, 512, 512, 1000, 24, 512, 700, 512], audio=[STEREO])
    return d


@pytest.fixture(scope="module")
def references(clips, tmp_path_factory) -> dict[str, Path]:
    """Single-process ``transcode`` of every clip (default segments, ffv1)."""
    out = tmp_path_factory.mktemp("reference")
    for clip in sorted(clips.iterdir()):
        transcode(clip, out / clip.name, codec="ffv1")
    return {p.name: p for p in out.iterdir()}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray runtime (2 CPUs) for the in-process tests; ``batch_transcode`` uses it as it finds it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def described(ffprobe: str, path: Path) -> dict:
    """Streams, chapters and container tags as ffprobe reports them, less the file name and the video's
    byte counts (ffv1 packs other segment lengths into other bytes, decoding to the same frames)."""
    info = ffprobe_json(ffprobe, path, "-show_streams", "-show_chapters", "-show_format")
    for key in ("filename", "size", "bit_rate"):
        info["format"].pop(key, None)
    info["streams"][0].pop("bit_rate", None)
    return info


def assert_same(ffprobe: str, out: Path, ref: Path) -> None:
    assert framemd5(out) == framemd5(ref), out.name
    assert frame_pts(ffprobe, out) == frame_pts(ffprobe, ref), out.name
    info = described(ffprobe, out)
    assert info == described(ffprobe, ref), out.name
    for stream in info["streams"]:
        if stream["codec_type"] in ("audio", "subtitle"):
            index = str(stream["index"])
            assert packet_hashes(ffprobe, out, index) == packet_hashes(ffprobe, ref, index), (out.name, index)


def run_batch(inputs: list[Path], out: Path, **kw) -> tuple:
    events: list[BatchEvent] = []
    on_event = kw.pop("on_event", None)

    def record(event: BatchEvent) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event, events)

    summary = batch_transcode(inputs, out, codec="ffv1", workers=2, segment_seconds=SEGMENT, on_event=record, **kw)
    return summary, events


def test_library_matches_single_process_transcode(clips, references, local_ray, ffprobe, tmp_path):
    summary, events = run_batch([clips, clips / "missing.mkv"], tmp_path)
    assert [v.error for v in summary.failed] == [f"{clips / 'missing.mkv'}: no such file"]  # the others go on
    assert not summary.skipped and len(summary.videos) == 5
    # --segment-seconds counts frames at each clip's average rate: 24 fps (4 frames), the VFR clip 18 fps (3 frames)
    assert summary.segments == LONG_SEGMENTS + 2 + 2 + 4 and summary.frames == 40 + 8 + 6 + 12 and summary.retries == 0
    assert len(summary.workers) == 2 and all(w.device == "cpu" for w in summary.workers)
    long_segments = [e for e in events if e.kind == "segment" and e.video.endswith("long.mp4")]
    assert sorted(e.segment for e in long_segments) == list(range(LONG_SEGMENTS))
    assert {e.worker for e in long_segments} == {0, 1}  # one video, both workers
    for name, ref in references.items():
        assert_same(ffprobe, tmp_path / name, ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(references)  # no work folder, no temporary file


def test_a_killed_worker_loses_nothing(clips, references, local_ray, ffprobe, tmp_path):
    """SIGKILL a worker as it receives segment 4: the segment goes to the live worker, Ray restarts the dead one.

    The work folder's token is removed first, so the workers act as if on hosts without the shared
    folder: segments come back as bytes and the driver writes them.
    """
    killed: list[BatchEvent] = []

    def kill(event: BatchEvent, events: list[BatchEvent]) -> None:
        if event.kind == "worker":
            (tmp_path / ".long.mp4.resume" / TOKEN_FILE).unlink(missing_ok=True)
        if event.kind == "dispatch" and event.segment == 4 and not killed:
            os.kill(event.pid, signal.SIGKILL)
            killed.append(event)

    summary, events = run_batch([clips / "long.mp4"], tmp_path, on_event=kill)
    assert killed and not summary.failed and summary.retries == 1
    (retry,) = [e for e in events if e.kind == "retry"]
    assert (retry.segment, retry.worker) == (4, killed[0].worker)
    (done,) = [e for e in events if e.kind == "segment" and e.segment == 4]
    assert done.pid != killed[0].pid
    assert_same(ffprobe, tmp_path / "long.mp4", references["long.mp4"])
    assert [p.name for p in tmp_path.iterdir()] == ["long.mp4"]


def decoded(path: Path) -> list[tuple[int, bytes]]:
    """Every video frame's pts and pixels, decoded with PyAV."""
    import av

    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray(format="rgb24").tobytes()) for f in container.decode(video=0)]


def test_a_worker_that_restarts_unable_to_answer_is_set_aside(clips, references, local_ray, tmp_path, monkeypatch, caplog):
    """Fault 5: a killed worker comes back from Ray's restart with an ``info()`` that raises (a RayTaskError):
    the batch goes on with the other worker instead of failing with an AttributeError.

    The workers are a subclass whose restarted incarnation fails in ``info()``, and whose live one
    waits for that restart before encoding on (so the answer comes while there is work); all else is real.
    """
    restarted, came_back = tmp_path / "restarted", tmp_path / "came-back"

    class BrokenAfterRestart(SegmentWorker):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            self.restarted = restarted.exists()
            if self.restarted:
                came_back.touch()

        def info(self):
            if self.restarted:
                raise RuntimeError("the device is gone")
            return super().info()

        def encode(self, task, segment):
            deadline = time.monotonic() + 120
            while restarted.exists() and not came_back.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return super().encode(task, segment)

    monkeypatch.setattr(cluster, "SegmentWorker", BrokenAfterRestart)
    killed: list[BatchEvent] = []

    def kill(event: BatchEvent, events: list[BatchEvent]) -> None:
        if event.kind == "dispatch" and event.segment == 4 and not killed:
            restarted.touch()
            os.kill(event.pid, signal.SIGKILL)
            killed.append(event)

    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="idsa_plugin"):
        summary, events = run_batch([clips / "long.mp4"], out, on_event=kill)
    assert killed and not summary.failed and summary.retries == 1
    # Whether the driver asks the restarted worker before the survivor finishes is a race (seen both ways in
    # clean-clone runs): when it does, the answer must be logged and the worker set aside, never an AttributeError.
    asked = [r for r in caplog.records if "restarted but cannot answer" in r.getMessage()]
    assert all("the device is gone" in r.getMessage() for r in asked)
    after = events[events.index(killed[0]):]
    assert not [e for e in after if e.kind == "worker"]  # the broken one never rejoined
    assert {e.worker for e in after if e.kind == "segment"} == {1 - killed[0].worker}
    assert decoded(out / "long.mp4") == decoded(references["long.mp4"])


def test_a_worker_without_the_work_folder_returns_bytes(clips, tmp_path):
    plan = plan_transcode(clips / "plain.mkv", tmp_path / "plain.mkv", codec="ffv1", segment_frames=3)
    worker = SegmentWorker("idsa-net-s", {"scale": 2, "device": "cpu"}, threads=torch.get_num_threads())
    work = tmp_path / "work"
    work.mkdir()
    (work / TOKEN_FILE).write_text("ours")
    task = VideoTask(str(plan.src.resolve()), plan.source, plan.video, plan.index_start, "fail", str(work), "ours")
    shared = worker.encode(task, plan.segments[0])
    assert shared.data is None and shared.result.frames == 3 and (work / shared.result.file).is_file()
    elsewhere = worker.encode(dataclasses.replace(task, token="another host's"), plan.segments[1])
    assert elsewhere.data and elsewhere.result.frames == 3 and not (work / elsewhere.result.file).exists()
    assert sorted(p.name for p in work.iterdir()) == [TOKEN_FILE, shared.result.file]


class Interrupt(Exception):
    pass


def test_interrupted_batch_resumes_from_the_cli_and_a_rerun_skips(clips, references, local_ray, ffprobe, tmp_path):
    def interrupt(event: BatchEvent, events: list[BatchEvent]) -> None:
        long_done = sum(1 for e in events if e.kind == "segment" and e.video.endswith("long.mp4"))
        if long_done >= 3 and any(e.kind == "video" for e in events):
            raise Interrupt

    inputs = [clips / "plain.mkv", clips / "long.mp4"]
    with pytest.raises(Interrupt):
        run_batch(inputs, tmp_path, on_event=interrupt)
    assert (tmp_path / "plain.mkv").is_file() and not (tmp_path / "long.mp4").exists()
    assert not list(tmp_path.glob(".long*.part*"))  # nothing partial at an output path
    done = json.loads((tmp_path / ".long.mp4.resume" / "state.json").read_text())["segments"]
    assert 3 <= len(done) < LONG_SEGMENTS

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "idsa_plugin.cli", "batch", *map(str, inputs), "-o", str(tmp_path),
                           "--codec", "ffv1", "--workers", "2", "--segment-seconds", str(SEGMENT), "--json", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["skipped"] == [str(tmp_path / "plain.mkv")]
    assert summary["resumed_segments"] == len(done) and summary["segments"] == LONG_SEGMENTS - len(done)
    assert summary["videos"][0]["resumed_frames"] == 4 * len(done) and summary["videos"][0]["frames"] == 40
    for name in ("plain.mkv", "long.mp4"):
        assert_same(ffprobe, tmp_path / name, references[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "plain.mkv"]

    again = batch_transcode(inputs, tmp_path, codec="ffv1", segment_seconds=SEGMENT)
    assert again.skipped == [str(tmp_path / "plain.mkv"), str(tmp_path / "long.mp4")] and not again.videos
    assert not again.workers  # nothing to do: no worker started


def test_outputs_are_named_after_inputs_and_never_shared(clips, tmp_path):
    out = tmp_path / "out"
    assert targets([clips / "plain.mkv", clips / "plain.mkv"], out) == [(clips / "plain.mkv", out / "plain.mkv")]
    assert [dst for _, dst in targets([clips], out, ext="mkv")] == [out / n for n in ("long.mkv", "multi.mkv", "plain.mkv", "vfr.mkv")]
    copy = tmp_path / "elsewhere" / "plain.mkv"
    copy.parent.mkdir()
    copy.write_bytes((clips / "plain.mkv").read_bytes())
    with pytest.raises(TranscodeError, match="plain.mkv would both be written to"):
        batch_transcode([clips / "plain.mkv", copy], out)
    with pytest.raises(TranscodeError, match="the output would replace the input"):
        batch_transcode([copy], copy.parent)
    out.mkdir()
    (out / "earlier.mkv").write_bytes(b"")  # an output of a run over tmp_path: not an input
    assert targets([tmp_path], out) == [(copy, out / "elsewhere" / "plain.mkv")]


def test_without_ray_the_message_is_one_line(clips, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(TranscodeError) as info:
        batch_transcode([clips / "plain.mkv"], tmp_path)
    assert str(info.value) == RAY_MISSING and "\n" not in RAY_MISSING
