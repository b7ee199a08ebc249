"""A plugin whose hooks raise."""
import idsa_plugin


@idsa_plugin.hookimpl
def register_models(register):
    raise RuntimeError("register_models fails on purpose")


@idsa_plugin.hookimpl
def job_started(job):
    raise RuntimeError("job_started fails on purpose")
