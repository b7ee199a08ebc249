"""Export (ONNX, safetensors), vs-mlrt interop (core.ort / core.ov) and the ONNX runtime backends."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

try:  # before any VapourSynth core: vs-mlrt's ov plugin then shares this OpenVINO runtime (see OpenVINOModel)
    import openvino
except ImportError:
    openvino = None
import vapoursynth as vs

from idsa_plugin.cli import main
from idsa_plugin.engine import Engine

onnx = pytest.importorskip("onnx", reason="the export extra is not installed: pip install 'idsa-plugin[export]'")
ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install 'idsa-plugin[export]'")

TOLERANCE = 1e-4
FRAMES, WIDTH, HEIGHT = 3, 64, 48


@pytest.fixture(scope="module")
def onnx_x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped idsa-net-s x2 exported by the command line with dynamic shapes."""
    path = tmp_path_factory.mktemp("onnx") / "idsa-net-s-x2.onnx"
    assert main(["export", "--model", "idsa-net-s", "--scale", "2", "--format", "onnx", "--dynamic", "-o", str(path)]) == 0
    return path


def pattern(frames: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Planar float32 RGB frames with gradients, edges and texture that move from frame to frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for n in range(frames):
        r = 0.5 + 0.5 * np.sin((x + 3 * n) / 5.0) * np.cos(y / 7.0)
        g = ((x // 8 + y // 8 + n) % 2) * 0.8 + 0.1
        b = np.clip((x + y + 5 * n) / (width + height), 0, 1)
        out.append(np.stack([r, g, b]).astype(np.float32))
    return out


def test_onnx_matches_torch_at_any_size(onnx_x2: Path, model_x2) -> None:
    session = ort.InferenceSession(str(onnx_x2), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 50, 70), (1, 3, 96, 128)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = model_x2(x).numpy()
        got = session.run(["output"], {"input": x.numpy()})[0]
        assert got.shape == expected.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert np.abs(got - expected).max() < TOLERANCE


def test_onnx_file_is_self_contained_with_named_dynamic_io(onnx_x2: Path) -> None:
    assert [p.name for p in onnx_x2.parent.iterdir()] == [onnx_x2.name]  # no external .data file
    proto = onnx.load(str(onnx_x2), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model"] == "idsa-net-s" and props["scale"] == "2" and props["precision"] == "float32"


def test_fixed_shape_fp16_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "fixed-fp16.onnx"
    assert main(["export", "--shape", "64x48", "--fp16", "--opset", "18", "-o", str(path)]) == 0
    assert "onnxruntime vs torch float32: max abs diff" in capsys.readouterr().out
    proto = onnx.load(str(path))
    inp = proto.graph.input[0].type.tensor_type
    assert inp.elem_type == onnx.TensorProto.FLOAT  # float32 in and out, float16 inside
    assert [d.dim_value for d in inp.shape.dim] == [1, 3, 48, 64]
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18


def test_safetensors_export_keeps_metadata_and_reloads(tmp_path: Path, model_x2) -> None:
    from safetensors import safe_open

    from idsa_plugin import load_model

    path = tmp_path / "shared.safetensors"
    assert main(["export", "--format", "safetensors", "-o", str(path)]) == 0
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    original = model_x2.idsa_info.metadata
    assert {k: meta[k] for k in original} == original  # training metadata carried over
    assert meta["variant"] == "idsa-net-s" and meta["exported_by"].startswith("idsa-plugin ")
    reloaded = load_model(path)  # a bare file: architecture and scale from the file itself
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.allclose(reloaded(x), model_x2(x), atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--dynamic", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--dynamic", "--weights", "/nonexistent/w.safetensors"], "weights file not found"),
    (["--dynamic", "--model", "imdn", "--scale", "4"], "no weights for imdn x4"),
    ([], "needs --dynamic"),
    (["--format", "safetensors"], "name safetensors files *.safetensors"),
])
def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    target = tmp_path / "m.onnx"
    assert main(["export", *args, "-o", str(target)]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


def test_existing_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from safetensors import safe_open

    targets = {"onnx": tmp_path / "m.onnx", "safetensors": tmp_path / "m.safetensors"}
    for fmt, target in targets.items():
        target.write_bytes(b"keep me")
        assert main(["export", "--format", fmt, "--dynamic" if fmt == "onnx" else "--fp16", "-o", str(target)]) == 1
        assert "exists; pass --overwrite" in capsys.readouterr().err
        assert target.read_bytes() == b"keep me"
    assert main(["export", "--format", "safetensors", "-o", str(targets["safetensors"]), "--overwrite"]) == 0
    with safe_open(str(targets["safetensors"]), "pt") as f:
        assert f.metadata()["variant"] == "idsa-net-s"
    assert sorted(tmp_path.iterdir()) == sorted(targets.values())  # no temporaries left


# ---- vs-mlrt ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vs_clip() -> vs.VideoNode:
    """A 64x48 RGBS clip of :func:`pattern` frames."""
    core = vs.core
    frames = pattern()
    blank = core.std.BlankClip(width=WIDTH, height=HEIGHT, format=vs.RGBS, length=FRAMES)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[...] = frames[n][p]
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def planar(frame: vs.VideoFrame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(frame.format.num_planes)])


@pytest.fixture(scope="module")
def engine_frames(model_x2) -> list[np.ndarray]:
    engine = Engine(model_x2, device="cpu", dtype="float32", tile=0)  # vs-mlrt runs the ONNX in float32
    return [engine.upscale(f, planar=True) for f in pattern()]


def _runtime_clip(clip: vs.VideoNode, runtime: str, onnx_path: Path) -> vs.VideoNode:
    core = vs.core
    if not hasattr(core, runtime):
        pytest.skip(f"vs-mlrt's {runtime} plugin is not installed: pip install 'idsa-plugin[mlrt]'")
    if runtime == "ort":
        return core.ort.Model(clip, network_path=str(onnx_path), provider="CPU")
    # OpenVINO computes in bf16 by default on CPUs that have it: ask for f32 to compare with torch
    return core.ov.Model(clip, network_path=str(onnx_path), device="CPU", config=lambda: {"INFERENCE_PRECISION_HINT": "f32"})


@pytest.mark.parametrize("runtime", ["ort", "ov"])
def test_vsmlrt_runs_the_onnx_like_the_engine(vs_clip: vs.VideoNode, onnx_x2: Path, engine_frames: list[np.ndarray], runtime: str) -> None:
    clip = _runtime_clip(vs_clip, runtime, onnx_x2)
    assert (clip.width, clip.height, clip.num_frames, clip.format.name) == (2 * WIDTH, 2 * HEIGHT, FRAMES, "RGBS")
    for n, expected in enumerate(engine_frames):
        got = np.clip(planar(clip.get_frame(n)), 0, 1)  # vs-mlrt returns the raw output; the engine clamps
        assert np.abs(got - expected).max() < TOLERANCE


def test_vapoursynth_filter_matches_the_engine(vs_clip: vs.VideoNode, engine_frames: list[np.ndarray]) -> None:
    try:
        from idsa_plugin.filters.vapoursynth import upscale
    except ImportError as exc:
        pytest.skip(f"idsa_plugin.filters.vapoursynth is not importable: {exc}")
    clip = upscale(vs_clip, scale=2, model="idsa-net-s", device="cpu", tile=0)
    for n, expected in enumerate(engine_frames):
        assert np.abs(planar(clip.get_frame(n)) - expected).max() < TOLERANCE


# ---- backends -----------------------------------------------------------------------------------
requires_openvino = pytest.mark.skipif(openvino is None, reason="openvino is not installed (pip install openvino) or cannot load")


@requires_openvino
def test_openvino_backend_has_the_models_contract(model_x2) -> None:
    from idsa_plugin.backends import make_backend
    from idsa_plugin.tiling import run_tiled

    from idsa_plugin.export import image_like

    run = make_backend("openvino", model_x2)
    assert run.scale == 2
    generator = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 48, 64), (2, 3, 37, 29)]:  # image-like: white noise drives the unbounded gates out of range
        x = image_like(shape, generator).contiguous(memory_format=torch.channels_last)  # as the engine passes it
        with torch.inference_mode():
            got, expected = run(x), model_x2(x)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert (got - expected).abs().max() < TOLERANCE
    x = image_like((1, 3, 60, 80), generator)
    with torch.inference_mode():  # where the engine calls the model: here on 48x48 tiles
        assert (run_tiled(x, run, 2, (48, 48), 16) - run_tiled(x, model_x2, 2, (48, 48), 16)).abs().max() < TOLERANCE


@requires_openvino
def test_openvino_bf16_is_close(model_x2) -> None:
    from idsa_plugin.backends import OpenVINOModel

    bf16 = OpenVINOModel(model_x2, precision="bf16")  # OpenVINO's default on CPUs with AVX512-BF16 or AMX
    x = torch.from_numpy(pattern(1)[0])[None]
    with torch.inference_mode():
        assert (bf16(x) - model_x2(x)).abs().max() < 3 / 255


def test_unknown_backend_is_an_error(model_x2) -> None:
    from idsa_plugin.backends import make_backend

    assert make_backend("torch", model_x2) is model_x2
    with pytest.raises(ValueError, match="unknown backend 'onnxruntime'"):
        make_backend("onnxruntime", model_x2)
