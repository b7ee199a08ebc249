"""host-pipeline: a foreign pipeline that knows nothing of idsa-plugin.

It runs named frame filters, discovered through its own pluggy project and the ``host_pipeline``
entry-point group, over batches of (N, H, W, 3) uint8 frames. idsa-plugin ships the thin adapter
``idsa_plugin.filters.host_pipeline`` and declares it under that group, so installing idsa-plugin
is enough for ``idsa-sr-x2`` to appear here.
"""
from __future__ import annotations

import argparse
import importlib.metadata
from typing import Callable

import numpy as np
import pluggy

PROJECT = "host_pipeline"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
BatchFilter = Callable[[np.ndarray], np.ndarray]


class Specs:
    @hookspec
    def register_frame_filters(self, register: Callable[[str, Callable[[], BatchFilter]], None]) -> None:
        """Call ``register(name, factory)``; ``factory()`` builds the batch filter when first used."""


class Pipeline:
    """Discovers filters once; ``run`` applies the named ones in order to a batch of frames."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(Specs)
        for ep in importlib.metadata.entry_points(group=PROJECT):
            self.manager.register(ep.load(), name=ep.name)
        self.factories: dict[str, Callable[[], BatchFilter]] = {}
        self.manager.hook.register_frame_filters(register=self.factories.__setitem__)
        self._built: dict[str, BatchFilter] = {}

    def run(self, frames: np.ndarray, filters: list[str]) -> np.ndarray:
        for name in filters:
            if name not in self._built:
                self._built[name] = self.factories[name]()
            frames = self._built[name](frames)
        return frames


def main() -> None:
    parser = argparse.ArgumentParser(description="List the frame filters this pipeline has found.")
    parser.parse_args()
    for name in sorted(Pipeline().factories):
        print(name)
