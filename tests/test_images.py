"""``idsa-sr upscale`` on image files: formats, depths, alpha, ICC, atomic and no silent overwrite."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageCms

from idsa_plugin.engine import Engine
from idsa_plugin.evaluate import psnr, rgb_to_y
from idsa_plugin.filters.images import Picture, read_picture, write_picture


@pytest.fixture(scope="module")
def engine(model_x2):
    return Engine(model_x2, device="cpu")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idsa_plugin.cli", "upscale", *args], capture_output=True, text=True, timeout=300)


def pattern(h: int, w: int, channels: int, dtype=np.uint8) -> np.ndarray:
    peak = np.iinfo(dtype).max
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7 + y * 3) % 64 / 63, (np.sin(x / 3.0) + 1) / 2, (y % 9) / 8, ((x // 4 + y // 4) % 2) * 1.0], axis=-1)
    return (base[..., :channels] * peak).round().astype(dtype)


@pytest.mark.parametrize("suffix,channels,dtype", [
    (".png", 3, np.uint8), (".png", 4, np.uint8), (".png", 1, np.uint8), (".png", 1, np.uint16), (".png", 3, np.uint16),
    (".png", 4, np.uint16), (".tif", 3, np.uint16), (".tif", 3, np.uint8), (".webp", 3, np.uint8),
])
def test_lossless_formats_match_the_engine(tmp_path, engine, suffix, channels, dtype):
    pixels = pattern(20, 28, channels, dtype)
    src = write_picture(Picture(pixels), tmp_path / f"in{suffix}")
    source = read_picture(src).pixels
    assert source.shape == pixels.shape and source.dtype == pixels.dtype
    if suffix == ".webp":  # lossy with 4:2:0 chroma: the luma survives (40 dB here; a channel swap gives 23)
        assert psnr(rgb_to_y(source), rgb_to_y(pixels)) > 35
    else:
        assert np.array_equal(source, pixels)
    out = tmp_path / f"out{suffix}"
    run = cli(str(src), "-o", str(out))
    assert run.returncode == 0, run.stderr
    result = read_picture(out).pixels
    assert result.shape == (40, 56, channels) and result.dtype == dtype
    colour = engine.upscale(np.ascontiguousarray(source[..., :3] if channels >= 3 else source))
    expected = np.concatenate([colour, engine.upscale(np.ascontiguousarray(source[..., 3:]))], axis=2) if channels == 4 else colour
    difference = np.abs(result.astype(int) - expected.astype(int))
    if suffix == ".webp":  # lossy: the written file differs a little from what the engine produced
        assert 10 * np.log10(255 ** 2 / np.mean(difference ** 2.0)) > 33
    else:
        assert difference.max() == 0


def test_jpeg_keeps_icc_profile(tmp_path, engine):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "in.jpg"
    Image.fromarray(pattern(24, 24, 3)).save(src, quality=95, icc_profile=icc)
    out = tmp_path / "out.jpg"
    assert cli(str(src), "-o", str(out)).returncode == 0
    with Image.open(out) as img:
        assert img.size == (48, 48) and img.info.get("icc_profile") == icc
    expected = engine.upscale(read_picture(src).pixels)
    difference = np.asarray(Image.open(out)).astype(int) - expected.astype(int)
    assert 10 * np.log10(255 ** 2 / np.mean(difference ** 2.0)) > 33  # JPEG's loss only (35.6 dB; bicubic: 28.9)


def test_many_inputs_to_a_folder_and_no_silent_overwrite(tmp_path):
    srcs = []
    for i in range(2):
        srcs.append(tmp_path / f"a{i}.png")
        Image.fromarray(pattern(12, 12, 3)).save(srcs[-1])
    outdir = tmp_path / "out"
    assert cli(*map(str, srcs), "-o", str(outdir)).returncode == 0
    produced = sorted(p.name for p in outdir.iterdir())
    assert produced == ["a0_x2.png", "a1_x2.png"]
    before = (outdir / "a0_x2.png").read_bytes()
    again = cli(str(srcs[0]), "-o", str(outdir / "a0_x2.png"))
    assert again.returncode == 1 and "exists" in again.stderr and "--overwrite" in again.stderr
    assert (outdir / "a0_x2.png").read_bytes() == before
    assert cli(str(srcs[0]), "-o", str(outdir / "a0_x2.png"), "--overwrite").returncode == 0
    assert not [p for p in outdir.iterdir() if ".part" in p.name]


def test_bad_inputs_are_one_line_errors(tmp_path):
    missing = cli(str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png"))
    assert missing.returncode == 1 and missing.stderr.strip() == f"idsa-sr upscale: error: no such image: {tmp_path / 'nope.png'}"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    wrong = cli(str(text), "-o", str(tmp_path / "o.png"))
    assert wrong.returncode == 1 and "unsupported image type" in wrong.stderr
    assert not (tmp_path / "o.png").exists()
