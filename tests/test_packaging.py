"""The package installs as a wheel and editable: adapters and shipped weights inside ``idsa_plugin``."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    return next(out.glob("idsa_plugin-*.whl"))


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("idsa_plugin/filters/vapoursynth.py", "idsa_plugin/filters/pyav/__init__.py", "idsa_plugin/filters/ray_batch/__init__.py", "idsa_plugin/weights/__init__.py",
                     "idsa_plugin/weights/idsa-net-s-x2.safetensors", "idsa_plugin/archs/idsa/arch.py"):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "idsa-sr = idsa_plugin.cli:main" in text and "[host_pipeline]" in text


def test_wheel_install_imports_adapters_and_finds_weights(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True, timeout=600)
    code = ("import idsa_plugin, idsa_plugin.filters.vapoursynth as vs_filter, idsa_plugin.filters.pyav as av_filter\n"
            "from idsa_plugin import load_model\n"
            "m = load_model('idsa-net-s', scale=2, device='cpu')\n"
            "print(idsa_plugin.__file__, vs_filter.__file__, av_filter.__file__, m.idsa_info.weights, sep='\\n')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    paths = out.stdout.split()
    assert len(paths) == 4 and all(p.startswith(str(target)) for p in paths), paths


def test_editable_install_maps_the_same_modules():
    code = "import idsa_plugin.filters.vapoursynth as v, idsa_plugin.weights as w; print(v.__file__); print(w.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout.split()
    assert out == [str(ROOT / "filters" / "vapoursynth.py"), str(ROOT / "weights" / "__init__.py")]
