"""The streaming engine: order and metadata, batching across size changes, dtypes and layouts,
tiling against the whole frame, the fp16 overflow guard, device errors, bounded memory."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import torch

from idsa_plugin.devices import DeviceError, resolve_device
from idsa_plugin.engine import Engine, Frame
from idsa_plugin.evaluate import load_rgb


@pytest.fixture(scope="module")
def engine(model_x2):
    """fp32: outputs then agree to a level whatever the batch (bf16 kernels round differently per batch size)."""
    return Engine(model_x2, batch=3, device="cpu", dtype="float32")


def assert_threads_end(before: set[threading.Thread], seconds: float = 5.0) -> None:
    """Every thread started since ``before`` ends within ``seconds``."""
    deadline = time.monotonic() + seconds
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(threading.enumerate()) - before


def frames(count: int, h: int = 16, w: int = 24, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(count)]


def test_stream_keeps_order_and_metadata_across_size_changes(engine):
    items = frames(4) + frames(2, 12, 20, seed=1) + frames(3, seed=2)
    out = list(engine.stream(Frame(img, {"pts": i}) for i, img in enumerate(items)))
    assert [f.meta["pts"] for f in out] == list(range(len(items)))
    assert [f.image.shape for f in out] == [(img.shape[0] * 2, img.shape[1] * 2, 3) for img in items]
    for img, f in zip(items, out):  # batches of 3 against single frames: oneDNN blocks by batch, so a level may flip
        assert np.abs(f.image.astype(int) - engine.upscale(img).astype(int)).max() <= 1


def test_batch_and_single_frame_agree(model_x2):
    items = frames(5)
    batched = Engine(model_x2, batch=5, device="cpu", dtype="float32").upscale_batch(items)  # see the engine fixture
    single = [Engine(model_x2, batch=1, device="cpu", dtype="float32").upscale(img) for img in items]
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(batched, single))


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 255), (np.uint16, 65535), (np.float16, 1.0), (np.float32, 1.0)])
def test_dtypes_and_layouts(engine, dtype, peak):
    base = frames(1)[0].astype(np.float64) / 255
    image = (base * peak).round().astype(dtype) if peak > 1 else base.astype(dtype)
    reference = engine.upscale(frames(1)[0]).astype(np.float64) / 255
    hwc = engine.upscale(image)
    chw = engine.upscale(np.ascontiguousarray(image.transpose(2, 0, 1)), planar=True)
    assert hwc.dtype == dtype and hwc.shape == (32, 48, 3)
    assert np.array_equal(chw.transpose(1, 2, 0), hwc)
    assert np.abs(hwc.astype(np.float64) / peak - reference).max() < 2 / 255
    grey = engine.upscale(image[..., 0])
    assert grey.shape == (32, 48) and grey.dtype == dtype


def test_tiles_blend_close_to_the_whole_frame(model_x2, data_dir):
    image = load_rgb(data_dir / "benchmarks" / "Set14" / "lenna.png")[:96, :128]
    whole = Engine(model_x2, tile=0, device="cpu").upscale(image).astype(np.float64)
    tiled = Engine(model_x2, tile=(48, 48), device="cpu").upscale(image).astype(np.float64)
    difference = np.abs(whole - tiled)
    assert difference.mean() < 0.5, difference.mean()
    assert difference.max() < 40


def test_fp16_overflow_is_recomputed_in_fp32(caplog):
    """Shipped weights with the last conv scaled x1e6: its output passes fp16's range, not fp32's. (Scaling the
    first conv no longer works: the fine-tuned weights' unbounded LKA gates then overflow fp32 too.)"""
    from idsa_plugin import load_model

    model = load_model("idsa-net-s", scale=2, device="cpu")
    with torch.no_grad():
        model.upsample[0].weight.mul_(1e6)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    engine = Engine(model, dtype="float16", device="cpu")
    with caplog.at_level(logging.WARNING, logger="idsa_plugin"):
        out = engine.upscale_tensor(x)
        engine.upscale_tensor(x)
    assert torch.isfinite(out).all()
    with torch.no_grad():
        assert not torch.isfinite(model.half()(x.half())).all()
    assert sum("overflowed" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precisions_run_on_any_cpu(dtype):
    """An explicit bf16 or fp16 runs on every CPU (oneDNN's fused ops take them only where the CPU has their
    instructions: AVX2-only CPUs run aten's emulated kernels instead) and stays near fp32."""
    from idsa_plugin import load_model

    model = load_model("idsa-net-s", scale=2, device="cpu")
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    reference = Engine(model, dtype="float32", device="cpu").upscale_tensor(x)
    out = Engine(model, dtype=dtype, device="cpu").upscale_tensor(x)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert 10 * torch.log10(1 / torch.mean((out - reference) ** 2)) > 35


def test_unavailable_device_is_a_one_line_error():
    with pytest.raises(DeviceError, match="not available"):
        resolve_device("cuda:7")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("quantum")
    assert resolve_device("cpu").type == "cpu"


def test_errors_from_the_source_reach_the_caller_and_threads_end(engine):
    def broken():
        yield from frames(2)
        raise RuntimeError("decoder broke")

    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="decoder broke"):
        list(engine.stream(broken()))
    assert_threads_end(before)  # the stream returns at once; its threads end right after


def test_bounded_in_flight_work(engine):
    """The reader pulls at most a few batches ahead of the consumer: memory does not grow with the stream."""
    pulled = []

    def source():
        for i, img in enumerate(frames(40, 8, 8)):
            pulled.append(i)
            yield img

    stream = engine.stream(source())
    next(stream)
    threading.Event().wait(0.5)
    ahead = len(pulled)
    stream.close()
    # two bounded queues, one batch in the worker, one at the consumer, one being built (+ the frame that closes it)
    assert ahead <= engine.batch * (2 * engine.inflight + 3) + 1 < 40


def test_openvino_backend_matches_torch(model_x2):
    """OpenVINO in f32 matches torch to a level; in bf16 (the hardware's precision) it stays close to fp32."""
    pytest.importorskip("openvino")
    image = frames(1, 24, 32)[0]
    reference = Engine(model_x2, device="cpu", dtype="float32").upscale(image).astype(float)
    ov_fp32 = Engine(model_x2, device="cpu", dtype="float32", backend="openvino").upscale(image).astype(float)
    assert np.abs(reference - ov_fp32).max() <= 1
    ov_bf16 = Engine(model_x2, device="cpu", dtype="bfloat16", backend="openvino").upscale(image).astype(float)
    assert 10 * np.log10(255 ** 2 / np.mean((ov_bf16 - reference) ** 2)) > 40
    with pytest.raises(ValueError, match="float32 or bfloat16 on the CPU only"):
        Engine(model_x2, device="cpu", dtype="float16", backend="openvino")


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4, 7)])
def test_frames_smaller_than_the_model_takes(engine, size):
    """IDSA-Net needs 5 px (its reflect padding): smaller frames are edge-padded and the result cropped."""
    flat = np.full((*size, 3), (40, 120, 200), dtype=np.uint8)
    out = engine.upscale(flat)
    assert out.shape == (2 * size[0], 2 * size[1], 3)
    assert np.abs(out.astype(int) - flat[0, 0].astype(int)).max() <= 3


def test_closing_a_stream_on_a_slow_source_returns_at_once_and_threads_end(model_x2):
    """Fault: close() waited seconds for a reader stuck in a slow source and leaked its thread."""
    engine = Engine(model_x2, batch=1, device="cpu")
    release = threading.Event()

    def slow_source():
        yield from frames(2)
        release.wait(30)  # a decoder that takes its time
        yield from frames(1)

    before = set(threading.enumerate())
    stream = engine.stream(slow_source())
    start = time.monotonic()
    next(stream)
    assert time.monotonic() - start < 10  # the first frame does not wait for the slow source
    start = time.monotonic()
    stream.close()
    assert time.monotonic() - start < 1.0
    release.set()  # the source returns: every pipeline thread must end now
    assert_threads_end(before)
