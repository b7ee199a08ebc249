"""The VapourSynth filter on a real core and through a real vspipe: no mocks, small frames."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

vs = pytest.importorskip("vapoursynth")

from idsa_plugin import hookimpl  # noqa: E402
from idsa_plugin.engine import Engine  # noqa: E402
from idsa_plugin.filters.vapoursynth import FilterJob, FilterSummary, upscale  # noqa: E402
from idsa_plugin.plugins import get_host  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
core = vs.core


def pattern(frames: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth, moving (3, H, W) float32 RGB images in [0, 1], unlike from frame to frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for n in range(frames):
        planes = [0.5 + 0.4 * np.sin(x / (3 + c) + y / (5 - c) + n + 2 * c) * np.cos(y / 7 - n / 2) for c in range(3)]
        out.append(np.stack(planes).astype(np.float32))
    return out


def clip_from(images: list[np.ndarray]) -> vs.VideoNode:
    """An RGBS clip of planar float32 images."""
    _, height, width = images[0].shape
    blank = core.std.BlankClip(format=vs.RGBS, width=width, height=height, length=len(images), keep=True)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[...] = images[n][p]
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def tagged(clip: vs.VideoNode, fmt: int) -> vs.VideoNode:
    """``clip`` converted to ``fmt`` (BT.709 for YUV and GRAY) with SAR, scene-change and user props."""
    family = core.get_video_format(fmt).color_family
    converted = core.resize.Bicubic(clip, format=fmt, **({} if family == vs.RGB else {"matrix_s": "709"}))
    return converted.std.SetFrameProps(_SARNum=4, _SARDen=3, _SceneChangePrev=1, Title="bunny")


def planes(frame: vs.VideoFrame) -> np.ndarray:
    """A frame's planes as float64 (sizes must agree, so only for unsubsampled formats)."""
    return np.stack([np.asarray(frame[p], dtype=np.float64) for p in range(frame.format.num_planes)])


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * np.log10(peak * peak / mse)


def test_matches_the_bare_engine(model_x2) -> None:
    images = pattern(4, 32, 48)
    expected = Engine(model_x2, scale=2, batch=1, output_bits=32).upscale_batch(images, planar=True)  # RGBS out: 32
    for batch in (1, 3):
        out = upscale(clip_from(images), model=model_x2, batch=batch)
        assert (out.format.id, out.width, out.height, out.num_frames) == (vs.RGBS, 96, 64, 4)
        for n, frame in enumerate(out.frames()):
            np.testing.assert_allclose(planes(frame), expected[n], atol=1e-4)


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.YUV420P10, vs.YUV444PS, vs.GRAY8, vs.RGB24, vs.RGBS],
                         ids=lambda f: vs.PresetVideoFormat(f).name)
def test_formats_props_and_size(model_x2, fmt: int) -> None:
    src = tagged(clip_from(pattern(3, 32, 48)).std.AssumeFPS(fpsnum=30000, fpsden=1001), fmt)
    out = upscale(src, model=model_x2)
    assert (out.format.id, out.width, out.height, out.num_frames, out.fps) == (fmt, 96, 64, 3, src.fps)
    as_rgb = {} if src.format.color_family != vs.YUV else {"matrix_in_s": "709"}
    bicubic = core.resize.Bicubic(src, 96, 64, format=vs.RGBS if fmt != vs.GRAY8 else vs.GRAYS, **as_rgb)
    reference = core.resize.Bicubic(out, format=bicubic.format.id, **as_rgb)
    for n in range(3):
        props = out.get_frame(n).props
        assert (props["_DurationNum"], props["_DurationDen"]) == (1001, 30000)
        assert (props["_SARNum"], props["_SARDen"], props["_SceneChangePrev"]) == (4, 3, 1)
        assert props["Title"] == "bunny"
        if src.format.color_family == vs.YUV:
            assert props["_Matrix"] == 1
        # a smooth picture: super-resolution stays close to bicubic, so the colours came back right
        assert psnr(planes(reference.get_frame(n)), planes(bicubic.get_frame(n))) > 40


