"""Faults of the transcoder (issue 13): the resume fingerprint, the environment, an early stop.

Real PyAV/FFmpeg and the shipped idsa-net-s x2 weights; tiny clips written with ``test_transcode``'s helpers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_transcode import write_video

from idsa_plugin.engine import Engine
from idsa_plugin.filters.pyav import encode_segments, fingerprint, plan_transcode


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("faults") / "clip.mkv", n=12, w=48, h=32)


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("idsa-")]


def test_resume_fingerprint_covers_backend_compile_and_precision(clip, tmp_path):
    """A resumed run must not mix segments made with another backend, torch.compile or precision."""
    plan = plan_transcode(clip, tmp_path / "out.mkv", codec="ffv1")
    variants = [{}, {"compile": True}, {"backend": "openvino"}, {"dtype": "bfloat16"}]
    engines = [Engine("idsa-net-s", scale=2, device="cpu", **{"dtype": "float32", **variant}) for variant in variants]
    keys = [fingerprint(plan.src, plan.job.settings, engine) for engine in engines]
    assert len(set(keys)) == len(variants)
    again = Engine("idsa-net-s", scale=2, device="cpu", dtype="float32")
    assert fingerprint(plan.src, plan.job.settings, again) == keys[0]  # and a rerun still resumes


def test_planning_leaves_the_environment_alone_and_the_cli_silences_svt(clip, tmp_path, monkeypatch):
    monkeypatch.delenv("SVT_LOG", raising=False)
    before = dict(os.environ)
    plan_transcode(clip, tmp_path / "av1.mkv", codec="libsvtav1")
    assert dict(os.environ) == before
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    run = subprocess.run([sys.executable, "-m", "idsa_plugin.cli", "transcode", str(clip), str(tmp_path / "av1.mkv"),
                          "--codec", "libsvtav1", "--frames", "1", "--quiet"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Svt[" not in run.stderr  # the application, not the library, sets SVT_LOG


def test_a_failing_encoder_stops_the_pipeline_at_once(clip, tmp_path):
    """The encoding thread fails while the model works on a slow batch: the transcode raises at once,
    without waiting for the model, and every pipeline thread ends once the model call returns."""
    plan = plan_transcode(clip, tmp_path / "out.mkv", codec="ffv1", segment_frames=4)
    calls: list[int] = []

    def slow_sixth_batch(batch):  # a real pre-filter; segment 0 is complete when frame 4 is encoded
        calls.append(len(calls))
        if len(calls) == 6:
            time.sleep(5)
        return batch

    failed_at: list[float] = []

    def fail(result) -> None:
        failed_at.append(time.monotonic())
        raise RuntimeError("the segment store is gone")

    engine = Engine("idsa-net-s", scale=2, device="cpu", dtype="float32", batch=1, pre=[slow_sixth_batch])
    with pytest.raises(RuntimeError, match="the segment store is gone"):
        encode_segments(plan.src, plan.segments, plan.source, plan.video, engine, tmp_path, plan.index_start, on_segment=fail)
    assert time.monotonic() - failed_at[0] < 1  # not the 5 s of the model call under way
    deadline = time.monotonic() + 8
    while pipeline_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pipeline_threads()
    assert not list(tmp_path.glob("*.part"))
