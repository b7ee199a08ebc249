"""Device and precision choice shared by the engine, the CLI and the adapters."""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
from dataclasses import dataclass

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


def _parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, str):
        if dtype.lower() not in DTYPES:
            raise DeviceError(f"unknown dtype {dtype!r}; choose one of {', '.join(sorted(set(DTYPES)))}")
        dtype = DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise DeviceError(f"unsupported dtype {dtype}; use float32, float16 or bfloat16")
    return dtype


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; torch's own detection where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported", "avx2": "_is_avx2_supported"}
        return frozenset(flag for flag, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)())


@functools.cache
def cpu_description() -> str:
    """CPU model name and the flags that decide precision, for benchmark records and ``info``."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    shown = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if flag in cpu_flags()]
    return f"{name}, {os.cpu_count()} CPUs, flags: {' '.join(shown) or 'none of avx2/avx512/amx'}"


def cpu_accelerates_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 convs and matmuls run in hardware (AVX2-only CPUs emulate bf16, 10-300x slower)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


@dataclass(frozen=True)
class Precision:
    """The precision a model runs in and why it was chosen."""

    dtype: torch.dtype
    reason: str
    automatic: bool = True

    def __str__(self) -> str:
        return f"{str(self.dtype).removeprefix('torch.')} ({self.reason})"


def choose_precision(dtype: str | torch.dtype | None, device: torch.device, output_bits: int = 8) -> Precision:
    """An explicit ``dtype`` always wins; ``None`` picks the fastest precision that keeps quality on ``device``.

    CUDA: fp16 (the engine recomputes overflowing batches in fp32). CPU: bf16 where the CPU accelerates it
    and the output has at most 8 bits per sample (bf16 stays above 60 dB PSNR of fp32 but errs by more than
    half a 10-bit step, see ``benchmarks/RESULTS.md``); fp32 otherwise.
    """
    if dtype is not None:
        chosen = _parse_dtype(dtype)
        if device.type == "cpu" and chosen != torch.float32 and not cpu_accelerates_bf16():
            log.warning("%s on this CPU (no AMX/AVX512-BF16) is far slower than float32 (10-300x measured on AVX2)", chosen)
        return Precision(chosen, "requested", automatic=False)
    if device.type == "cuda":
        return Precision(torch.float16, "CUDA: fp16 tensor cores, overflowing batches recomputed in fp32")
    if device.type != "cpu":
        return Precision(torch.float32, f"{device.type}: fp32")
    if not cpu_accelerates_bf16():
        return Precision(torch.float32, "CPU without AMX/AVX512-BF16: bf16 would be emulated")
    if output_bits > 8:
        return Precision(torch.float32, f"{output_bits}-bit output: bf16 errs by more than half an output step")
    flag = "AMX" if "amx_bf16" in cpu_flags() else "AVX512-BF16"
    return Precision(torch.bfloat16, f"CPU with {flag}, 8-bit output")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """A model's dtype for :func:`load_model`: fp32 on the CPU and fp16 on CUDA unless told otherwise."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    return choose_precision(dtype, device).dtype


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keep freed activation memory in the process heap instead of returning it to the system (glibc).

    Without this, every large tensor is mmapped and unmapped, and the page faults of touching it anew cost
    20-25% of a CPU forward pass (measured: ``benchmarks/RESULTS.md``); the price is that the process keeps
    its peak memory. Done once per process, on Linux with glibc only; ``IDSA_KEEP_MALLOC=1`` opts out.
    """
    if os.environ.get("IDSA_KEEP_MALLOC") == "1" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)  # glibc only
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    # one arena: threads' own arenas (the engine's worker) give memory back by their own rules (measured: 5x
    # the page faults of the demo without this)
    return bool(mallopt and mallopt(m_trim_threshold, 2 ** 31 - 1) and mallopt(m_mmap_threshold, 2 ** 30)
                and mallopt(m_arena_max, 1))
