"""Image files in and out: PNG, JPEG, WebP and TIFF; 8- and 16-bit; grey, RGB and RGBA.

Pillow reads and writes everything but 16-bit colour, which goes through PyAV's image codecs.
The ICC profile is carried where Pillow writes the file; alpha is upscaled as its own grey frame.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from idsa_plugin.atomic import atomic_path
from idsa_plugin.engine import Engine

SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}
_AV_FORMATS = {".png": ("png", "rgb48be", "rgba64be"), ".tif": ("tiff", "rgb48le", "rgba64le"), ".tiff": ("tiff", "rgb48le", "rgba64le")}


@dataclass
class Picture:
    """Pixels as (H, W, C) uint8/uint16 (C = 1, 3 or 4) and the ICC profile, if any."""

    pixels: np.ndarray
    icc: bytes | None = None


_COLOUR_16 = {"rgb48be": "rgb48le", "rgb48le": "rgb48le", "rgba64be": "rgba64le", "rgba64le": "rgba64le"}


def _colour_16bit_format(path: Path) -> str | None:
    """The numpy-side format to decode a 16-bit colour PNG/TIFF with, or None for other files."""
    import av

    with av.open(str(path)) as container:
        return _COLOUR_16.get(container.streams.video[0].codec_context.pix_fmt or "")


def _read_16bit_colour(path: Path, fmt: str) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format=fmt)


def read_picture(path: str | os.PathLike) -> Picture:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: unsupported image type (use {', '.join(sorted(SUFFIXES))})")
    with Image.open(path) as img:
        icc = img.info.get("icc_profile")
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            pixels = np.asarray(img.convert("I;16") if mode != "I;16" else img).astype(np.uint16)[..., None]
        elif mode in ("L", "1", "P", "LA", "PA"):
            pixels = np.asarray(img.convert("LA" if "A" in mode or "transparency" in img.info else "L"))
        else:
            pixels = np.asarray(img.convert("RGBA" if "A" in mode or "transparency" in img.info else "RGB"))
    fmt = _colour_16bit_format(path) if path.suffix.lower() in _AV_FORMATS and pixels.dtype == np.uint8 else None
    if fmt is not None:
        pixels = _read_16bit_colour(path, fmt)
    return Picture(pixels if pixels.ndim == 3 else pixels[..., None], icc)


def write_picture(picture: Picture, path: str | os.PathLike, overwrite: bool = False, quality: int = 95) -> Path:
    """Write atomically; refuses an existing file unless ``overwrite``."""
    path = Path(path)
    suffix = path.suffix.lower()
    pixels = picture.pixels
    with atomic_path(path, overwrite=overwrite) as tmp:
        if pixels.dtype == np.uint16 and pixels.shape[2] > 1:
            if suffix not in _AV_FORMATS:
                raise ValueError(f"{path}: 16-bit colour needs PNG or TIFF output")
            _write_16bit_colour(pixels, tmp, suffix)
        else:
            if pixels.dtype == np.uint16:
                img = Image.fromarray(pixels[..., 0])
            else:
                img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
            options = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
            if picture.icc:
                options["icc_profile"] = picture.icc
            fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}[suffix]
            img.save(tmp, format=fmt, **options)
    return path


def _write_16bit_colour(pixels: np.ndarray, path: Path, suffix: str) -> None:
    import av

    codec, rgb_fmt, rgba_fmt = _AV_FORMATS[suffix]
    alpha = pixels.shape[2] == 4
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream(codec)
        stream.width, stream.height = pixels.shape[1], pixels.shape[0]
        stream.pix_fmt = rgba_fmt if alpha else rgb_fmt
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgba64le" if alpha else "rgb48le")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def upscale_picture(engine: Engine, picture: Picture) -> Picture:
    """Upscale colour (or grey) through the engine, and alpha separately as a grey frame."""
    pixels = picture.pixels
    colour, alpha = (pixels[..., :-1], pixels[..., -1:]) if pixels.shape[2] in (2, 4) else (pixels, None)
    out = engine.upscale(np.ascontiguousarray(colour))
    if alpha is not None:
        out = np.concatenate([out, engine.upscale(np.ascontiguousarray(alpha))], axis=2)
    return Picture(out, picture.icc)


def output_path(source: Path, output: Path, scale: int, many: bool) -> Path:
    """``output`` itself for one input with a file name, else ``output/<stem>_x<scale><suffix>``."""
    if not many and output.suffix.lower() in SUFFIXES and not output.is_dir():
        return output
    return output / f"{source.stem}_x{scale}{source.suffix}"
