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
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .devices import resolve_device, resolve_dtype
from .tiling import run_tiled

log = logging.getLogger("idsa_plugin")
TensorFilter = Callable[[torch.Tensor], torch.Tensor]
PEAKS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float16): 1.0, np.dtype(np.float32): 1.0}
DEFAULT_OVERLAP = 16
_END = object()


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


class _Stop(Exception):
    pass


def bytes_per_input_pixel(model: nn.Module, dtype: torch.dtype) -> int:
    """A generous estimate of peak activation memory per input pixel, for ``tile="auto"``."""
    widest = max((m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=64)
    window = getattr(model, "window", 0)
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

    ``model`` is a loaded module or a registered name / weights path for :func:`load_model`.
    ``tile`` is None (tile only when a batch would not fit in memory), ``"auto"`` (the same, said
    explicitly), 0 (never) or ``(width, height)`` in input pixels; ``overlap`` is in input pixels.
    ``pre``/``post`` are frame-filter names (from plugins) or callables on (N, 3, H, W) tensors.
    ``backend`` runs the model in torch (default) or, on the CPU, in OpenVINO (``"openvino"``).
    """

    def __init__(self, model: nn.Module | str = "idsa-net-s", scale: int | None = None, weights: str | None = None,
                 device: str | torch.device | None = None, dtype: str | torch.dtype | None = None, batch: int | None = None,
                 tile: tuple[int, int] | int | str | None = None, overlap: int | None = None, compile: bool = False,
                 pre: Sequence[str | TensorFilter] | None = None, post: Sequence[str | TensorFilter] | None = None,
                 inflight: int = 2, job: Any = None, backend: str = "torch") -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if backend != "torch" and (self.device.type != "cpu" or self.dtype != torch.float32):
            raise ValueError(f"backend {backend!r} runs float32 on the CPU only (got {self.device}, {self.dtype})")
        if isinstance(model, nn.Module):  # a copy: the caller's module keeps its device, dtype and layout
            self.model = copy.deepcopy(model).to(self.device, self.dtype).eval()
        else:
            from .models import load_model

            self.model = load_model(model, scale=scale, weights=weights, device=self.device, dtype=self.dtype)
        self.scale = int(getattr(self.model, "scale", scale or 0))
        if scale is not None and int(scale) != self.scale:
            raise ValueError(f"model is x{self.scale}, not x{scale}")
        self.model = self.model.to(memory_format=torch.channels_last)
        self.batch = max(1, int(batch or (4 if self.device.type == "cuda" else 1)))
        self.tile = self._parse_tile(tile)
        self.overlap = DEFAULT_OVERLAP if overlap is None else int(overlap)
        self.pre, self.post = _resolve_filters(pre), _resolve_filters(post)
        self.inflight = max(1, inflight)
        self.job = job
        self._run: Callable[[torch.Tensor], torch.Tensor]
        if backend != "torch":
            from .backends import make_backend

            self._run = make_backend(backend, self.model)
        else:
            self._run = torch.compile(self.model) if compile else self.model
        self._fp32_model: nn.Module | None = None
        self._overflow_reported = False
        self._lock = threading.Lock()
        self._streams = None
        if self.device.type == "cuda":
            self._streams = tuple(torch.cuda.Stream(self.device) for _ in range(3))

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
        y = self._run(x.to(self.dtype))
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            if not self._overflow_reported:
                log.warning("%s overflowed (inf/NaN) in a batch: recomputing such batches in float32", self.dtype)
                self._overflow_reported = True
            if self._fp32_model is None:
                self._fp32_model = copy.deepcopy(self.model).float()
            y = self._fp32_model(x.float())
        return y

    def _auto_tile(self, x: torch.Tensor) -> tuple[int, int] | None:
        n, _, h, w = x.shape
        budget = _available_memory(self.device) // 2
        per_pixel = bytes_per_input_pixel(self.model, self.dtype)
        if n * h * w * per_pixel <= budget:
            return None
        side = int((budget / (n * per_pixel)) ** 0.5)
        side = max(128, side - side % 8)
        return (min(side, w), min(side, h))

    def _upscale_tensor(self, x: torch.Tensor, tile: tuple[int, int] | None) -> torch.Tensor:
        try:
            if tile is None:
                return self._model_call(x.contiguous(memory_format=torch.channels_last)).float()
            return run_tiled(x, self._model_call, self.scale, tile, self.overlap)
        except torch.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            torch.cuda.empty_cache()
            if x.shape[0] > 1:
                half = x.shape[0] // 2
                log.info("out of GPU memory: splitting the batch of %d", x.shape[0])
                return torch.cat([self._upscale_tensor(x[:half], tile), self._upscale_tensor(x[half:], tile)])
            h, w = x.shape[-2:]
            smaller = (max(32, (tile or (w, h))[0] // 2), max(32, (tile or (w, h))[1] // 2))
            if tile is not None and smaller == tile:
                raise
            log.info("out of GPU memory: tiling with %dx%d tiles", *smaller)
            return self._upscale_tensor(x, smaller)

    @torch.inference_mode()
    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] on any device -> (N, 3, sH, sW) float32 in [0, 1] on the engine's device."""
        x = x.to(self.device, non_blocking=True).float()
        for f in self.pre:
            x = f(x)
        x = x.clamp(0, 1)  # out-of-range input (e.g. from YUV conversion) is amplified by the attention gates
        tile = self._auto_tile(x) if self.tile == "auto" else self.tile
        y = self._upscale_tensor(x, tile)
        for f in self.post:
            y = f(y)
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
        y = self.upscale_tensor(self._to_host(images, planar)).cpu()
        _, _, c = self._layout(images[0], planar)
        self._batch_done(len(images))
        return [self._from_host(t, c, images[0].dtype, planar, images[0].ndim == 2) for t in y]

    def upscale(self, image: np.ndarray, planar: bool = False) -> np.ndarray:
        """Upscale one frame."""
        return self.upscale_batch([image], planar)[0]

    # ---- streaming -----------------------------------------------------------------------------
    def _batches(self, frames: Iterable[Frame | np.ndarray], planar: bool) -> Iterator[list[Frame]]:
        pending: list[Frame] = []
        key = None
        for item in frames:
            frame = item if isinstance(item, Frame) else Frame(item)
            k = (frame.image.shape, frame.image.dtype)
            if pending and (k != key or len(pending) >= self.batch):
                yield pending
                pending = []
            key = k
            pending.append(frame)
        if pending:
            yield pending

    def _infer(self, batch: _Batch) -> None:
        if self._streams is None:
            batch.result = self.upscale_tensor(batch.host)
            return
        upload, compute, download = self._streams
        with torch.cuda.stream(upload):
            x = batch.host.to(self.device, non_blocking=True)
        compute.wait_stream(upload)
        with torch.cuda.stream(compute):
            y = self.upscale_tensor(x)
        download.wait_stream(compute)
        with torch.cuda.stream(download):
            out = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
            out.copy_(y, non_blocking=True)
            y.record_stream(download)
            batch.ready = torch.cuda.Event()
            batch.ready.record(download)
        batch.result = out

    def stream(self, frames: Iterable[Frame | np.ndarray], planar: bool = False) -> Iterator[Frame]:
        """Upscale a stream of frames in order, yielding :class:`Frame` objects with their metadata."""
        to_worker: queue.Queue = queue.Queue(maxsize=self.inflight)
        to_caller: queue.Queue = queue.Queue(maxsize=self.inflight)
        stop = threading.Event()

        def put(q: queue.Queue, item: Any) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stop

        def guarded(body: Callable[[], None], out: queue.Queue) -> Callable[[], None]:
            """Run ``body`` in a thread, handing any exception to the next stage through ``out``."""
            def run() -> None:
                try:
                    body()
                except _Stop:
                    pass
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    try:
                        put(out, exc)
                    except _Stop:
                        pass
            return run

        def read() -> None:
            for group in self._batches(frames, planar):
                first = group[0].image
                _, _, c = self._layout(first, planar)
                put(to_worker, _Batch(group, self._to_host([f.image for f in group], planar), c, first.dtype))
            put(to_worker, _END)

        def work() -> None:
            while True:
                item = to_worker.get()
                if item is _END or isinstance(item, BaseException):
                    put(to_caller, item)
                    return
                self._infer(item)
                put(to_caller, item)
                self._batch_done(len(item.frames))

        threads = [threading.Thread(target=guarded(read, to_worker), name="idsa-read", daemon=True),
                   threading.Thread(target=guarded(work, to_caller), name="idsa-infer", daemon=True)]
        for t in threads:
            t.start()
        try:
            while True:
                item = to_caller.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item.ready is not None:
                    item.ready.synchronize()
                squeeze = item.frames[0].image.ndim == 2
                for frame, y in zip(item.frames, item.result):
                    yield Frame(self._from_host(y, item.channels, item.dtype, planar, squeeze), frame.meta)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)


def frame_filter(model: nn.Module | str = "idsa-net-s", scale: int | None = 2, **engine_options: Any) -> Callable[[Any], Any]:
    """A plain callable for foreign pipelines: upscales a batch without exposing the engine.

    Takes a torch tensor (N, 3, H, W) float in [0, 1] (returned on the same device), a numpy array
    (N, H, W, C) or (H, W, C), or a list of arrays, and returns the same kind of thing upscaled.
    """
    engine = Engine(model, scale=scale, **engine_options)

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
