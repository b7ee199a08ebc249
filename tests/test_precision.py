"""Precision chosen by the hardware: the automatic choice, its quality guard on real frames and on Set5,
fp32 for deep outputs, and the shipped weights' recorded scores against what the code measures now."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from idsa_plugin import load_model
from idsa_plugin.devices import choose_precision, cpu_accelerates_bf16
from idsa_plugin.engine import Engine
from idsa_plugin.evaluate import evaluate_set, model_upscaler

CLIP = Path(__file__).resolve().parent.parent / "examples" / "media" / "bbb_240p_3s.mp4"
CPU = torch.device("cpu")
needs_bf16_cpu = pytest.mark.skipif(not cpu_accelerates_bf16(), reason="this CPU has neither AMX nor AVX512-BF16")


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return float(10 * np.log10(peak ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    """Three real frames (Big Buck Bunny, 426x240), one second apart."""
    with av.open(str(CLIP)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames[::24][:3]


def test_automatic_choice_follows_the_detected_capability():
    auto = choose_precision(None, CPU)
    assert auto.automatic
    assert auto.dtype == (torch.bfloat16 if cpu_accelerates_bf16() else torch.float32)
    assert choose_precision(None, CPU, output_bits=10).dtype == torch.float32
    assert "10-bit" in choose_precision(None, CPU, output_bits=10).reason or not cpu_accelerates_bf16()
    for requested in ("float32", "bfloat16", torch.float16):
        chosen = choose_precision(requested, CPU, output_bits=16)
        assert not chosen.automatic and chosen.dtype == (requested if isinstance(requested, torch.dtype) else getattr(torch, requested))


def test_engine_reports_its_precision(model_x2):
    engine = Engine(model_x2, device="cpu")
    described = engine.describe()
    assert described["dtype"] == str(engine.dtype).removeprefix("torch.") and described["precision"] == engine.precision.reason
    assert Engine(model_x2, device="cpu", dtype="float32").describe()["dtype"] == "float32"


@needs_bf16_cpu
def test_default_precision_stays_within_60_db_of_fp32_on_real_frames(model_x2, clip_frames):
    fast, exact = Engine(model_x2, device="cpu"), Engine(model_x2, device="cpu", dtype="float32")
    assert fast.dtype == torch.bfloat16
    for frame in clip_frames:
        assert psnr(fast.upscale(frame), exact.upscale(frame), 255) > 60


@needs_bf16_cpu
def test_deep_output_keeps_fp32(model_x2, clip_frames):
    """bf16 misses half a 10-bit step on a share of samples, so 10/16-bit outputs and 16-bit frames run in fp32."""
    frame = clip_frames[1]
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    exact_engine = Engine(model_x2, device="cpu", dtype="float32")
    exact = exact_engine.upscale_tensor(x)
    bf16 = Engine(model_x2, device="cpu", dtype="bfloat16").upscale_tensor(x)
    assert ((bf16 - exact).abs() * 1023 > 0.5).float().mean() > 0.001  # 0.77% of samples on this frame
    auto = Engine(model_x2, device="cpu")
    assert auto.dtype == torch.bfloat16
    assert torch.allclose(auto.upscale_tensor(x, output_bits=10), exact, atol=1e-6)
    deep = frame.astype(np.uint16) * 257
    assert np.abs(auto.upscale(deep).astype(np.int64) - exact_engine.upscale(deep).astype(np.int64)).max() <= 1
    assert Engine(model_x2, device="cpu", output_bits=10).dtype == torch.float32


@needs_bf16_cpu
def test_default_precision_scores_set5_within_0_02_db(model_x2, data_dir):
    engine = Engine(model_x2, device="cpu")
    exact = evaluate_set(model_upscaler(model_x2), data_dir / "benchmarks" / "Set5", 2)
    fast = evaluate_set(lambda lr: engine.upscale(lr), data_dir / "benchmarks" / "Set5", 2)
    assert abs(fast.psnr - exact.psnr) <= 0.02, (fast.psnr, exact.psnr)


@pytest.mark.parametrize("name", ["idsa-net-s", "idsa-net"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_metadata_scores_match_what_eval_measures(name, scale, data_dir):
    """The Set5 score recorded in each shipped file is what `idsa-sr eval` measures now, in fp32 (0.01 dB)."""
    model = load_model(name, scale=scale, device="cpu")
    recorded = json.loads(model.idsa_info.metadata["metrics"])["Set5_psnr"]
    measured = evaluate_set(model_upscaler(model), data_dir / "benchmarks" / "Set5", scale).psnr
    assert abs(measured - recorded) <= 0.01, (measured, recorded)
