"""Decoding through oneDNN's packed GEMMs gives what the plain layers give, and never stale."""

import copy
import itertools

import pytest
import torch

from nmt import EOS_ID
from nmt.model import packed as packed_module
from nmt.model.packed import PackedLinear, onednn_available
from tests.conftest import padded, tiny_model

SRC = [[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID], [11, EOS_ID]]
TGT = [[4, 5, 6, EOS_ID], [7, 8, 9, 10, 11, EOS_ID], [EOS_ID]]

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="torch built without oneDNN")


@needs_onednn
@pytest.mark.parametrize(
    ("cell", "layers", "attention", "input_feeding"),
    list(itertools.product(["gru", "lstm", "rnn"], [1, 2], ["bahdanau", "luong_general"], [True]))
    + [("gru", 1, "bahdanau", False)],
)
def test_decoding_through_onednn_equals_the_plain_layers(cell, layers, attention, input_feeding):
    """Teacher forcing with autograd (the plain torch layers) against the same without it
    (the packed GEMMs): the same logits up to float rounding."""
    model = tiny_model(cell, attention, layers=layers, input_feeding=input_feeding)
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    plain = model(src, src_len, tgt)
    assert plain.grad_fn is not None
    with torch.inference_mode():
        fast = model(src, src_len, tgt)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert set(model.decoder.packed._packs) == {"output"}


@needs_onednn
def test_a_step_through_onednn_equals_the_plain_step():
    """One decoder step, state included, is the same with and without autograd."""
    model = tiny_model("lstm", layers=2)
    src, src_len = padded(SRC)
    y = torch.tensor([4, 7, 9])
    enc = model.encode(src, src_len)
    logp, state, attn = model.step(enc, model.init_state(enc), y)
    with torch.inference_mode():
        enc2 = model.encode(src, src_len)
        logp2, state2, attn2 = model.step(enc2, model.init_state(enc2), y)
    for got, want in ((logp2, logp), (state2.hidden, state.hidden), (state2.cell, state.cell)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn2, attn, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_weight_changed_in_place_is_packed_again():
    """An optimiser step (or a load) changes weights in place; the next call must see it."""
    weight = torch.randn(6, 4, requires_grad=True)
    linear, x = PackedLinear(), torch.randn(3, 4)
    with torch.inference_mode():
        before = linear("w", x, weight)
    with torch.no_grad():
        weight.add_(1.0)
    with torch.inference_mode():
        after = linear("w", x, weight)
    torch.testing.assert_close(before, x @ (weight.detach() - 1.0).t(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, x @ weight.detach().t(), rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("fused", [True, False])
def test_an_optimiser_step_is_seen_fused_or_not(fused):
    """Adam(fused=True) updates weights without bumping their version counter; the packs
    must still be rebuilt after any optimiser step."""
    weight = torch.nn.Parameter(torch.randn(6, 4))
    linear, x = PackedLinear(), torch.randn(3, 4)
    with torch.inference_mode():
        linear("w", x, weight)
    weight.grad = torch.ones_like(weight)
    torch.optim.Adam([weight], lr=0.1, fused=fused).step()
    with torch.inference_mode():
        after = linear("w", x, weight)
    torch.testing.assert_close(after, x @ weight.detach().t(), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_packed_model_copies_and_saves_without_its_packs():
    """deepcopy (oneDNN's packed tensors cannot be copied) and state_dict skip the packs."""
    model = tiny_model()
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    with torch.inference_mode():
        want = model(src, src_len, tgt)
    assert model.decoder.packed._packs
    twin = copy.deepcopy(model)
    assert not twin.decoder.packed._packs
    assert not any("pack" in key for key in model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(twin(src, src_len, tgt), want)


def test_nmt_onednn_0_turns_it_off(monkeypatch):
    """NMT_ONEDNN=0 in the environment: every map is the plain F.linear."""
    monkeypatch.setenv("NMT_ONEDNN", "0")
    monkeypatch.setattr(packed_module, "onednn_available", onednn_available.__wrapped__)
    linear, x, weight = PackedLinear(), torch.randn(3, 4), torch.randn(6, 4)
    assert not linear.applies(x, weight)
    with torch.inference_mode():
        linear("w", x, weight)
    assert not linear._packs


def test_the_availability_probe_leaves_the_random_stream_alone():
    """The probe runs at the first packed call, say a resumed run's first validation: drawing
    random numbers there would change its dropout masks from the uninterrupted run's."""
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    onednn_available.__wrapped__()
    torch.testing.assert_close(torch.rand(4), want, rtol=0, atol=0)
