"""The plugin host: discovers plugins, isolates their failures and builds the registries.

Importing this module does not import torch, so listing plugins stays cheap.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from .archs import Architecture

log = logging.getLogger("idsa_plugin")
ENTRY_POINT_GROUP = "idsa_plugin"


class PluginError(RuntimeError):
    """A plugin problem that the caller asked about directly (e.g. an ambiguous model name)."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it, for which scales, and where its weights are."""

    name: str
    factory: Callable[..., Any]
    scales: tuple[int, ...]
    weights: Callable[[int], str | os.PathLike | None] | None = None
    description: str = ""
    plugin: str = ""
    architecture: str | None = None


@dataclass(frozen=True)
class FrameFilterSpec:
    """A registered filter on (N, 3, H, W) float batches."""

    name: str
    function: Callable[[Any], Any]
    description: str = ""
    plugin: str = ""


@dataclass
class PluginHost:
    """Plugin manager plus the model and frame-filter registries built from it."""

    manager: pluggy.PluginManager
    models: dict[str, ModelSpec] = field(default_factory=dict)
    frame_filters: dict[str, FrameFilterSpec] = field(default_factory=dict)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    _architectures: dict[str, Architecture] | None = field(default=None, repr=False)

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of ``hook``; one that raises is reported once and skipped."""
        results = []
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            value = self._call_impl(hook, impl, kwargs)
            if value is not None:
                results.append(value)
        return results

    def call_first(self, hook: str, **kwargs: Any) -> Any:
        """Return the first non-None answer of a ``firstresult`` hook, skipping failing plugins."""
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            value = self._call_impl(hook, impl, kwargs)
            if value is not None:
                return value
        return None

    def _call_impl(self, hook: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        try:
            return impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception as exc:  # noqa: BLE001 - a plugin must never take the host down
            self._report(impl.plugin_name, f"hook {hook} raised {type(exc).__name__}: {exc}")
            return None

    def collect(self, hook: str, register_for: Callable[[str], Callable[..., None]]) -> None:
        """Call every implementation of a ``register_*`` hook with the ``register`` made for its plugin."""
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            self._call_impl(hook, impl, {"register": register_for(impl.plugin_name)})

    def architectures(self) -> dict[str, Architecture]:
        """The built-in architectures and the plugins', by name, collected on first use (it imports no torch)."""
        if self._architectures is None:
            from .archs import ARCHITECTURES, Architecture

            found = dict(ARCHITECTURES)

            def register_for(plugin: str) -> Callable[[Architecture], None]:
                def register(architecture: Architecture) -> None:
                    if not isinstance(architecture, Architecture):
                        self._report(plugin, f"register_architectures: {architecture!r} is not an idsa_plugin.archs.Architecture")
                    elif architecture.name in found:
                        self._report(plugin, f"architecture {architecture.name!r} is already registered; kept the first")
                    else:
                        found[architecture.name] = architecture
                return register

            self.collect("register_architectures", register_for)
            self._architectures = found
        return self._architectures

    def _report(self, plugin: str, message: str) -> None:
        key = f"{plugin}: {message}"
        if key not in self.failures:
            self.failures[key] = message
            log.warning("plugin %s skipped: %s", plugin, message)

    def model(self, name: str) -> ModelSpec:
        """The spec of a registered model, or a one-line error listing the known names."""
        if name in self.duplicates:
            raise PluginError(f"model name {name!r} is registered by several plugins: {', '.join(self.duplicates[name])}")
        try:
            return self.models[name]
        except KeyError:
            raise PluginError(f"unknown model {name!r}; registered: {', '.join(sorted(self.models))}") from None

    def frame_filter(self, name: str) -> FrameFilterSpec:
        """The spec of a registered frame filter, or a one-line error listing the known names."""
        try:
            return self.frame_filters[name]
        except KeyError:
            known = ", ".join(sorted(self.frame_filters)) or "none"
            raise PluginError(f"unknown frame filter {name!r}; registered: {known}") from None


def _names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    return None if value is None else {n.strip() for n in value.split(",") if n.strip()}


def _load_entry_points(host: PluginHost) -> None:
    allow, deny = _names("IDSA_PLUGINS"), _names("IDSA_DISABLE_PLUGINS") or set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in deny or (allow is not None and ep.name not in allow) or host.manager.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            host.manager.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
            host._report(ep.name, f"failed to load: {type(exc).__name__}: {exc}")
            continue
        _refuse_wrappers(host, plugin, ep.name)


def _refuse_wrappers(host: PluginHost, plugin: object, name: str) -> None:
    """Unregister a plugin with wrapper hookimpls: the host calls each implementation on its own (so that
    one failing plugin is skipped, not fatal), which would take a wrapper's generator for its answer."""
    wrappers = sorted(impl.function.__name__ for caller in host.manager.get_hookcallers(plugin) or ()
                      for impl in caller.get_hookimpls() if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper))
    if wrappers:
        host.manager.unregister(plugin)
        host._report(name, f"hooks {', '.join(wrappers)} are wrappers (wrapper=True or hookwrapper=True), which idsa_plugin "
                           "does not support; plugin not loaded")


def _collect(host: PluginHost) -> None:
    def model_register(plugin: str) -> Callable[..., None]:
        def register_model(name: str, factory: Callable[..., Any], scales: Any, weights: Any = None,
                           description: str = "", architecture: str | None = None) -> None:
            spec = ModelSpec(name, factory, tuple(int(s) for s in scales), weights, description, plugin, architecture)
            if name in host.models:
                host.duplicates.setdefault(name, [host.models[name].plugin]).append(plugin)
                host._report(plugin, f"model name {name!r} is also registered by {host.models[name].plugin}")
            else:
                host.models[name] = spec
        return register_model

    def filter_register(plugin: str) -> Callable[..., None]:
        def register_filter(name: str, function: Callable[[Any], Any], description: str = "") -> None:
            if name in host.frame_filters:
                host._report(plugin, f"frame filter {name!r} is also registered by {host.frame_filters[name].plugin}; kept the first")
                return
            host.frame_filters[name] = FrameFilterSpec(name, function, description, plugin)
        return register_filter

    host.collect("register_models", model_register)
    host.collect("register_frame_filters", filter_register)


_host: PluginHost | None = None
_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, built on first use."""
    global _host
    with _lock:
        if _host is None:
            manager = pluggy.PluginManager(hookspecs.PROJECT)
            manager.add_hookspecs(hookspecs)
            host = PluginHost(manager)
            from . import builtin

            manager.register(builtin, name="builtin")
            _load_entry_points(host)
            _collect(host)
            _host = host
        return _host


def reset_host() -> None:
    """Forget the plugin host so that the next use discovers plugins again."""
    global _host
    with _lock:
        _host = None
