"""The fast dropout: torch's distribution (rate, scale, unbiased), its gradient, masks that
torch's seed reproduces; used only in training, on the CPU, where measured faster."""

import math

import pytest
import torch
import torch.nn.functional as F

from nmt.kernels import Kernels, probe, select
from nmt.kernels.dropout import KEEP_LEVELS, fast_dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_elements_are_dropped_at_rate_p_and_the_rest_scaled_as_torch_does(p):
    torch.manual_seed(0)
    n = 1 << 20
    x = torch.rand(n) + 1.0  # no zeros of its own
    out, plain = fast_dropout(x, p), F.dropout(x, p, True)
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 standard deviations
    kept = out != 0
    scale = KEEP_LEVELS / round((1 - p) * KEEP_LEVELS)  # the exact inverse keep probability
    torch.testing.assert_close(out[kept], x[kept] * scale, rtol=1e-6, atol=0)
    # torch's rate and scale 1 / (1 − p), ours within the mask's resolution of 2⁻¹⁶
    torch_kept = plain != 0
    torch.testing.assert_close(
        plain[torch_kept] / x[torch_kept], torch.full_like(x, 1 / (1 - p))[torch_kept]
    )
    assert scale == pytest.approx(1 / (1 - p), rel=2 / KEEP_LEVELS / (1 - p))
    assert abs((~torch_kept).double().mean().item() - dropped) < 10 * math.sqrt(p * (1 - p) / n)


def test_the_output_is_unbiased():
    """E[dropout(x)] = x: over many masks the mean of one element converges to it."""
    torch.manual_seed(1)
    x = torch.full((4096, 256), 2.0)
    sd = 2.0 * math.sqrt(0.3 / 0.7 / x.numel())  # of the mean: 2·scale·√(p(1 − p) / n)
    assert fast_dropout(x, 0.3).double().mean().item() == pytest.approx(2.0, abs=5 * sd)


def test_the_gradient_is_the_same_mask_times_the_incoming_gradient():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    out = fast_dropout(x, 0.3)
    g = torch.randn(64, 33)
    out.backward(g)
    mask = out.detach() / x.detach()
    torch.testing.assert_close(x.grad, g * mask)
    assert torch.equal(x.grad == 0, out == 0)


def test_torch_s_seed_reproduces_the_masks_and_each_call_draws_a_new_one():
    torch.manual_seed(5)
    first, second = keep_mask((1000,), 0.3), keep_mask((1000,), 0.3)
    torch.manual_seed(5)
    assert torch.equal(keep_mask((1000,), 0.3), first)
    assert not torch.equal(first, second)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(keep_mask((1000,), 0.3, generator=g), first)


def test_odd_shapes_and_low_precision_scaled_without_a_rounded_scale():
    torch.manual_seed(6)
    x = torch.randn(3, 5, 7, dtype=torch.bfloat16)  # 105 elements: not a multiple of 4
    out = fast_dropout(x, 0.3)
    assert out.shape == x.shape and out.dtype == torch.bfloat16
    kept = out != 0
    scale = KEEP_LEVELS / round(0.7 * KEEP_LEVELS)  # in float32, not bf16's 1.4297
    assert torch.equal(out[kept], (x[kept].float() * scale).to(torch.bfloat16))
    with pytest.raises(ValueError, match="0 < p < 1"):
        keep_mask((4,), 1.0)


def test_kernels_use_it_only_while_training_on_the_cpu_at_a_rate_in_0_1():
    kernels, module = Kernels(dropout_path="fast"), torch.nn.Dropout(0.3)
    x = torch.randn(256, 64)
    torch.manual_seed(7)
    fast = kernels.dropout(module, x)
    torch.manual_seed(7)
    assert torch.equal(fast, fast_dropout(x, 0.3))
    torch.manual_seed(7)
    assert not torch.equal(Kernels().dropout(module, x), fast)  # the plain path: torch's own
    module.eval()
    assert kernels.dropout(module, x) is x
    module.train()
    module.p = 0.0
    assert torch.equal(kernels.dropout(module, x), x)


def test_auto_measures_dropout_for_training_only_and_a_checkpoint_keeps_the_choice(monkeypatch):
    monkeypatch.setattr(probe, "fastest_logits", lambda *a: ("plain", {}))
    monkeypatch.setattr(probe, "fastest_gemm", lambda *a: ("blas", {}))
    monkeypatch.setattr(probe, "fastest_dropout", lambda *a: ("fast", {"plain": 2.0, "fast": 1.0}))
    output = torch.nn.Linear(512, 40)
    trained, measured = select("auto", torch.device("cpu"), output, training=True)
    assert trained.dropout_path == "fast" and "dropout ms" in measured
    assert select("auto", torch.device("cpu"), output)[0].dropout_path == "plain"  # decoding
    assert select("plain", torch.device("cpu"), output, training=True)[0].dropout_path == "plain"
    recorded = trained.as_dict()
    assert Kernels.from_dict(recorded).dropout_path == "fast"
    # a checkpoint from before the choice existed trained with torch's dropout
    old = {k: v for k, v in recorded.items() if k != "dropout_path"}
    assert select("auto", torch.device("cpu"), output, 0, True, old)[0].dropout_path == "plain"


def test_the_probe_times_both_and_leaves_the_random_stream_alone(monkeypatch):
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    path, times = probe.fastest_dropout.__wrapped__(512, 1)
    torch.testing.assert_close(torch.rand(4), want, rtol=0, atol=0)
    assert path in ("plain", "fast") and set(times) == {"plain", "fast"}
    assert probe.fastest_dropout.__wrapped__(64, 1) == ("plain", {})  # too small to time
