"""The streaming, batched inference engine shared by every adapter.

Frames go in as arrays (H, W, C) or planar (C, H, W), uint8/uint16/float16/float32, one or three
channels, and come out upscaled, in order, in the same dtype and layout, with their metadata.
Consecutive frames of equal shape form batches. Host work (conversion, the caller's decoding and
encoding) overlaps model work: a reader thread builds batches, a worker thread runs the model
(on CUDA with pinned buffers, non-blocking copies and separate upload/compute/download streams),
and the caller converts results; queues bound the batches in flight, so memory stays flat.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .archs import size_requirements
from .devices import Precision, choose_precision, resolve_device, tune_cpu_allocator
from .pipeline import END, Stage, get, put
from .tiling import run_tiled

log = logging.getLogger("idsa_plugin")
TensorFilter = Callable[[torch.Tensor], torch.Tensor]
PEAKS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float16): 1.0, np.dtype(np.float32): 1.0}
OUTPUT_BITS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}  # float frames: the engine's ``output_bits``
DEFAULT_OVERLAP = 16
CLOSE_WAIT_SECONDS = 0.2
BACKENDS = ("torch", "openvino")


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs a model; every adapter (CLI, VapourSynth, transcode, batch) takes one and passes it on.

    ``device``: None picks cuda, then mps, then cpu. ``dtype``: None picks the fastest precision that keeps
    quality on the device (:func:`idsa_plugin.devices.choose_precision`). ``batch``: frames per model call
    (None: 4 on CUDA, 1 on the CPU). ``tile``: None or ``"auto"`` tiles only when a batch would not fit in
    memory, 0 never, ``(width, height)`` or ``"WxH"`` in input pixels; ``overlap`` in input pixels.
    ``compile``: ``torch.compile`` the model. ``backend``: ``"torch"`` or, on the CPU, ``"openvino"``.
    ``pre``/``post``: frame-filter names (from plugins) or callables on (N, 3, H, W) tensors.
    """

    device: str | None = None
    dtype: str | None = None
    batch: int | None = None
    tile: tuple[int, int] | int | str | None = None
    overlap: int | None = None
    compile: bool = False
    backend: str = "torch"
    pre: tuple[str | TensorFilter, ...] = ()
    post: tuple[str | TensorFilter, ...] = ()

    def __post_init__(self) -> None:
        for name in ("pre", "post"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))
        if self.dtype is not None:
            object.__setattr__(self, "dtype", str(self.dtype).removeprefix("torch."))
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")

    @classmethod
    def of(cls, options: EngineOptions | None = None, **overrides: Any) -> EngineOptions:
        """``options`` (or the defaults) with every override that is not None; unknown names are a TypeError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown engine option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return dataclasses.replace(options or cls(), **{k: v for k, v in overrides.items() if v is not None})

    def fingerprint(self) -> dict[str, Any]:
        """Every option as JSON-able values (callables by their qualified name), for resume fingerprints."""
        def plain(value: Any) -> Any:
            if callable(value):
                return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
            return list(map(plain, value)) if isinstance(value, tuple) else value
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass
class Frame:
    """One frame and whatever the caller wants back with it (timestamps, props, ...)."""

    image: np.ndarray
    meta: Any = None


@dataclass
class _Batch:
    frames: list[Frame]
    host: torch.Tensor  # (N, 3, H, W) float32 in [0, 1] on the CPU (pinned for CUDA)
    channels: int
    dtype: np.dtype
    result: torch.Tensor | None = None
    ready: torch.cuda.Event | None = None
    finite: torch.Tensor | None = None  # on the host once ``ready``: False when a low-precision pass overflowed


def bytes_per_input_pixel(model: nn.Module, dtype: torch.dtype) -> int:
    """A generous estimate of peak activation memory per input pixel, for ``tile="auto"``."""
    widest = max((m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=64)
    window = size_requirements(model).window
    maps = 3 * window * window * 4 if window else 0
    return int(torch.finfo(dtype).bits // 8 * widest * 24 + maps)


def _available_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info.get("MemAvailable", 8 << 30)
    except OSError:
        return 8 << 30


def _resolve_filters(items: Sequence[str | TensorFilter] | None) -> list[TensorFilter]:
    if not items:
        return []
    from .plugins import get_host

    host = get_host()
    return [host.frame_filter(item).function if isinstance(item, str) else item for item in items]


class Engine:
    """Runs a super-resolution model over batches or streams of frames.

    ``model`` is a loaded module or a registered name / weights path for :func:`load_model`; ``options``
    (:class:`EngineOptions`) say how, and keyword overrides (``device="cpu"``, ``batch=4``, ...) replace
    single options. ``output_bits`` is the depth of the frames that the caller makes of the output: the
    automatic precision keeps fp32 where bf16 would err by more than half an output step.
    """

    def __init__(self, model: nn.Module | str = "idsa-net-s", scale: int | None = None, weights: str | None = None,
                 options: EngineOptions | None = None, *, output_bits: int = 8, inflight: int = 2, job: Any = None,
                 **overrides: Any) -> None:
        self.options = opts = EngineOptions.of(options, **overrides)
        self.device = resolve_device(opts.device)
        self.precision: Precision = choose_precision(opts.dtype, self.device, output_bits)
        self.dtype = self.precision.dtype
        if opts.backend != "torch" and (self.device.type != "cpu" or self.dtype == torch.float16):
            raise ValueError(f"backend {opts.backend!r} runs float32 or bfloat16 on the CPU only (got {self.device}, {self.dtype})")
        if self.device.type == "cpu":
            tune_cpu_allocator()
        if isinstance(model, nn.Module):  # a copy: the caller's module keeps its device, dtype and layout
            fp32 = copy.deepcopy(model).to(self.device, torch.float32).eval()
        else:
            from .models import load_model

            fp32 = load_model(model, scale=scale, weights=weights, device=self.device, dtype=torch.float32)
        self.scale = int(getattr(fp32, "scale", scale or 0))
        if scale is not None and int(scale) != self.scale:
            raise ValueError(f"model is x{self.scale}, not x{scale}")
        self._fp32_model = fp32.to(memory_format=torch.channels_last)
        self._minimum = size_requirements(fp32).minimum
        self.model = self._fp32_model if self.dtype == torch.float32 else copy.deepcopy(self._fp32_model).to(self.dtype)
        self.batch = max(1, int(opts.batch or (4 if self.device.type == "cuda" else 1)))
        self.tile = self._parse_tile(opts.tile)
        self.overlap = DEFAULT_OVERLAP if opts.overlap is None else int(opts.overlap)
        self.pre, self.post = _resolve_filters(opts.pre), _resolve_filters(opts.post)
        self.inflight = max(1, inflight)
        self.job = job
        self._run: Callable[[torch.Tensor], torch.Tensor]
        if opts.backend != "torch":
            from .backends import make_backend

            self._run = make_backend(opts.backend, self._fp32_model, precision="bf16" if self.dtype == torch.bfloat16 else "f32")
        else:
            self._run = torch.compile(self.model) if opts.compile else self.model
        self._overflow_reported = False
        self._streams = None
        if self.device.type == "cuda":
            self._streams = tuple(torch.cuda.Stream(self.device) for _ in range(3))

    def describe(self) -> dict[str, Any]:
        """The resolved settings (what the options turned into on this machine), for logs, jobs and fingerprints."""
        return {"scale": self.scale, "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "precision": self.precision.reason, "batch": self.batch, "tile": self.tile, "overlap": self.overlap,
                "backend": self.options.backend, "compile": self.options.compile}

    @staticmethod
    def _parse_tile(tile: Any) -> tuple[int, int] | str | None:
        if tile in (None, "auto"):
            return "auto"
        if tile in (0, False, "0", "none", "off"):
            return None
        if isinstance(tile, int):
            return (tile, tile)
        if isinstance(tile, str):
            w, _, h = tile.lower().partition("x")
            return (int(w), int(h or w))
        w, h = tile
        return (int(w), int(h))

    # ---- tensor level --------------------------------------------------------------------------
    def _model_call(self, x: torch.Tensor) -> torch.Tensor:
        """The model in the engine's precision; models that keep parts in float32 get the float32 input."""
        return self._run(x if getattr(self._fp32_model, "takes_float32_input", False) else x.to(self.dtype))

    def _fp32_call(self, x: torch.Tensor) -> torch.Tensor:
        return self._fp32_model(x.float())

    def _call_for(self, output_bits: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model call for frames of ``output_bits``: fp32 where the automatic bf16 would err by more than half a step."""
        deep = output_bits is not None and output_bits > 8
        return self._fp32_call if deep and self.precision.automatic and self.dtype == torch.bfloat16 else self._model_call

    def _may_overflow(self, call: Callable[[torch.Tensor], torch.Tensor]) -> bool:
        return call == self._model_call and self.dtype == torch.float16  # bf16 has float32's range

    def _auto_tile(self, x: torch.Tensor) -> tuple[int, int] | None:
        n, _, h, w = x.shape
        budget = _available_memory(self.device) // 2
        per_pixel = bytes_per_input_pixel(self.model, self.dtype)
        if n * h * w * per_pixel <= budget:
            return None
        side = int((budget / (n * per_pixel)) ** 0.5)
        side = max(128, side - side % 8)
        return (min(side, w), min(side, h))

    def _upscale_tensor(self, x: torch.Tensor, tile: tuple[int, int] | None, call: Callable) -> torch.Tensor:
        try:
            if tile is None:
                return call(x.contiguous(memory_format=torch.channels_last)).float()
            return run_tiled(x, call, self.scale, tile, self.overlap)
        except torch.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            torch.cuda.empty_cache()
            if x.shape[0] > 1:
                half = x.shape[0] // 2
                log.info("out of GPU memory: splitting the batch of %d", x.shape[0])
                return torch.cat([self._upscale_tensor(x[:half], tile, call), self._upscale_tensor(x[half:], tile, call)])
            h, w = x.shape[-2:]
            smaller = (max(32, (tile or (w, h))[0] // 2), max(32, (tile or (w, h))[1] // 2))
            if tile is not None and smaller == tile:
                raise
            log.info("out of GPU memory: tiling with %dx%d tiles", *smaller)
            return self._upscale_tensor(x, smaller, call)

    def _upscale(self, x: torch.Tensor, call: Callable) -> torch.Tensor:
        """Pre-filters, the model (tiled if need be) and post-filters; not yet clamped."""
        x = x.to(self.device, non_blocking=True).float()
        for f in self.pre:
            x = f(x)
        x = x.clamp(0, 1)  # out-of-range input (e.g. from YUV conversion) is amplified by the attention gates
        h, w = x.shape[-2:]
        grow_h, grow_w = max(0, self._minimum - h), max(0, self._minimum - w)
        if grow_h or grow_w:  # smaller than the model takes: edge pixels repeated, the result cropped
            x = F.pad(x, (0, grow_w, 0, grow_h), mode="replicate")
        y = self._upscale_tensor(x, self._auto_tile(x) if self.tile == "auto" else self.tile, call)
        y = y[..., : h * self.scale, : w * self.scale]
        for f in self.post:
            y = f(y)
        return y

    @torch.inference_mode()
    def _recompute_in_fp32(self, x: torch.Tensor) -> torch.Tensor:
        if not self._overflow_reported:
            log.warning("%s overflowed (inf/NaN) in a batch: recomputing such batches in float32", self.dtype)
            self._overflow_reported = True
        return self._upscale(x, self._fp32_call).clamp_(0, 1)

    @torch.inference_mode()
    def upscale_tensor(self, x: torch.Tensor, output_bits: int | None = None) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] on any device -> (N, 3, sH, sW) float32 in [0, 1] on the engine's device.

        ``output_bits`` (when the caller knows the depth it will quantise to) may keep the call in fp32.
        """
        call = self._call_for(output_bits)
        y = self._upscale(x, call)
        if self._may_overflow(call) and not bool(torch.isfinite(y).all()):
            return self._recompute_in_fp32(x)
        return y.clamp_(0, 1)

    # ---- array level ---------------------------------------------------------------------------
    @staticmethod
    def _layout(image: np.ndarray, planar: bool) -> tuple[int, int, int]:
        if image.ndim == 2:
            return image.shape[0], image.shape[1], 1
        c, h, w = image.shape if planar else (image.shape[2], image.shape[0], image.shape[1])
        if c not in (1, 3):
            raise ValueError(f"frames need 1 or 3 channels, got {c} (shape {image.shape}, planar={planar})")
        return h, w, c

    def _to_host(self, images: Sequence[np.ndarray], planar: bool) -> torch.Tensor:
        first = images[0]
        if first.dtype not in PEAKS:
            raise TypeError(f"unsupported frame dtype {first.dtype}; use uint8, uint16, float16 or float32")
        h, w, c = self._layout(first, planar)
        host = torch.empty((len(images), 3, h, w), dtype=torch.float32, pin_memory=self.device.type == "cuda")
        for i, image in enumerate(images):
            t = torch.from_numpy(np.require(image, requirements=["C", "W"]))
            t = t.reshape(h, w, c).permute(2, 0, 1) if not planar or image.ndim == 2 else t
            host[i].copy_(t.float().div_(PEAKS[first.dtype]).expand(3, h, w))
        return host

    @staticmethod
    def _from_host(y: torch.Tensor, channels: int, dtype: np.dtype, planar: bool, squeeze: bool) -> np.ndarray:
        if channels == 1:
            y = y.mean(dim=0, keepdim=True)
        if not planar:
            y = y.permute(1, 2, 0)
        if squeeze:
            y = y.squeeze(-1 if not planar else 0)
        if dtype.kind == "u":
            return y.mul(PEAKS[dtype]).round_().clamp_(0, PEAKS[dtype]).numpy().astype(dtype)
        return y.numpy().astype(dtype, copy=False)

    def _batch_done(self, frames: int) -> None:
        """Tell plugins (``batch_done``) that a batch of ``self.job`` is finished."""
        if self.job is not None:
            from .plugins import get_host

            get_host().call("batch_done", job=self.job, frames=frames)

    def upscale_batch(self, images: Sequence[np.ndarray], planar: bool = False) -> list[np.ndarray]:
        """Upscale frames of one shape and dtype synchronously."""
        images = list(images)
        if not images:
            return []
        y = self.upscale_tensor(self._to_host(images, planar), OUTPUT_BITS.get(images[0].dtype)).cpu()
        _, _, c = self._layout(images[0], planar)
        self._batch_done(len(images))
        return [self._from_host(t, c, images[0].dtype, planar, images[0].ndim == 2) for t in y]

    def upscale(self, image: np.ndarray, planar: bool = False) -> np.ndarray:
        """Upscale one frame."""
        return self.upscale_batch([image], planar)[0]

    # ---- streaming -----------------------------------------------------------------------------
    def _batches(self, frames: Iterable[Frame | np.ndarray], planar: bool) -> Iterator[list[Frame]]:
        """Consecutive frames of one shape and dtype, ``self.batch`` at most; a full batch goes at once."""
        pending: list[Frame] = []
        key = None
        for item in frames:
            frame = item if isinstance(item, Frame) else Frame(item)
            k = (frame.image.shape, frame.image.dtype)
            if pending and k != key:
                yield pending
                pending = []
            key = k
            pending.append(frame)
            if len(pending) >= self.batch:
                yield pending
                pending = []
        if pending:
            yield pending

    def _infer(self, batch: _Batch) -> None:
        bits = OUTPUT_BITS.get(batch.dtype)
        if self._streams is None:
            batch.result = self.upscale_tensor(batch.host, bits)
            return
        upload, compute, download = self._streams
        with torch.cuda.stream(upload):
            x = batch.host.to(self.device, non_blocking=True)
        compute.wait_stream(upload)
        with torch.cuda.stream(compute), torch.inference_mode():
            x.record_stream(compute)  # allocated on the upload stream: not to be reused while compute reads it
            call = self._call_for(bits)
            y = self._upscale(x, call)
            finite = torch.isfinite(y).all() if self._may_overflow(call) else None  # checked by the caller: no sync here
            y = y.clamp_(0, 1)
        download.wait_stream(compute)
        with torch.cuda.stream(download):
            out = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
            out.copy_(y, non_blocking=True)
            y.record_stream(download)
            if finite is not None:
                batch.finite = torch.empty((), dtype=torch.bool, pin_memory=True)
                batch.finite.copy_(finite, non_blocking=True)
                finite.record_stream(download)
            batch.ready = torch.cuda.Event()
            batch.ready.record(download)
        batch.result = out

    def _results(self, batch: _Batch) -> torch.Tensor:
        """The batch's output on the host, once its copies are done (recomputed in fp32 if it overflowed)."""
        if batch.ready is not None:
            batch.ready.synchronize()
        if batch.finite is not None and not bool(batch.finite):
            return self._recompute_in_fp32(batch.host).cpu()
        return batch.result

    def stream(self, frames: Iterable[Frame | np.ndarray], planar: bool = False) -> Iterator[Frame]:
        """Upscale a stream of frames in order, yielding :class:`Frame` objects with their metadata.

        A reader thread builds batches from ``frames`` and a worker thread runs the model; closing the
        generator early returns at once, and both threads end as soon as the source yields again.
        """
        to_worker: queue.Queue = queue.Queue(maxsize=self.inflight)
        to_caller: queue.Queue = queue.Queue(maxsize=self.inflight)
        stop = threading.Event()

        def read() -> None:
            for group in self._batches(frames, planar):
                first = group[0].image
                _, _, c = self._layout(first, planar)
                put(to_worker, _Batch(group, self._to_host([f.image for f in group], planar), c, first.dtype), stop)
            put(to_worker, END, stop)

        def work() -> None:
            while (item := get(to_worker, stop, reader)) is not END:
                self._infer(item)
                put(to_caller, item, stop)
                self._batch_done(len(item.frames))
            put(to_caller, END, stop)

        reader, worker = Stage("idsa-read", read), Stage("idsa-infer", work)
        reader.start()
        worker.start()
        try:
            while (item := get(to_caller, stop, worker)) is not END:
                squeeze = item.frames[0].image.ndim == 2
                for frame, y in zip(item.frames, self._results(item)):
                    yield Frame(self._from_host(y, item.channels, item.dtype, planar, squeeze), frame.meta)
        finally:
            stop.set()
            for stage in (worker, reader):  # a reader waiting on a slow source ends when the source yields
                stage.join(timeout=CLOSE_WAIT_SECONDS)


def frame_filter(model: nn.Module | str = "idsa-net-s", scale: int | None = 2, options: EngineOptions | None = None,
                 **engine_options: Any) -> Callable[[Any], Any]:
    """A plain callable for foreign pipelines: upscales a batch without exposing the engine.

    Takes a torch tensor (N, 3, H, W) float in [0, 1] (returned on the same device), a numpy array
    (N, H, W, C) or (H, W, C), or a list of arrays, and returns the same kind of thing upscaled.
    """
    engine = Engine(model, scale=scale, options=options, **engine_options)

    def upscale(batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return engine.upscale_tensor(batch).to(batch.device, batch.dtype)
        if isinstance(batch, np.ndarray) and batch.ndim == 4:
            return np.stack(engine.upscale_batch(list(batch)))
        if isinstance(batch, np.ndarray):
            return engine.upscale(batch)
        return engine.upscale_batch(list(batch))

    upscale.engine = engine  # type: ignore[attr-defined]
    return upscale
