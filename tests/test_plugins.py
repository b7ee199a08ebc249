"""The pluggy hook system: discovery, isolation, the example plugin, a foreign host, spandrel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from idsa_plugin import frame_filter, load_model
from idsa_plugin.engine import Engine
from idsa_plugin.plugins import get_host, reset_host

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "plugins"
PIP = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idsa_plugin.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def with_fixture_plugins(*names: str) -> dict:
    """Environment that puts fixture plugin distributions (dist-info + module) on the path."""
    return {"PYTHONPATH": os.pathsep.join([*(str(FIXTURES / n) for n in names), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def example_plugin():
    """pip-install examples/plugin_example into the venv for this module, then remove it."""
    subprocess.run([*PIP, str(ROOT / "examples" / "plugin_example")], check=True)
    reset_host()
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "idsa-example-plugin"], check=True)
    reset_host()


def test_importing_hookspecs_and_host_does_not_import_torch():
    code = "import sys, idsa_plugin.plugins, idsa_plugin.hookspecs; h = idsa_plugin.plugins.get_host(); print('torch' in sys.modules, sorted(h.models))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False") and "idsa-net-s" in out


def test_builtin_models_come_through_the_hook():
    host = get_host()
    assert {"idsa-net", "idsa-net-s", "imdn"} <= set(host.models)
    assert all(host.models[n].plugin == "builtin" for n in ("idsa-net", "idsa-net-s", "imdn"))


def test_broken_plugins_are_reported_once_and_skipped():
    env = with_fixture_plugins("broken_import", "broken_hook")
    run = cli("plugins", "--json", env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert any("broken-import" in p and "failed to load" in p for p in report["problems"])
    assert any("broken-hook" in p and "register_models" in p for p in report["problems"])
    assert "idsa-net-s" in {m for p in report["plugins"] for m in p["models"]}
    assert run.stderr.count("plugin broken-import skipped") == 1
    info = cli("info", "--model", "idsa-net-s", "--scale", "2", "--json", env=env)
    assert info.returncode == 0 and json.loads(info.stdout)[0]["parameters"] > 0


def test_allow_and_deny_lists():
    env = with_fixture_plugins("broken_import")
    denied = cli("plugins", "--json", env={**env, "IDSA_DISABLE_PLUGINS": "broken-import"})
    assert json.loads(denied.stdout)["problems"] == []
    allowed = cli("plugins", "--json", env={**env, "IDSA_PLUGINS": "nothing-else"})
    assert json.loads(allowed.stdout)["problems"] == []


def test_duplicate_model_name_names_both_plugins():
    run = cli("info", "--model", "idsa-net-s", env=with_fixture_plugins("duplicate"))
    assert run.returncode == 1
    assert "builtin" in run.stderr and "duplicate" in run.stderr and "idsa-net-s" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("idsa-sr info: error: model name 'idsa-net-s' is registered by several plugins")
    other = cli("info", "--model", "imdn", "--scale", "2", env=with_fixture_plugins("duplicate"))
    assert other.returncode == 0, other.stderr


def test_example_plugin_model_and_post_filter(example_plugin, tmp_path):
    from PIL import Image

    host = get_host()
    assert host.models["example-bilinear"].plugin == "example"
    assert host.frame_filters["example-sharpen"].plugin == "example"
    listing = cli("plugins")
    assert "example" in listing.stdout and "example-sharpen" in listing.stdout
    rng = np.random.default_rng(1)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(src)
    plain, sharp = tmp_path / "plain.png", tmp_path / "sharp.png"
    assert cli("upscale", str(src), "-o", str(plain), "--model", "example-bilinear").returncode == 0
    run = cli("upscale", str(src), "-o", str(sharp), "--model", "example-bilinear", "--post", "example-sharpen")
    assert run.returncode == 0, run.stderr
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(sharp))
    assert a.shape == b.shape == (48, 64, 3)
    engine = Engine("example-bilinear", scale=2, post=["example-sharpen"], device="cpu")
    assert np.abs(engine.upscale(np.asarray(Image.open(src))).astype(int) - b.astype(int)).max() <= 1
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1


def test_frame_filter_callable_for_foreign_hosts(model_x2):
    upscale = frame_filter(model_x2, scale=2, device="cpu")
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 255, (2, 16, 24, 3), dtype=np.uint8)
    out = upscale(batch)
    assert out.shape == (2, 32, 48, 3) and out.dtype == np.uint8
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    t_out = upscale(tensor)
    assert t_out.shape == (2, 3, 32, 48)
    assert (t_out * 255).round().permute(0, 2, 3, 1).numpy().astype(np.uint8).tolist() == out.tolist()


def test_host_pipeline_discovers_idsa_through_its_entry_points(tmp_path):
    subprocess.run([*PIP, "--target", str(tmp_path / "site"), str(ROOT / "examples" / "host_pipeline")], check=True)
    code = (
        "import numpy as np, host_pipeline, idsa_plugin\n"
        "p = host_pipeline.Pipeline()\n"
        "frames = np.random.default_rng(3).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)\n"
        "out = p.run(frames, ['idsa-sr-x2'])\n"
        "ref = idsa_plugin.frame_filter('idsa-net-s', scale=2)(frames)\n"
        "print(sorted(p.factories), out.shape, int(np.abs(out.astype(int) - ref.astype(int)).max()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "'idsa-sr-x2'" in out.stdout and "(2, 32, 32, 3) 0" in out.stdout


def test_spandrel_loads_shipped_weights():
    spandrel = pytest.importorskip("spandrel")
    from idsa_plugin.builtin import shipped_weights
    from idsa_plugin.filters.spandrel import install

    install()
    descriptor = spandrel.ModelLoader().load_from_file(shipped_weights("idsa-net-s", 2))
    assert descriptor.architecture.id == "IDSA-Net" and descriptor.scale == 2
    assert descriptor.tiling == spandrel.ModelTiling.DISCOURAGED
    ours = load_model("idsa-net-s", scale=2, device="cpu")
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.allclose(descriptor(x), ours(x).clamp(0, 1), atol=1e-6)
