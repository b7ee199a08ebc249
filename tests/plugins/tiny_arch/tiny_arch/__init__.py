"""A plugin that brings its own architecture, so that its bare weights files load by detection alone.

Importing it does not import torch: the network lives in ``tiny_arch.net``, imported on first use.
"""
import math

import idsa_plugin

KEYS = ("tiny_body.weight", "tiny_body.bias")


def build(scale, channels=3):
    from .net import TinySR

    return TinySR(scale, channels)


def detect(state_dict):
    return all(key in state_dict for key in KEYS)


def hyperparameters(state_dict):
    weight = state_dict["tiny_body.weight"]
    return {"scale": math.isqrt(weight.shape[0] // 3), "channels": weight.shape[1]}


def owns(model):
    from .net import TinySR

    return isinstance(model, TinySR)


@idsa_plugin.hookimpl
def register_architectures(register):
    from idsa_plugin.archs import Architecture

    register(Architecture("tinysr", detect, hyperparameters, build, owns, scales=(2, 8), supports_bfloat16=False))
