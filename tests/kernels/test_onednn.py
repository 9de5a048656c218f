"""oneDNN's products give MKL's results: training's (OneDNNMatmul) and decoding's packed
layers (PackedLinear), never stale."""

import copy
import itertools
import os

import pytest
import torch
import torch.nn.functional as F

from nmt import EOS_ID
from nmt.data.batching import make_batch
from nmt.errors import ConfigError
from nmt.kernels import Kernels, select
from nmt.kernels import onednn as onednn_module
from nmt.kernels.onednn import (
    OneDNNMatmul,
    PackedLinear,
    cap_caches,
    onednn_available,
    onednn_matmul_available,
)
from nmt.train.loss import batch_loss
from tests.conftest import padded, teacher_logits, tiny_model

SRC = [[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID], [11, EOS_ID]]
TGT = [[4, 5, 6, EOS_ID], [7, 8, 9, 10, 11, EOS_ID], [EOS_ID]]

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="torch built without oneDNN")
needs_matmul = pytest.mark.skipif(
    not onednn_matmul_available(), reason="oneDNN's linear does not take plain weights here"
)


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
    plain = teacher_logits(model, src, src_len, tgt)
    assert plain.grad_fn is not None
    model.use(Kernels(logits_path="onednn"))
    with torch.inference_mode():
        fast = teacher_logits(model, src, src_len, tgt)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert model.kernels._packed.packed


