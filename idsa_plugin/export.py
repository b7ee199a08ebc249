"""Exporting models: self-contained ONNX (onnxruntime, vs-mlrt, OpenVINO, TensorRT) and safetensors for sharing.

ONNX models take ``input`` (N, 3, H, W) float32 RGB in [0, 1] and give ``output`` (N, 3, sH, sW),
unclamped. They are traced with the TorchScript exporter at a size that is not a multiple of the
model's attention window, so the internal reflect padding is recorded with computed amounts
(zero for sizes that need none) and the graph holds for any batch, height and width.
Every export is checked against the torch model before it replaces the target file.
"""
from __future__ import annotations

import copy
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import __version__
from .archs import size_requirements
from .atomic import atomic_path, check_target

if TYPE_CHECKING:  # torch and onnx load on first use, so the command line starts fast
    import onnx
    from torch import nn

FORMATS = ("onnx", "safetensors")
INPUT, OUTPUT = "input", "output"
DEFAULT_OPSET = 17
TOLERANCE = {"float32": 1e-4, "float16": 2e-3}  # max abs difference to the float32 torch model
Shape = tuple[int, int, int, int]


class ExportCheckError(RuntimeError):
    """The exported model does not reproduce the torch model within the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely it reproduces the torch model at each checked input shape."""

    path: Path
    format: str
    runtime: str
    checks: tuple[tuple[Shape, float], ...]
    tolerance: float

    def summary(self) -> str:
        diffs = ", ".join(f"{d:.1e} at {'x'.join(map(str, s))}" for s, d in self.checks)
        return f"{self.runtime} vs torch float32: max abs diff {diffs} (tolerance {self.tolerance:g}): OK"


def _half_with_float32_io(model: nn.Module) -> nn.Module:
    """``model`` in float16 behind float32 input and output."""
    import torch
    from torch import nn

    class Float32IO(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.half()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x.half()).float()

    return Float32IO()


def _window(model: nn.Module) -> int:
    """The model's attention window; 8 for a model without one (trace and check sizes then only need to be odd)."""
    return size_requirements(model).window or 8


def trace_shape(model: nn.Module) -> Shape:
    """A small input whose height and width are not multiples of the model's window (see the module doc)."""
    step = _window(model)
    return (1, 3, 3 * step + 3, 4 * step + 5)


def check_shapes(model: nn.Module, dynamic: bool, shape: Shape) -> list[Shape]:
    """Input shapes to verify an export at: a window multiple and a batch of 2 at an odd size, or the fixed shape."""
    if not dynamic:
        return [shape]
    step = _window(model)
    return [(1, 3, 6 * step, 8 * step), (2, 3, 5 * step + 3, 7 * step + 5)]


def _precision(fp16: bool) -> str:
    return "float16" if fp16 else "float32"


def _metadata(model: nn.Module, fp16: bool) -> dict[str, str]:
    info = getattr(model, "idsa_info", None)
    meta = {"exported_by": f"idsa-plugin {__version__}", "scale": str(getattr(model, "scale", "")), "precision": _precision(fp16)}
    if info is not None:
        meta.update(model=info.name, scale=str(info.scale), source_weights=Path(info.weights or "").name)
    return meta


