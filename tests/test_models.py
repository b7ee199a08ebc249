"""IDSA-Net and IMDN: budgets, shared attention, shapes, hyperparameter inference, load_model errors."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from idsa_plugin import load_model
from idsa_plugin.archs import detect_architecture
from idsa_plugin.archs.idsa import hyperparameters
from idsa_plugin.archs.idsa.arch import IDSANet, WindowAttention
from idsa_plugin.commands.info import model_cost, module_cost
from idsa_plugin.models import build_model
from idsa_plugin.weights_io import WeightsError, read_weights, write_weights


class SoftmaxCounter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.softmax, torch.Tensor.softmax, torch.nn.functional.softmax):
            self.calls += 1
        return func(*args, **(kwargs or {}))


def macs(model: torch.nn.Module, scale: int) -> float:
    with torch.device("meta"):
        x = torch.empty(1, 3, 720 // scale, 1280 // scale)
    with FlopCounterMode(display=False) as counter:
        model.to("meta")(x)
    return counter.get_total_flops() / 2


def test_parameter_budgets_and_variant_cost():
    full, small = model_cost("idsa-net", 4), model_cost("idsa-net-s", 4)
    assert full["parameters"] <= 752_000
    assert small["gmacs_1280x720"] / full["gmacs_1280x720"] <= 0.25  # the video variant: a fifth of the MACs
    assert model_cost("imdn", 2)["parameters"] == 694_404


def test_module_cost_counts_the_layout_of_the_model_at_hand():
    """Weights of an older layout (here idsa-net-s with two groups and LKCIP) are costed as loaded, not as registered."""
    older = build_model("idsa-net-s", 2, groups=2, lkcip=True)
    cost = module_cost(older, 2)
    assert cost["parameters"] == sum(p.numel() for p in older.parameters()) > model_cost("idsa-net-s", 2)["parameters"]
    assert cost["gmacs_1280x720"] == pytest.approx(macs(build_model("idsa-net-s", 2, groups=2, lkcip=True), 2) / 1e9, abs=0.01)
    assert next(older.parameters()).device.type == "cpu"  # counted on a copy


def test_sharing_is_real():
    shared = IDSANet(scale=2, channels=32, groups=2, blocks_per_group=3, smu_hidden=32, share_attention=True)
    separate = IDSANet(scale=2, channels=32, groups=2, blocks_per_group=3, smu_hidden=32, share_attention=False)
    for group in shared.body:
        assert all(hasattr(stage.attn, "qk") for stage in group[0].stages)
        for block in group[1:]:
            assert not any(hasattr(stage.attn, "qk") or hasattr(stage.attn, "rel_bias") for stage in block.stages)
    x = torch.rand(1, 3, 24, 32)
    for model, expected in ((shared, 2 * 3), (separate, 2 * 3 * 3)):
        counter = SoftmaxCounter()
        with counter, torch.no_grad():
            model(x)
        assert counter.calls == expected
    assert sum(p.numel() for p in shared.parameters()) < sum(p.numel() for p in separate.parameters())
    assert macs(shared, 2) < macs(separate, 2)


def test_shifted_windows_do_not_wrap_around():
    """Shifted windows are displaced by half a window; the ones that wrap around the border are masked,
    so the top rows never attend to the bottom rows or the left columns to the right ones."""
    torch.manual_seed(0)
    attn = WindowAttention(8, window=8, heads=2, computes_maps=True)
    torch.nn.init.normal_(attn.rel_bias)
    x = torch.rand(1, 8, 32, 40)
    far = x.clone()
    far[..., -4:, :] = torch.rand(1, 8, 4, 40)
    far[..., :, -4:] = torch.rand(1, 8, 32, 4)
    def attend(features: torch.Tensor, shift: int) -> torch.Tensor:  # the module works on (B, H, W, C) features
        return attn(features.permute(0, 2, 3, 1).contiguous(), None, shift=shift)[0].permute(0, 3, 1, 2)

    with torch.no_grad():
        out, far_out = attend(x, 4), attend(far, 4)
        one_window = attend(x[..., 4:12, 12:20], 0)
    assert torch.allclose(out[..., :4, :-4], far_out[..., :4, :-4], atol=1e-6)  # top rows: only top rows
    assert torch.allclose(out[..., 4:-4, :4], far_out[..., 4:-4, :4], atol=1e-6)  # left columns: only left columns
    assert torch.allclose(out[..., 4:12, 12:20], one_window, atol=1e-6)  # inside: plain windows, offset by 4


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(37, 23), (8, 8), (50, 64)])
def test_any_input_size(scale, size):
    model = build_model("idsa-net-s", scale).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)


@pytest.mark.parametrize("options", [
    {}, {"share_attention": False}, {"lkcip": False}, {"inha": False}, {"window": 16, "heads": 2},
])
def test_hyperparameters_inferred_from_state_dict(options):
    model = IDSANet(scale=3, channels=32, groups=2, blocks_per_group=2, smu_hidden=40, **options)
    inferred = hyperparameters(model.state_dict())
    rebuilt = IDSANet(**inferred)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert detect_architecture(model.state_dict()).name == "idsa"
    assert inferred["scale"] == 3 and inferred["channels"] == 32
    for key, value in options.items():
        assert inferred[key] == value


def test_interp_skip_starts_at_bicubic():
    model = IDSANet(scale=2, channels=16, groups=1, blocks_per_group=1, smu_hidden=16).eval()
    x = torch.rand(1, 3, 16, 16)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_imdn_official_weights_load_safely(imdn_weights, tmp_path):
    by_name = load_model("imdn", scale=4, weights=imdn_weights(4), device="cpu")
    by_path = load_model(imdn_weights(4), device="cpu")
    assert by_path.idsa_info.scale == 4 and by_path.idsa_info.name == "imdn"
    state = by_name.state_dict()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    unwrapped = load_model(wrapped, device="cpu")
    for key, value in state.items():
        assert torch.equal(unwrapped.state_dict()[key], value)


def test_safetensors_metadata_round_trip(tmp_path):
    model = build_model("idsa-net-s", 2)
    path = write_weights(tmp_path / "w.safetensors", model.state_dict(), {"variant": "idsa-net-s", "hyperparameters": {"interp_skip": True}, "steps": 3})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file's mode, not mkstemp's 0600
    state, meta = read_weights(path)
    assert meta["variant"] == "idsa-net-s" and meta["steps"] == "3"
    loaded = load_model(path, device="cpu")
    assert loaded.idsa_info.name == "idsa-net-s"
    assert all(torch.equal(state[k], v) for k, v in loaded.state_dict().items())


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def _error(*args, **kwargs) -> str:
    with pytest.raises(WeightsError) as info:
        load_model(*args, device="cpu", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_weights_errors(tmp_path, imdn_weights, capsys):
    assert "not found" in _error(tmp_path / "missing.safetensors")
    good = write_weights(tmp_path / "good.safetensors", build_model("idsa-net-s", 2).state_dict(), {})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    assert "truncated or corrupt" in _error(truncated)
    truncated_pth = tmp_path / "truncated.pth"
    truncated_pth.write_bytes(imdn_weights(2).read_bytes()[:5000])
    assert "truncated or corrupt" in _error(truncated_pth)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"weight": Payload()}))
    assert "refused" in _error(evil)
    assert "unpickled!" not in capsys.readouterr().out
    not_state = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_state)
    assert "not a state dict" in _error(not_state)
    assert "imdn, not idsa-net" in _error("idsa-net", scale=2, weights=imdn_weights(2))
    assert "x2, not x4" in _error("imdn", scale=4, weights=imdn_weights(2))
    assert "no weights for imdn" in _error("imdn", scale=2)
    assert "unknown model" in _error("no-such-model")
    assert "supports scales" in _error("idsa-net", scale=5)


@pytest.mark.parametrize("window", [4, 8, 12])
def test_size_requirements_state_the_true_minimum(window):
    """IDSA-Net takes any size from window // 2 + 1 up (its reflect padding to the window), and not below."""
    from idsa_plugin.archs import SizeRequirements, architecture_of, size_requirements

    model = build_model("idsa-net-s", 2, window=window).eval()
    sizes = size_requirements(model)
    assert architecture_of(model).name == "idsa" and sizes == SizeRequirements(minimum=window // 2 + 1, window=window)
    with torch.no_grad():
        for h, w in [(sizes.minimum, sizes.minimum), (sizes.minimum, 2 * window + 1), (window + 1, sizes.minimum + 1)]:
            assert model(torch.rand(1, 3, h, w)).shape == (1, 3, 2 * h, 2 * w)
        with pytest.raises(RuntimeError, match="[Pp]adding"):
            model(torch.rand(1, 3, sizes.minimum - 1, 2 * window))


def test_descriptors_of_imdn_and_unknown_modules():
    from idsa_plugin.archs import ARCHITECTURES, SizeRequirements, architecture_of, size_requirements, supported_scales

    imdn = build_model("imdn", 3, channels=16, blocks=1).eval()
    assert architecture_of(imdn) is ARCHITECTURES["imdn"] and size_requirements(imdn) == SizeRequirements()
    with torch.no_grad():
        assert imdn(torch.rand(1, 3, 1, 2)).shape == (1, 3, 3, 6)  # no minimum: any size from 1 px
    conv = torch.nn.Conv2d(3, 3, 3)
    assert architecture_of(conv) is None and size_requirements(conv) == SizeRequirements()
    assert supported_scales() == (2, 3, 4) and all(a.supports_half and a.supports_bfloat16 for a in ARCHITECTURES.values())