@needs_onednn
def test_a_step_through_onednn_equals_the_plain_step():
    """One decoder step, state included, is the same with and without autograd."""
    model = tiny_model("lstm", layers=2)
    src, src_len = padded(SRC)
    y = torch.tensor([4, 7, 9])
    enc = model.encode(src, src_len)
    logp, state, attn = model.step(enc, model.init_state(enc), y)
    model.use(Kernels(logits_path="onednn"))
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
        before = linear(x, weight)
    with torch.no_grad():
        weight.add_(1.0)
    with torch.inference_mode():
        after = linear(x, weight)
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
        linear(x, weight)
    weight.grad = torch.ones_like(weight)
    torch.optim.Adam([weight], lr=0.1, fused=fused).step()
    with torch.inference_mode():
        after = linear(x, weight)
    torch.testing.assert_close(after, x @ weight.detach().t(), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_packed_model_copies_and_saves_without_its_packs():
    """deepcopy (oneDNN's packed tensors cannot be copied) and state_dict skip the packs."""
    model = tiny_model().use(Kernels(logits_path="onednn"))
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    with torch.inference_mode():
        want = teacher_logits(model, src, src_len, tgt)
    assert model.kernels._packed.packed
    twin = copy.deepcopy(model)
    assert not twin.kernels._packed.packed
    assert twin.decoder.kernels is twin.kernels  # still one set for the whole model
    assert not any("pack" in key for key in model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(teacher_logits(twin, src, src_len, tgt), want)


def test_kernels_plain_turns_it_off(monkeypatch):
    """kernels=plain: every map is the plain layer, nothing packed, no product rerouted."""
    calls = []
    monkeypatch.setattr(onednn_module, "_linear", lambda *a: calls.append(a))
    model = tiny_model()
    cpu, output = torch.device("cpu"), model.decoder.output
    kernels, _ = select("plain", cpu, output, loss_chunk=4, training=True)
    assert kernels == Kernels()
    model.use(kernels)
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    with torch.inference_mode():
        teacher_logits(model, src, src_len, tgt)
    with kernels.training():
        teacher_logits(model, src, src_len, tgt).sum().backward()
    assert not kernels._packed.packed and not calls


def test_kernels_onednn_without_onednn_is_refused(monkeypatch):
    """kernels=onednn on a torch whose oneDNN is missing or disagrees: one clear error."""
    monkeypatch.setattr("nmt.kernels.onednn_available", lambda: False)
    with pytest.raises(ConfigError, match="kernels=onednn.*kernels=auto or kernels=blas"):
        select("onednn", torch.device("cpu"), torch.nn.Linear(16, 19))


def test_the_availability_probe_leaves_the_random_stream_alone():
    """The probe runs at the first packed call, say a resumed run's first validation: drawing
    random numbers there would change its dropout masks from the uninterrupted run's."""
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    onednn_available.__wrapped__()
    onednn_matmul_available.__wrapped__()
    torch.testing.assert_close(torch.rand(4), want, rtol=0, atol=0)


# -- OneDNNMatmul: training's products through oneDNN ----------------------------------------


def _gradients(model, chunk: int) -> dict[str, torch.Tensor]:
    """Each parameter's gradient of the summed training loss of SRC → TGT."""
    model.zero_grad(set_to_none=True)
    batch = make_batch([s[:-1] for s in SRC], [t[:-1] for t in TGT], list(range(len(SRC))))
    model.use(Kernels(loss_chunk=chunk))
    batch_loss(model, model, batch, 0.1).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@needs_matmul
@pytest.mark.parametrize(
    ("cell", "layers", "attention", "chunk"),
    [
        *itertools.product(["gru", "lstm", "rnn"], [1, 2], ["bahdanau", "luong_general"], [4]),
        ("gru", 1, "bahdanau", 0),  # the plain loss: whole-batch logits
    ],
)
def test_training_gradients_through_onednn_equal_mkls(monkeypatch, cell, layers, attention, chunk):
    """Forward and backward inside OneDNNMatmul give MKL's gradients up to float rounding,
    and the products did go to oneDNN: the encoder's and decoder's RNN steps, attention,
    the output layer, and the backward of each."""
    model = tiny_model(cell, attention, layers=layers)
    want = _gradients(model, chunk)
    calls = []
    linear = onednn_module._linear
    monkeypatch.setattr(onednn_module, "_linear", lambda *a: calls.append(a) or linear(*a))
    with OneDNNMatmul():
        got = _gradients(model, chunk)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=name)
    assert len(calls) > 20


@needs_matmul
def test_products_onednn_cannot_take_run_as_before():
    """Scaled addmm, a 2-D bias, column slices (oneDNN's reference kernel is 1000x slower),
    float64 and empty operands: the same results as outside the mode, all of them correct."""
    torch.manual_seed(0)
    a, b, wide = torch.randn(5, 4), torch.randn(4, 3), torch.randn(4, 7)
    bias, full = torch.randn(3), torch.randn(5, 3)
    cases = {
        "mm": lambda: torch.mm(a, b),
        "mm, transposed operands": lambda: torch.mm(b.t(), a.t()),
        "addmm": lambda: torch.addmm(bias, a, b),
        "addmm, scaled": lambda: torch.addmm(bias, a, b, beta=0.5, alpha=2.0),
        "addmm, 2-D bias": lambda: torch.addmm(full, a, b),
        "addmm_": lambda: full.clone().addmm_(a, b),
        "addmm_, scaled": lambda: full.clone().addmm_(a, b, alpha=-1.0),
        "column slice": lambda: torch.mm(a, wide[:, 2:5]),
        "float64": lambda: torch.mm(a.double(), b.double()),
        "no rows": lambda: torch.mm(a[:0], b),
        "linear": lambda: F.linear(
            torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1)), b.t(), bias
        ),
    }
    for name, case in cases.items():
        want = case()
        with OneDNNMatmul():
            got = case()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=name)
    target = full.clone()
    with OneDNNMatmul():
        out = target.addmm_(a, b)
    assert out is target  # in place
    torch.testing.assert_close(target, full + a @ b, rtol=1e-5, atol=1e-5)


@needs_matmul
def test_the_mode_routes_only_dense_fp32_products(monkeypatch):
    """Which products oneDNN takes: dense fp32 ones; a column slice stays with MKL."""
    calls = []
    linear = onednn_module._linear
    monkeypatch.setattr(onednn_module, "_linear", lambda *a: calls.append(a) or linear(*a))
    a, wide = torch.randn(5, 4), torch.randn(4, 7)
    with OneDNNMatmul():
        torch.mm(a, wide)
        torch.mm(a, wide.t().contiguous().t())  # stored transposed: dense
        torch.mm(a, wide[:, 2:5])
        torch.mm(a.double(), wide.double())
        torch.addmm(torch.ones(7), a, wide, alpha=2.0)
    assert len(calls) == 2


def test_cap_caches_keeps_what_the_environment_sets(monkeypatch):
    """Both caches capped at CACHE_CAPACITY, but a capacity the user set stays."""
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "3")
    cap_caches()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(onednn_module.CACHE_CAPACITY)
    assert os.environ["LRU_CACHE_CAPACITY"] == "3"
