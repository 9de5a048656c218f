"""train.precision / decode.precision / decode.quantize: bf16 and int8 compute what fp32
computes within their rounding, leave the fp32 model alone, and fall back or refuse clearly."""

from __future__ import annotations

import logging

import pytest
import torch

from nmt.config import AttentionConfig, DecodeConfig, ModelConfig
from nmt.config_checks import validate_decode
from nmt.errors import ConfigError
from nmt.kernels import bf16_check, probe, select
from nmt.kernels import precision as precision_module
from nmt.kernels.precision import cpu_has_bf16, resolve_precision
from nmt.model import Seq2Seq
from nmt.search.decode import decode_nbest
from nmt.train.optim import LossScaling

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no AVX512-BF16/AMX")


def small_model(cell: str = "gru", seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = ModelConfig(cell=cell, emb_size=32, hidden_size=32, dec_hidden_size=64, dropout=0.0)
    return Seq2Seq.build(cfg, AttentionConfig(size=32), 120, 150)


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 120, (6, 11), generator=g)
    tgt = torch.randint(4, 150, (6, 9), generator=g)
    return src, torch.tensor([11, 10, 9, 7, 5, 3]), tgt


def loss_and_grads(model: Seq2Seq, kernels_name: str, precision: str, chunk: int):
    kernels, _ = select(kernels_name, CPU, model.decoder.output, chunk, True, None, precision)
    model.use(kernels)
    model.zero_grad(set_to_none=True)
    src, src_len, tgt = batch()
    with kernels.training():
        states, _ = model(src, src_len, tgt)
        loss = kernels.loss(model.decoder.output, states, tgt, 0.1)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, kernels


@needs_bf16
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize(("kernels_name", "chunk"), [("plain", 0), ("auto", 0), ("auto", 16)])
def test_a_bf16_training_step_is_the_fp32_step_within_bf16_rounding(cell, kernels_name, chunk):
    model = small_model(cell)
    want_loss, want, _ = loss_and_grads(model, "plain", "fp32", 0)
    loss, grads, kernels = loss_and_grads(model, kernels_name, "bf16", chunk)
    assert kernels.precision == "bf16" and kernels.gemm == "blas"
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, want_loss, rtol=1e-2, atol=0)
    assert grads.keys() == want.keys()
    for name, g in grads.items():
        assert g.dtype == torch.float32, name  # fp32 master weights, fp32 gradients
        cosine = torch.nn.functional.cosine_similarity(g.flatten(), want[name].flatten(), 0)
        assert cosine > 0.97, (name, float(cosine))  # the same direction, each parameter
    flat, flat_want = (torch.cat([g.flatten() for g in d.values()]) for d in (grads, want))
    assert (flat - flat_want).norm() / flat_want.norm() < 0.03  # bf16's 8-bit mantissa
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bf16_falls_back_to_fp32_with_one_warning_where_the_cpu_lacks_it(monkeypatch, caplog):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(precision_module, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="nmt.kernels.precision"):
        assert resolve_precision("bf16", CPU) == "fp32"
        assert resolve_precision("bf16", CPU) == "fp32"
    warnings = [r for r in caplog.records if "train.precision=bf16" in r.getMessage()]
    assert len(warnings) == 1 and "running fp32" in warnings[0].getMessage()


@pytest.mark.parametrize(("bf16_ms", "warned"), [(2.0, True), (1.0, True), (0.5, False)])
def test_bf16_training_warns_where_the_cpu_multiplies_bf16_no_faster(
    monkeypatch, caplog, bf16_ms, warned
):
    """AVX512-BF16 without AMX: bf16 products slower than fp32 (an Intel Xeon, 2026-12-04);
    bf16 stays (the user chose its numerics), the warning names the faster setting."""
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(probe, "bf16_products", lambda *a: {"fp32": 1.0, "bf16": bf16_ms})
    with caplog.at_level(logging.WARNING, logger="nmt.kernels"):
        kernels, measured = select(
            "auto", CPU, torch.nn.Linear(512, 40), training=True, precision="bf16"
        )
    assert kernels.precision == "bf16" and "products ms" in measured
    said = [r.getMessage() for r in caplog.records if "no faster than fp32" in r.getMessage()]
    assert len(said) == warned
    assert not warned or "train.precision=fp32 is the faster setting" in said[0]


