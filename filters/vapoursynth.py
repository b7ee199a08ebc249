"""VapourSynth filter: ``upscale(clip)`` runs IDSA-Net on any RGB, YUV or GRAY clip.

``core.resize`` converts the clip to float RGB (float GRAY for grey clips) and back; frames go to
the engine as planar float32 arrays. A frame request also upscales the next frames (up to the
engine's batch, backwards when the clip is read backwards) and keeps those results in a small
cache, so batching works for any request order and any ``core.num_threads``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import vapoursynth as vs

from idsa_plugin.engine import Engine, EngineOptions
from idsa_plugin.hookspecs import Job
from idsa_plugin.plugins import get_host

if TYPE_CHECKING:
    from torch import nn

__all__ = ["upscale", "FilterJob", "FilterSummary"]

log = logging.getLogger("idsa_plugin")

# resize's names for the matrix coefficients (``matrix_s``) and their ``_Matrix`` values.
MATRICES = {"rgb": 0, "709": 1, "fcc": 4, "470bg": 5, "170m": 6, "240m": 7, "ycgco": 8, "2020ncl": 9,
            "2020cl": 10, "chromancl": 12, "chromacl": 13, "ictcp": 14}
_UNUSABLE_MATRICES = {0, 2, 3}  # RGB, unspecified, reserved: cannot convert YUV with them


FilterJob = Job  # the name before jobs were one type (``idsa_plugin.hookspecs.Job``)


@dataclass
class FilterSummary:
    """Sent with ``job_finished`` once every frame of the clip has been produced."""

    frames: int
    seconds: float
    fps: float


def _describe(clip: vs.VideoNode) -> str:
    size = f"{clip.width}x{clip.height}" if clip.width else "variable size"
    return f"{clip.format.name} {size}, {clip.num_frames} frames at {clip.fps}"


def _parse_matrix(matrix: int | str | None) -> int | None:
    if matrix is None:
        return None
    if isinstance(matrix, str) and not matrix.isdigit():
        if matrix.lower() not in MATRICES:
            raise vs.Error(f"upscale: unknown matrix={matrix!r}; use one of {', '.join(MATRICES)} (or its number)")
        return MATRICES[matrix.lower()]
    return int(matrix)


def _matrix_error(found: str) -> vs.Error:
    return vs.Error(f"upscale: the colour matrix is unknown ({found}): pass matrix=, "
                    f"e.g. matrix=\"709\" (HD) or matrix=\"170m\" (SD)")


def _check_matrix(fmt: vs.VideoFormat, work: vs.VideoFormat, out: vs.VideoFormat, chosen: int | None,
                  matrix: int | str | None) -> None:
    """What the arguments alone tell: a matrix that cannot convert, or an RGB clip going to YUV without one."""
    to_yuv = work.color_family == vs.RGB and out.color_family != vs.RGB  # back from RGB needs a matrix
    if chosen in _UNUSABLE_MATRICES and (fmt.color_family == vs.YUV or to_yuv):
        raise _matrix_error(f"matrix={matrix!r} cannot convert to or from YUV")
    if chosen is None and to_yuv and fmt.color_family != vs.YUV:
        raise _matrix_error("the clip is RGB")


def _tagger(fmt: vs.VideoFormat, chosen: int | None) -> Callable[[int, vs.VideoFrame], vs.VideoFrame]:
    """A ``ModifyFrame`` function that sets the tags ``core.resize`` reads on each frame: ``_Matrix``
    (``matrix=``, else the frame's own, which must be usable) and ``_Range`` (the older, inverted
    ``_ColorRange`` where only that is set; else limited for YUV, full for the others)."""
    def tag(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        props = f.props
        fixed = {"_Range": int(props["_Range"]) if "_Range" in props else
                 int(props["_ColorRange"]) ^ 1 if "_ColorRange" in props else
                 vs.RANGE_LIMITED if fmt.color_family == vs.YUV else vs.RANGE_FULL}
        if fmt.color_family == vs.YUV:
            fixed["_Matrix"] = chosen if chosen is not None else int(props.get("_Matrix", 2))
            if fixed["_Matrix"] in _UNUSABLE_MATRICES:
                raise _matrix_error(f"frame {n} says _Matrix={fixed['_Matrix']}" if "_Matrix" in props else f"frame {n} has no _Matrix")
        if all(k in props and int(props[k]) == v for k, v in fixed.items()):
            return f
        out = f.copy()
        out.props.update(fixed)
        return out

    return tag


def _back_arguments(props: vs.FrameProps, fmt: vs.VideoFormat, out: vs.VideoFormat, chosen: int | None) -> dict[str, Any]:
    """``core.resize`` arguments from the working format to ``out`` for a (tagged) source frame."""
    same_side = (fmt.color_family == vs.RGB) == (out.color_family == vs.RGB)
    full = int(props["_Range"]) == vs.RANGE_FULL if same_side else out.color_family != vs.YUV
    back: dict[str, Any] = {"format": out.id, "range": vs.RANGE_FULL if full else vs.RANGE_LIMITED}
    matrix = chosen if chosen is not None else props.get("_Matrix")
    if matrix is not None and out.color_family != vs.RGB and fmt.color_family != vs.GRAY:
        back["matrix"] = int(matrix)
    if out.color_family == vs.YUV and "_ChromaLocation" in props:
        back["chromaloc"] = int(props["_ChromaLocation"])
    return back


def _back(core: vs.Core, result: vs.VideoNode, tagged: vs.VideoNode, fmt: vs.VideoFormat, out: vs.VideoFormat,
          chosen: int | None) -> vs.VideoNode:
    """``result`` (working format) converted to ``out`` frame by frame with its source frame's tags,
    one ``core.resize`` node per distinct set of tags."""
    nodes: dict[tuple, vs.VideoNode] = {}

    def convert(n: int, f: vs.VideoFrame) -> vs.VideoNode:
        arguments = _back_arguments(f.props, fmt, out, chosen)
        key = tuple(sorted(arguments.items()))
        if key not in nodes:
            nodes[key] = core.resize.Bicubic(result, **arguments)
        return nodes[key]

    shape = core.resize.Point(result, format=out.id, **({"matrix": 1} if out.color_family != vs.RGB and fmt.color_family != vs.GRAY else {}))
    return core.std.FrameEval(shape, convert, prop_src=tagged)  # ``shape`` gives format and size only: never rendered


def _planes(frame: vs.VideoFrame) -> np.ndarray:
    """A float frame copied to a planar array: (3, H, W) for RGB, (H, W) for GRAY."""
    if frame.format.num_planes == 1:
        return np.array(frame[0])
    return np.stack([np.asarray(frame[p]) for p in range(frame.format.num_planes)])


class _Upscaler:
    """The ``ModifyFrame`` selector: upscales a window of frames per request and caches the others."""

    def __init__(self, engine: Engine, source: vs.VideoNode, job: Job, core: vs.Core) -> None:
        self._engine = engine
        self._source = source
        self._job = job
        self._core = core
        self._keep = 2 * engine.batch  # cached results beyond this are evicted, oldest first
        self._done: OrderedDict[int, np.ndarray] = OrderedDict()
        self._busy: set[int] = set()
        self._cond = threading.Condition()
        self._infer = threading.Lock()
        self._last = -2
        self._produced = bytearray(source.num_frames)
        self._remaining = source.num_frames
        self._started = time.perf_counter()

    def __call__(self, n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        image = self._result(n, f)
        out = self._core.create_video_frame(f.format, image.shape[-1], image.shape[-2])
        for p, plane in enumerate(image.reshape(-1, *image.shape[-2:])):
            np.asarray(out[p])[...] = plane
        out.props.update(f.props)
        out.props.pop("_Alpha", None)  # the alpha plane is not upscaled: drop it rather than mismatch
        self._produced_frame(n)
        return out

    def _window(self, n: int) -> list[int]:
        """Frame ``n`` and the frames after it (before it when reading backwards) that nobody has."""
        step = -1 if n == self._last - 1 else 1
        self._last = n
        window = [n]
        k = n + step
        while len(window) < self._engine.batch and 0 <= k < self._source.num_frames and k not in self._done:
            if k in self._busy:
                break
            window.append(k)
            k += step
        return window

    def _result(self, n: int, f: vs.VideoFrame) -> np.ndarray:
        with self._cond:
            while n in self._busy:
                self._cond.wait()
            if n in self._done:
                return self._done.pop(n)
            window = self._window(n)
            self._busy.update(window)
        results: list[np.ndarray] = []
        try:
            frames = [f]
            for k in window[1:]:
                other = self._source.get_frame(k)
                if (other.width, other.height) != (f.width, f.height):
                    break
                frames.append(other)
            with self._infer:
                results = self._engine.upscale_batch([_planes(frame) for frame in frames], planar=True)
        finally:
            with self._cond:
                self._busy.difference_update(window)
                self._done.update(zip(window[1:], results[1:]))
                while len(self._done) > self._keep:
                    self._done.popitem(last=False)
                self._cond.notify_all()
        return results[0]

    def _produced_frame(self, n: int) -> None:
        with self._cond:
            if self._produced[n]:
                return
            self._produced[n] = 1
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            seconds = time.perf_counter() - self._started
            summary = FilterSummary(self._source.num_frames, seconds, self._source.num_frames / seconds)
            get_host().call("job_finished", job=self._job, summary=summary)


def _formats(clip: vs.VideoNode, output_format: int | vs.VideoFormat | None) -> tuple[vs.VideoFormat, vs.VideoFormat, vs.VideoFormat]:
    """The clip's format, the working format (RGBS, GRAYS for grey clips) and the output format, checked."""
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error("upscale: clip must be a video clip (vs.VideoNode)")
    fmt = clip.format
    if fmt is None or fmt.color_family == vs.UNDEFINED:
        raise vs.Error("upscale: clips whose format changes from frame to frame are not supported; "
                       "convert them to one format first (e.g. resize.Bicubic(format=...))")
    try:
        out = fmt if output_format is None else vs.core.get_video_format(output_format)
    except (vs.Error, TypeError):
        out = None
    if out is None or out.color_family == vs.UNDEFINED:
        raise vs.Error(f"upscale: invalid output_format={output_format!r}: pass a format such as vs.YUV420P10")
    return fmt, vs.core.get_video_format(vs.GRAYS if fmt.color_family == vs.GRAY else vs.RGBS), out