@pytest.mark.parametrize("threads", [1, 2])
def test_any_request_order(model_x2, threads: int) -> None:
    src = tagged(clip_from(pattern(5, 32, 32)), vs.YUV420P8)
    order = [3, 0, 4, 2, 1]

    def fresh() -> vs.VideoNode:
        return upscale(src, model=model_x2, batch=3)

    def planes_of(frame: vs.VideoFrame) -> list[np.ndarray]:
        return [np.asarray(frame[p], dtype=np.int32) for p in range(3)]

    previous = core.num_threads
    core.num_threads = threads
    try:
        sequential = [planes_of(f) for f in fresh().frames()]
        backwards = [planes_of(f) for f in fresh().std.Reverse().frames()][::-1]
        shuffled = fresh()
        random = dict(zip(order, (planes_of(f) for f in core.std.Splice([shuffled[n] for n in order]).frames())))
        single = planes_of(fresh()[4].get_frame(0))
    finally:
        core.num_threads = previous
    # batches of other frames may round a sample the other way: one code value at most
    for n, expected in enumerate(sequential):
        for got in (backwards[n], random[n]) + ((single,) if n == 4 else ()):
            assert all(np.abs(g - e).max() <= 1 for g, e in zip(got, expected))


def test_clear_errors(model_x2) -> None:
    rgb = clip_from(pattern(1, 16, 16))
    for props in ({"_Matrix": 2}, {}):
        yuv = core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix_s="709").std.RemoveFrameProps("_Matrix")
        out = upscale(yuv.std.SetFrameProps(**props) if props else yuv, model=model_x2)  # frame tags: read per frame
        with pytest.raises(vs.Error, match="matrix="):
            out.get_frame(0)
    with pytest.raises(vs.Error, match="matrix="):
        upscale(rgb, model=model_x2, output_format=vs.YUV420P8)
    assert upscale(rgb, model=model_x2, output_format=vs.YUV420P8, matrix="709").format.id == vs.YUV420P8
    with pytest.raises(vs.Error, match="output_format"):
        upscale(rgb, model=model_x2, output_format=0)
    with pytest.raises(vs.Error, match="unknown model"):
        upscale(rgb, model="no-such-model")


