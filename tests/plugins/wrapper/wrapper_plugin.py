"""A plugin whose hooks are pluggy wrappers, new style and old style, which idsa_plugin refuses."""
import idsa_plugin


@idsa_plugin.hookimpl(wrapper=True)
def resolve_weights(model, scale):
    path = yield
    return path


@idsa_plugin.hookimpl(hookwrapper=True)
def register_frame_filters(register):
    yield


@idsa_plugin.hookimpl
def register_models(register):
    register("wrapper-model", lambda scale: None, scales=(2,))
