"""The thin adapter that registers IDSA-Net into ``host_pipeline`` (examples/host_pipeline).

Declared in idsa-plugin's pyproject under the ``host_pipeline`` entry-point group. The filters are
built lazily, so the host's discovery does not load torch.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import pluggy

hookimpl = pluggy.HookimplMarker("host_pipeline")


def build_filter(scale: int) -> Callable[[Any], Any]:
    from idsa_plugin.engine import frame_filter

    return frame_filter("idsa-net-s", scale=scale)


@hookimpl
def register_frame_filters(register: Callable[[str, Callable], None]) -> None:
    for scale in (2, 3, 4):
        register(f"idsa-sr-x{scale}", partial(build_filter, scale))