def test_building_the_graph_renders_nothing(model_x2) -> None:
    """Fault 8: ``upscale`` used to render frame 0 for its tags; now every frame is read when requested."""
    requested: list[int] = []
    source = tagged(clip_from(pattern(3, 16, 16)), vs.YUV420P8)

    def watch(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        requested.append(n)
        return f

    watched = core.std.ModifyFrame(source, source, watch)
    out = upscale(watched, model=model_x2, output_format=vs.RGB24)
    assert requested == []
    frame = out.get_frame(2)
    assert requested == [2] and (frame.format.id, frame.width, frame.height) == (vs.RGB24, 32, 32)


def test_each_frame_converts_with_its_own_tags(model_x2) -> None:
    """A clip whose matrix changes (BT.709, then BT.601): each frame goes to RGB and back with its own."""
    rgb = clip_from(pattern(2, 16, 16))
    parts = [core.resize.Bicubic(rgb[n], format=vs.YUV444P16, matrix_s=m) for n, m in enumerate(("709", "170m"))]
    out = upscale(core.std.Splice(parts), model=model_x2)
    bicubic = core.resize.Bicubic(rgb, 32, 32)
    for n, m in enumerate((1, 6)):
        frame = out.get_frame(n)
        assert frame.props["_Matrix"] == m
        back = core.resize.Bicubic(out[n], format=vs.RGBS, matrix_in=m).get_frame(0)
        assert psnr(planes(back), planes(bicubic.get_frame(n))) > 40


def test_variable_size_and_format(model_x2) -> None:
    small, large = clip_from(pattern(1, 16, 24)), clip_from(pattern(1, 24, 32))
    out = upscale(core.std.Splice([small, large], mismatch=True), model=model_x2)
    assert out.width == 0
    assert [(f.width, f.height) for f in out.frames()] == [(48, 32), (64, 48)]
    mixed = core.std.Splice([small, small.resize.Point(format=vs.RGB24)], mismatch=True)
    with pytest.raises(vs.Error, match="format"):
        upscale(mixed, model=model_x2)


def test_job_hooks(model_x2) -> None:
    seen: dict[str, list] = {"started": [], "batches": [], "finished": []}

    class Recorder:
        @hookimpl
        def job_started(self, job):
            seen["started"].append(job)

        @hookimpl
        def batch_done(self, job, frames):
            seen["batches"].append(frames)

        @hookimpl
        def job_finished(self, job, summary):
            seen["finished"].append(summary)

    manager = get_host().manager
    manager.register(Recorder(), name="test-recorder")
    try:
        out = upscale(clip_from(pattern(3, 16, 16)), model=model_x2, batch=2)
        for _ in out.frames():
            pass
    finally:
        manager.unregister(name="test-recorder")
    [job] = seen["started"]
    assert isinstance(job, FilterJob) and job.frames == 3 and job.settings["scale"] == 2
    assert sum(seen["batches"]) == 3 and max(seen["batches"]) == 2
    [summary] = seen["finished"]
    assert isinstance(summary, FilterSummary) and summary.frames == 3


def test_vspipe_example(data_dir: Path, model_x2, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    vspipe = Path(sys.executable).parent / "vspipe"
    if not vspipe.exists():
        pytest.skip("vspipe not installed")
    src = data_dir / "video" / "bbb_480p_5s.mp4"
    out = tmp_path / "out.y4m"
    env = {**os.environ, "PATH": f"{vspipe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the clip fades in from black: take frames 60 and 61 (vspipe's --start) of the first 62
    args = ["-a", f"src={src}", "-a", "frames=62", "-a", "crop=96x64", "--start", "60"]
    run = subprocess.run([str(vspipe), "-c", "y4m", str(ROOT / "examples" / "upscale.vpy"), "-", *args],
                         env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    out.write_bytes(run.stdout)  # only video on stdout: anything else would break the y4m stream

    with av.open(str(out)) as container:
        produced = [f.to_ndarray() for f in container.decode(video=0)]
    assert len(produced) == 2 and produced[0].shape == (128 * 3 // 2, 192)
    with av.open(str(src)) as container:
        decoded = [f.to_ndarray(format="rgb24") for _, f in zip(range(62), container.decode(video=0))][60:]
    left, top = (854 - 96) // 4 * 2, (480 - 64) // 4 * 2
    expected = Engine(model_x2, scale=2).upscale_batch([d[top:top + 64, left:left + 96] for d in decoded])
    for got, rgb in zip(produced, expected):
        luma = 16 + rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255  # BT.601, limited range
        assert psnr(got[:128], luma, peak=255) > 40


@pytest.mark.parametrize("first", ["core", "filter"])
def test_default_backend_beside_vsmlrt_ov_in_either_import_order(tmp_path: Path, first: str) -> None:
    """With vs-mlrt's ov plugin autoloaded into the same vspipe process, our default filter runs whether the
    core (and so OpenVINO's runtime) or our filter (and so torch) loads first, and gives the right frames."""
    vspipe = Path(sys.executable).parent / "vspipe"
    if not vspipe.exists():
        pytest.skip("vspipe not installed")
    lines = {"core": "core = vs.core\nassert hasattr(core, 'ov'), 'vs-mlrt ov plugin not loaded'",
             "filter": "from idsa_plugin.filters.vapoursynth import upscale"}
    second = "filter" if first == "core" else "core"
    script = tmp_path / "order.vpy"
    script.write_text("import vapoursynth as vs\n" + lines[first] + "\n" + lines[second] + "\n"
                      "clip = core.std.BlankClip(format=vs.RGB24, width=40, height=32, length=2, color=[40, 120, 200])\n"
                      "upscale(clip, 2).set_output()\n")
    core_plugins = Path(vs.__file__).parent / "plugins"
    if not (core_plugins / "ov").exists():
        pytest.skip("vs-mlrt's ov plugin is not installed: pip install 'idsa-plugin[mlrt]'")
    env = {**os.environ, "PATH": f"{vspipe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([str(vspipe), str(script), "-"], env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    frames = np.frombuffer(run.stdout, dtype=np.uint8).reshape(2, 3, 64, 80)  # raw RGB24 at x2: planes G, B, R
    assert np.abs(frames.astype(int) - np.array([120, 200, 40])[None, :, None, None]).max() <= 3