def upscale(clip: vs.VideoNode, scale: int = 2, model: nn.Module | str = "idsa-net-s",
            weights: str | os.PathLike | None = None, *, matrix: int | str | None = None,
            output_format: int | vs.VideoFormat | None = None, options: EngineOptions | None = None,
            **engine_options: Any) -> vs.VideoNode:
    """Upscale ``clip`` by ``scale`` with IDSA-Net (``model``: a registered name, weights file or module).

    Takes RGB, YUV (any subsampling) and GRAY, integer or float. YUV is converted with each frame's
    ``_Matrix`` and ``_Range`` (``matrix=`` overrides the matrix: "709", "170m", "2020ncl", ... or its
    number). The result has the input's format at ``scale`` times the size, or ``output_format``; frame
    count, rate and frame properties are kept. Nothing is rendered until a frame is requested.
    How the model runs: ``options`` (:class:`~idsa_plugin.engine.EngineOptions`), with its fields as
    keywords overriding it: ``device``, ``dtype`` (default: fp32 for float output, bf16 where the CPU
    accelerates it for 8-bit output), ``batch``, ``tile``, ``overlap``, ``pre``, ``post``, ``backend``
    and ``compile`` (torch.compile: about a minute to start, then faster).
    """
    fmt, work, out = _formats(clip, output_format)
    chosen = _parse_matrix(matrix)
    _check_matrix(fmt, work, out, chosen, matrix)
    try:
        engine = Engine(model, scale=scale, weights=weights, options=EngineOptions.of(options, **engine_options),
                        output_bits=out.bits_per_sample)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        raise vs.Error(f"upscale: {exc}") from exc
    core = vs.core
    tagged = core.std.ModifyFrame(clip, clip, _tagger(fmt, chosen))
    source = clip if fmt.id == work.id else core.resize.Bicubic(tagged, format=work.id, range=vs.RANGE_FULL)
    s = engine.scale
    if clip.width:
        template = core.std.BlankClip(source, width=clip.width * s, height=clip.height * s, keep=True)
    else:
        template = source  # variable size: each output frame has its own size
    info = getattr(engine.model, "idsa_info", None)
    settings = {"model": info.name if info else type(engine.model).__name__, **engine.describe(), "matrix": chosen}
    job = Job(_describe(clip), f"{out.name} x{s}", clip.num_frames, settings)
    engine.job = job  # the engine reports batch_done for this job
    get_host().call("job_started", job=job)
    log.debug("upscale: %s -> %s with %s", job.source, job.output, settings)
    result = core.std.ModifyFrame(template, source, _Upscaler(engine, source, job, core))
    return result if out.id == work.id else _back(core, result, tagged, fmt, out, chosen)
