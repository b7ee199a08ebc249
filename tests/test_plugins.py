"""The pluggy hook system: discovery, isolation, the example plugin, a foreign host, spandrel."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from idsa_plugin import frame_filter, load_model
from idsa_plugin.archs import SizeRequirements, architecture_of, size_requirements, supported_scales
from idsa_plugin.engine import Engine
from idsa_plugin.plugins import get_host, reset_host
from idsa_plugin.weights_io import WeightsError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "plugins"
PIP = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idsa_plugin.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def python_path(*folders: Path) -> dict:
    """Environment for child processes with ``folders`` in front of the module search path."""
    return {"PYTHONPATH": os.pathsep.join([*map(str, folders), os.environ.get("PYTHONPATH", "")])}


def with_fixture_plugins(*names: str) -> dict:
    """Environment that puts fixture plugin distributions (dist-info + module) on the path."""
    return python_path(*(FIXTURES / n for n in names))


@contextlib.contextmanager
def plugins_on_path(*folders: Path) -> Iterator[dict]:
    """Plugin distributions (dist-info + module) on ``sys.path`` in this process, and the environment
    that gives them to child processes. Nothing is installed: leaving (or a killed run) leaves no trace."""
    paths = [str(folder) for folder in folders]
    sys.path[:0] = paths
    reset_host()
    try:
        yield python_path(*folders)
    finally:
        del sys.path[:len(paths)]
        for name, module in list(sys.modules.items()):
            if any(str(getattr(module, "__file__", None) or "").startswith(path) for path in paths):
                del sys.modules[name]
        reset_host()


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory) -> Iterator[dict]:
    """examples/plugin_example on the path, with a dist-info made from its pyproject.toml in a temporary folder."""
    source = ROOT / "examples" / "plugin_example"
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    site = tmp_path_factory.mktemp("example_plugin")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = project["entry-points"]["idsa_plugin"]
    (info / "entry_points.txt").write_text("[idsa_plugin]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    with plugins_on_path(site, source) as env:
        yield env


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
    listing = cli("plugins", env=example_plugin)
    assert "example" in listing.stdout and "example-sharpen" in listing.stdout
    rng = np.random.default_rng(1)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(src)
    plain, sharp = tmp_path / "plain.png", tmp_path / "sharp.png"
    assert cli("upscale", str(src), "-o", str(plain), "--model", "example-bilinear", env=example_plugin).returncode == 0
    run = cli("upscale", str(src), "-o", str(sharp), "--model", "example-bilinear", "--post", "example-sharpen", env=example_plugin)
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


def test_wrapper_hookimpls_are_refused_with_a_clear_message(model_x2):
    with plugins_on_path(FIXTURES / "wrapper") as env:
        host = get_host()
        problems = [message for key, message in host.failures.items() if key.startswith("wrapper:")]
        model = load_model("idsa-net-s", scale=2, device="cpu")  # the wrapper's generator was taken as a weights path
        run = cli("info", "--model", "idsa-net-s", "--scale", "2", env=env)
        assert "wrapper-model" not in host.models
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        assert torch.equal(model(x), model_x2(x))
    assert len(problems) == 1, host.failures
    assert all(word in problems[0] for word in ("resolve_weights", "register_frame_filters", "wrapper", "not loaded"))
    assert run.returncode == 0 and run.stderr.count("plugin wrapper skipped") == 1


def test_plugin_architecture_loads_from_a_bare_weights_file(tmp_path):
    path = tmp_path / "tiny-x2.pth"
    with plugins_on_path(FIXTURES / "tiny_arch"):
        from tiny_arch import build

        original = build(scale=2)
        torch.save(original.state_dict(), path)
        model = load_model(path, device="cpu")
        arch = architecture_of(model)
        assert supported_scales() == (2, 3, 4, 8)
    assert type(model).__name__ == "TinySR" and model.idsa_info.name == "tinysr" and model.idsa_info.scale == 2
    assert arch.name == "tinysr" and arch.supports_half and not arch.supports_bfloat16
    assert size_requirements(model) == SizeRequirements()  # tinysr is unknown again outside the block
    x = torch.rand(1, 3, 6, 10)
    with torch.no_grad():
        assert torch.equal(model(x), original(x)) and model(x).shape == (1, 3, 12, 20)
    assert supported_scales() == (2, 3, 4)
    with pytest.raises(WeightsError, match="cannot recognise the architecture"):
        load_model(path, device="cpu")


def test_architectures_and_scale_choices_do_not_import_torch():
    code = ("import sys, idsa_plugin.archs as a; print('torch' in sys.modules, sorted(a.registered_architectures()), "
            "a.supported_scales())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "['idsa',", "'imdn']", "(2,", "3,", "4)"]


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (4, 4), (3, 9), (5, 5)])
def test_spandrel_takes_inputs_below_the_reflect_padding_minimum(height, width):
    """Fault 6: 1-4 px inputs raised in the model's reflect padding; spandrel now pads them to the declared minimum."""
    spandrel = pytest.importorskip("spandrel")
    from idsa_plugin.builtin import shipped_weights
    from idsa_plugin.filters.spandrel import install

    install()
    descriptor = spandrel.ModelLoader().load_from_file(shipped_weights("idsa-net-s", 2))
    assert descriptor.size_requirements == spandrel.SizeRequirements(minimum=5)
    colour = torch.tensor([0.8, 0.3, 0.1]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = descriptor(colour.expand(1, 3, height, width).contiguous())
    assert out.shape == (1, 3, 2 * height, 2 * width)
    assert (out - colour).abs().max() < 0.05  # a flat picture stays flat
