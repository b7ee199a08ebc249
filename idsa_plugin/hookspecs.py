"""Hook specifications of the ``idsa_plugin`` pluggy project.

Plugins are modules or objects with functions marked ``@idsa_plugin.hookimpl`` and are found through
the ``idsa_plugin`` entry-point group. Every hook takes keyword arguments; an implementation may
accept fewer arguments than its spec. Importing this module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import pluggy

PROJECT = "idsa_plugin"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass
class Job:
    """One job as plugins see it: a transcode, one video of a batch, or a VapourSynth ``upscale`` clip.

    ``source`` and ``output`` name the input and the result (paths, or clip formats), ``frames`` is how
    many frames it makes, ``settings`` how: model, scale, the engine's resolved settings, encoding.
    """

    source: str
    output: str
    frames: int
    settings: dict[str, Any]


@runtime_checkable
class JobSummary(Protocol):
    """What ``job_finished`` receives; adapters add their own fields (a transcode's sizes, codec, ``error``)."""

    frames: int
    seconds: float
    fps: float


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Add super-resolution models.

    Call ``register(name, factory, scales, weights=None, description="")`` once per model:
    ``factory(scale, **hyperparameters)`` builds the ``torch.nn.Module`` (RGB in [0, 1] to RGB),
    ``scales`` lists the supported factors and ``weights(scale)`` returns a path to weights for a
    scale, or None when there are none.
    """


@hookspec
def register_frame_filters(register: Callable[..., None]) -> None:
    """Add named filters on batches of frames.

    Call ``register(name, function, description="")``. ``function(batch)`` takes and returns a
    float tensor of shape (N, 3, H, W) in [0, 1] on the engine's device; the engine runs filters
    named in ``pre=[...]`` before super-resolution and those in ``post=[...]`` after it.
    """


@hookspec
def register_architectures(register: Callable[..., None]) -> None:
    """Add architectures, so that a bare weights file of one loads without naming its model.

    Call ``register(architecture)`` with an ``idsa_plugin.archs.Architecture`` (detection and
    hyperparameters from a state dict, ``build``, ``owns``, scales, size requirements, precisions).
    Asked on first need (loading a weights file, the ``--scale`` choices), not when plugins load.
    """


@hookspec(firstresult=True)
def resolve_weights(model: str, scale: int) -> str | None:
    """Return a path to weights for ``model`` at ``scale``, or None to let other plugins answer.

    The first plugin that answers wins; the model's own ``weights`` finder is asked last.
    """


@hookspec
def job_started(job: Job) -> None:
    """``job`` starts."""


@hookspec
def batch_done(job: Job, frames: int) -> None:
    """The engine finished a batch of ``frames`` frames for ``job``."""


@hookspec
def job_finished(job: Job, summary: JobSummary) -> None:
    """``job`` ended, done or failed; ``summary`` holds its counts and timings (a transcode's ``error`` says why it failed)."""
