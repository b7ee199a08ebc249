"""CPU inference runtimes that stand in for a torch model: same call, (N, 3, H, W) float tensor in and out.

The model is exported once to ONNX (:func:`idsa_plugin.export.to_onnx`, dynamic shapes) and run by
OpenVINO; outputs are float32 CPU tensors, unclamped, like the model's. OpenVINO beats eager torch
on the CPU (in float32, and twice over in bf16); onnxruntime does not, so it is no backend (see
``benchmarks/RESULTS.md``, "vs-mlrt comparison").
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import nn

from .export import INPUT, OUTPUT, to_onnx

if TYPE_CHECKING:
    import openvino as ov

BACKENDS = ("torch", "openvino")
Run = Callable[[torch.Tensor], torch.Tensor]


def _host_array(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


class OpenVINOModel:
    """The model in OpenVINO on the CPU, compiled once per input shape (static shapes run faster than dynamic).

    ``precision`` is OpenVINO's inference precision: ``"f32"`` matches torch to 1e-6; ``"bf16"`` (OpenVINO's own
    default on CPUs with AVX512-BF16 or AMX) is nearly twice as fast there and differs by up to about one 8-bit level.
    The ``cache`` most recently used shapes stay compiled. In a process with VapourSynth and vs-mlrt's ov
    plugin, import ``openvino`` before the first use of ``vapoursynth.core``: the plugin then shares the
    package's runtime, while the other order leaves two runtimes that refuse to load together. Importing
    ``openvino`` also starts its usage telemetry unless opted out (``opt_in_out --opt_out``).
    """

    def __init__(self, model: nn.Module, threads: int | None = None, precision: str = "f32", cache: int = 8) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ImportError(f"the openvino backend needs the openvino package (pip install openvino), imported before "
                              f"any VapourSynth core where vs-mlrt's ov plugin is installed: {exc}") from exc

        self.scale = int(model.scale)
        self.core = ov.Core()
        self.onnx = to_onnx(model).SerializeToString()
        self.config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
                       "PERFORMANCE_HINT": "LATENCY"}
        self.cache = cache
        self.requests: OrderedDict[tuple[int, ...], ov.InferRequest] = OrderedDict()

    def _request(self, shape: tuple[int, ...]) -> ov.InferRequest:
        if shape in self.requests:
            self.requests.move_to_end(shape)
            return self.requests[shape]
        network = self.core.read_model(self.onnx)
        network.reshape(list(shape))
        request = self.core.compile_model(network, "CPU", self.config).create_infer_request()
        self.requests[shape] = request
        if len(self.requests) > self.cache:
            self.requests.popitem(last=False)
        return request

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        request = self._request(tuple(x.shape))
        request.infer({INPUT: _host_array(x)})
        return torch.from_numpy(request.get_tensor(OUTPUT).data.copy())


def make_backend(name: str, model: nn.Module, threads: int | None = None, precision: str = "f32") -> Run:
    """A callable running ``model`` in the named runtime on the CPU; ``"torch"`` is the model itself."""
    if name == "torch":
        return model
    if name == "openvino":
        return OpenVINOModel(model, threads, precision)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
