"""A plugin that registers a model name the built-in plugin already uses."""
import idsa_plugin


@idsa_plugin.hookimpl
def register_models(register):
    register("idsa-net-s", lambda scale: None, scales=(2,))


@idsa_plugin.hookimpl
def resolve_weights(model, scale):
    return None
