"""Shared fixtures: the shared data folder (tests skip with a reason when it is absent) and real models."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from idsa_plugin.evaluate import data_root

try:  # before any VapourSynth core, whatever order the tests run in: vs-mlrt's ov plugin then shares this runtime
    import openvino  # noqa: F401
except ImportError:
    pass

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("shared data not found: set IDSA_DATA or place it at ../shared/data")
    return root


@pytest.fixture(scope="session")
def imdn_weights(data_dir: Path):
    def path(scale: int) -> Path:
        return data_dir / "reference" / "IMDN" / f"IMDN_x{scale}.pth"

    return path


@pytest.fixture(scope="session")
def model_x2():
    """The shipped idsa-net-s x2 weights, loaded on the CPU."""
    from idsa_plugin import load_model

    return load_model("idsa-net-s", scale=2, device="cpu")


@pytest.fixture(scope="session")
def ffprobe() -> str:
    path = shutil.which("ffprobe")
    if path is None:
        pytest.skip("ffprobe not installed (apt-get install ffmpeg)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _threads():
    import torch

    torch.set_num_threads(int(os.environ.get("IDSA_TEST_THREADS", "2")))