def test_bf16_decoding_warns_where_the_cpu_multiplies_bf16_no_faster(monkeypatch, caplog):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(probe, "bf16_products", lambda *a: {"fp32": 1.0, "bf16": 1.6})
    with caplog.at_level(logging.WARNING, logger="nmt.kernels"):
        assert bf16_check(512, "decode.precision") == "; products ms {'fp32': 1.0, 'bf16': 1.6}"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "decode.precision=fp32 is the faster setting" in said[0]


def test_the_bf16_probe_times_both_dtypes_and_leaves_the_random_stream_alone():
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    times = probe.bf16_products.__wrapped__(512, 1)
    torch.testing.assert_close(torch.rand(4), want, rtol=0, atol=0)
    assert set(times) == {"fp32", "bf16"} and all(t > 0 for t in times.values())
    assert probe.bf16_products.__wrapped__(64, 1) == {}  # too small to time


def test_fp16_needs_cuda_and_unknown_precisions_are_refused():
    with pytest.raises(ConfigError, match=r"train.precision=fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match=r"decode.precision='fp8' is not one of"):
        resolve_precision("fp8", CPU, "decode.precision")


def test_int8_and_bf16_decoding_together_are_refused_naming_both_keys():
    with pytest.raises(ConfigError, match=r"decode.quantize=int8 .* decode.precision=bf16"):
        validate_decode(DecodeConfig(quantize="int8", precision="bf16"))


def test_fp32_training_has_no_loss_scaling():
    scaling = LossScaling("fp32", CPU)
    assert scaling.scaler is None and scaling.state_dict() is None
    assert not scaling.overflowed(True, float("inf"))  # a real divergence, counted as such


def decoded(model: Seq2Seq, sources) -> list:
    cfg = DecodeConfig(strategy="beam", beam_size=3, max_len_a=0.0, max_len_b=8)
    return decode_nbest(model.eval(), sources, cfg, CPU)


@needs_bf16
def test_a_bf16_copy_scores_what_it_decodes_and_leaves_the_model_alone():
    model = small_model().eval()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    copy = model.in_dtype(torch.bfloat16)
    g = torch.Generator().manual_seed(2)
    sources = [torch.randint(4, 120, (n,), generator=g).tolist() for n in range(2, 14)]
    for result, src in zip(decoded(copy, sources), sources, strict=True):
        # the copy's scorer gives its search's log P back within bf16 rounding (a step at a
        # time and teacher-forced round differently: why nmt-analyze refuses bf16)
        tokens, length = result.tokens[:1], result.lengths[:1]
        x, x_len = torch.tensor([src]), torch.tensor([len(src)])
        logprob, _ = copy.score(x, x_len, tokens[:, : int(length)], length)
        torch.testing.assert_close(logprob.float(), result.logprob[:1], rtol=0.01, atol=0.01)
    after = model.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)  # untouched, still fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_an_int8_copy_decodes_near_the_fp32_model_and_leaves_it_alone():
    model = small_model().eval()
    model.decoder.output.weight.data *= 8  # clear winners: rounding rarely flips a choice
    before = {n: p.clone() for n, p in model.state_dict().items()}
    copy = model.int8()
    kinds = {type(m).__module__ for m in copy.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds
    assert "torch.ao.nn.quantized.dynamic.modules.rnn" in kinds
    g = torch.Generator().manual_seed(2)
    sources = [torch.randint(4, 120, (n,), generator=g).tolist() for n in range(2, 22)]
    want, found = decoded(model, sources), decoded(copy, sources)
    same = sum(
        a.tokens[0].tolist() == b.tokens[0].tolist() for a, b in zip(want, found, strict=True)
    )
    assert same >= 0.5 * len(sources)  # an untrained model: near ties (BLEU: bench/README.md)
    for a, b in zip(want, found, strict=True):
        if a.tokens[0].tolist() == b.tokens[0].tolist():  # the same output, nearly its log P
            assert abs(float(a.logprob[0] - b.logprob[0])) < 0.1 * abs(float(a.logprob[0]))
    after = model.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