def to_onnx(model: nn.Module, dynamic: bool = True, shape: Shape | None = None, opset: int = DEFAULT_OPSET,
            fp16: bool = False) -> "onnx.ModelProto":
    """Trace ``model`` (any device and precision, exported in float32) to a checked, self-contained ONNX model on the CPU.

    ``dynamic``: batch, height and width are free; otherwise the graph is fixed to ``shape`` (N, 3, H, W).
    ``fp16``: weights and arithmetic in float16, input and output still float32.
    """
    import onnx
    import torch

    if not dynamic and shape is None:
        raise ValueError("a fixed-shape export needs a shape (N, 3, H, W); or export with dynamic=True")
    net = copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
    if fp16:
        net = _half_with_float32_io(net)
    sample = torch.rand(trace_shape(model) if dynamic else shape)
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the padding branch, see the module doc
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: seconds where dynamo takes a minute
        warnings.filterwarnings("ignore", message=".*instance_norm.*train=True")  # instance norm always uses input stats
        torch.onnx.export(net, (sample,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes=axes if dynamic else None, do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, _metadata(model, fp16))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def image_like(shape: Shape, generator: "torch.Generator") -> "torch.Tensor":
    """A smooth random picture with film-grain-like noise (sigma 0.05), clamped to [0, 1].

    Uniform white noise is no test input: its every pixel an edge, it drives the unbounded LKA gate of
    the x4 weights to values in the hundreds, where runtimes' float differences grow past any tolerance.
    """
    import torch
    import torch.nn.functional as F

    n, c, h, w = shape
    coarse = torch.rand(n, c, h // 8 + 2, w // 8 + 2, generator=generator)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (smooth + 0.05 * torch.randn(shape, generator=generator)).clamp(0, 1)


def verify_onnx(path: str | os.PathLike, model: nn.Module, shapes: Sequence[Shape], tolerance: float) -> list[tuple[Shape, float]]:
    """Run the ONNX model in onnxruntime (CPU) and ``model`` in torch on the same image-like inputs; raise past ``tolerance``."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = next(model.parameters())
    generator = torch.Generator().manual_seed(0)
    results = []
    for shape in shapes:
        x = image_like(shape, generator)
        with torch.no_grad():
            expected = model(x.to(net.device, net.dtype)).float().cpu().numpy()
        got = session.run([OUTPUT], {INPUT: x.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportCheckError(f"onnxruntime gave shape {got.shape} for input {shape}, torch {expected.shape}")
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise ExportCheckError(f"onnxruntime differs from torch by {diff:.3g} at input {shape} (tolerance {tolerance:g})")
        results.append((shape, diff))
    return results


def export_onnx(model: nn.Module, path: str | os.PathLike, dynamic: bool = True, shape: Shape | None = None,
                opset: int = DEFAULT_OPSET, fp16: bool = False, overwrite: bool = False) -> ExportReport:
    """Write ``model`` as one ONNX file (no external data), atomically, after checking it in onnxruntime."""
    import onnx

    check_target(path, overwrite)
    proto = to_onnx(model, dynamic=dynamic, shape=shape, opset=opset, fp16=fp16)
    tolerance = TOLERANCE[_precision(fp16)]
    with atomic_path(path, overwrite=overwrite) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        checks = verify_onnx(tmp, model, check_shapes(model, dynamic, shape), tolerance)
    return ExportReport(Path(path), "onnx", "onnxruntime", tuple(checks), tolerance)


def export_safetensors(model: nn.Module, path: str | os.PathLike, fp16: bool = False, overwrite: bool = False) -> ExportReport:
    """Write the weights with their metadata (training, metrics, licence) plus export details; check they reload."""
    import torch

    from .models import load_model
    from .weights_io import write_weights

    info = getattr(model, "idsa_info", None)
    if info is None:
        raise ValueError("safetensors export needs a model from load_model (its name and metadata)")
    if Path(path).suffix != ".safetensors":
        raise ValueError(f"{path}: name safetensors files *.safetensors (load_model tells formats by the suffix)")
    dtype, tolerance = getattr(torch, _precision(fp16)), TOLERANCE[_precision(fp16)]
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    metadata = {**info.metadata, "variant": info.name, **_metadata(model, fp16)}
    check_target(path, overwrite)
    with atomic_path(path, overwrite=overwrite) as tmp:
        write_weights(tmp, state, metadata)
        reloaded = load_model(info.name, scale=info.scale, weights=tmp, device="cpu")
        x = torch.rand(trace_shape(model), generator=torch.Generator().manual_seed(0))
        net = next(model.parameters())
        with torch.no_grad():
            diff = float((reloaded(x) - model(x.to(net.device, net.dtype)).float().cpu()).abs().max())
        if not diff <= tolerance:
            raise ExportCheckError(f"reloaded weights differ from the model by {diff:.3g} (tolerance {tolerance:g})")
    return ExportReport(Path(path), "safetensors", "reloaded torch model", ((tuple(x.shape), diff),), tolerance)


def export_model(model: str, scale: int, format: str, path: str | os.PathLike, weights: str | os.PathLike | None = None,
                 dynamic: bool = True, shape: Shape | None = None, opset: int = DEFAULT_OPSET, fp16: bool = False,
                 overwrite: bool = False) -> ExportReport:
    """Load a registered model (or weights file) on the CPU in float32 and export it in ``format``."""
    from .models import load_model

    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    check_target(path, overwrite)
    net = load_model(model, scale=scale, weights=weights, device="cpu", dtype="float32")
    if format == "onnx":
        return export_onnx(net, path, dynamic=dynamic, shape=shape, opset=opset, fp16=fp16, overwrite=overwrite)
    return export_safetensors(net, path, fp16=fp16, overwrite=overwrite)
