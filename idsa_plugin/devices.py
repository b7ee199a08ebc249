"""Device and precision choice shared by the engine, the CLI and the adapters."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger("idsa_plugin")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


class DeviceError(ValueError):
    """An explicitly requested device or precision that is not available."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` picks cuda, then mps, then cpu; an unavailable explicit device is a one-line error."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise DeviceError(f"device {device!r} is not available (CUDA devices: {torch.cuda.device_count()})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device!r} is not available on this machine")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """fp32 on CPU; fp16 on CUDA unless told otherwise (the engine guards it against overflow)."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in DTYPES:
            raise DeviceError(f"unknown dtype {dtype!r}; choose one of {', '.join(sorted(set(DTYPES)))}")
        dtype = DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise DeviceError(f"unsupported dtype {dtype}; use float32, float16 or bfloat16")
    if device.type == "cpu" and dtype != torch.float32:
        log.warning("%s on the CPU is far slower than float32 on most CPUs (10-300x measured on AVX2)", dtype)
    return dtype
