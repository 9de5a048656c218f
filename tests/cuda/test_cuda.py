"""The GPU path against the CPU: training steps, cuDNN's packed encoder, greedy and beam
search, score(), and nmt-train with device=cuda (fp32, and bf16/fp16 where the config has
train.precision). Every test is skipped where torch sees no CUDA device; bench/gpu_check.sh
runs them (`pytest -m cuda`) on a lent GPU.

The comparisons turn TF32 off (cuDNN's RNNs use it by default on Ampere and later): both
sides then compute in fp32 and differ by summation order alone. The nmt-train tests run
with torch's defaults, as a user's run would.
"""

from __future__ import annotations

import copy
import csv
import subprocess
from pathlib import Path

import pytest
import torch

from nmt import EOS_ID
from nmt.config import DecodeConfig
from nmt.config_checks import ALLOWED
from nmt.kernels import Kernels
from nmt.search.decode import search_batch
from nmt.search.scoring import Scorer
from nmt.train.checkpoint import load_checkpoint
from nmt.translator import Translator
from tests.conftest import padded, tiny_model
from tests.helpers import cli_command, cli_env, toy_pairs, train_toy_run

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"
    ),
]

CUDA = torch.device("cuda")
TOL = {"atol": 1e-4, "rtol": 1e-4}  # fp32 on both sides, summed in another order
GRAD_TOL = {"atol": 1e-4, "rtol": 1e-3}  # a backward pass sums more terms
# the precisions nmt-train offers besides fp32 (none before train.precision exists)
LOW_PRECISIONS = [p for p in ALLOWED.get("train.precision", ()) if p != "fp32"]
# Source rows of every length from 1 to 12 tokens (EOS last) and targets of 1 to 9.
SRC = [[4 + (i * 7 + j) % 19 for j in range(i % 12)] + [EOS_ID] for i in range(16)]
TGT = [[4 + (i * 5 + j) % 15 for j in range(i % 9)] + [EOS_ID] for i in range(16)]


@pytest.fixture
def fp32_only():
    """TF32 off for cuDNN and cuBLAS during one test, restored after it."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def on_both(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The model on the CPU and an identical copy on the GPU."""
    return model, copy.deepcopy(model).to(CUDA)


def peaked_model(cell: str, seed: int):
    """A tiny random model whose output layer is scaled up: next-token log-probs far apart,
    so that no search choice hangs on a near tie that float rounding could flip."""
    model = tiny_model(cell, seed=seed)
    with torch.no_grad():
        model.decoder.output.weight.mul_(8.0)
    return model


def cuda(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.to(CUDA) for t in tensors]


@pytest.mark.parametrize("loss_chunk", [0, 5])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_training_step_loss_and_gradients_equal_the_cpu(cell, loss_chunk, fp32_only):
    cpu, gpu = on_both(tiny_model(cell, layers=2).use(Kernels(loss_chunk=loss_chunk)))
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    losses = []
    for model, tensors in ((cpu, (src, src_len, tgt)), (gpu, cuda(src, src_len, tgt))):
        model.train()  # cuDNN's RNN backward runs in training mode only (dropout is 0)
        states, _ = model(*tensors)  # (B, T, Hd)
        loss = model.kernels.loss(model.decoder.output, states, tensors[2], 0.1)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1].cpu(), losses[0], **TOL)
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(
            q.grad.cpu(), p.grad, **GRAD_TOL, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_packed_encoder_equals_the_cpu_and_is_zero_at_padding(cell, fp32_only):
    cpu, gpu = on_both(tiny_model(cell, layers=2))
    src, src_len = padded(SRC)
    with torch.inference_mode():
        want = cpu.encode(src, src_len)
        got = gpu.encode(*cuda(src, src_len))
    for field in ("values", "keys", "final"):
        torch.testing.assert_close(getattr(got, field).cpu(), getattr(want, field), **TOL)
    assert torch.equal(got.mask.cpu(), want.mask)
    memory, _ = gpu.encoder(*cuda(src, src_len))  # (B, S, 2H) states before the projections
    assert memory[~got.mask].abs().max() == 0  # cuDNN never runs over padding


def search_on_both(model, cfg: DecodeConfig, nbest: int = 1):
    """The same search over SRC on the CPU and on the GPU: (cpu result, gpu result)."""
    cpu, gpu = on_both(model)
    src, src_len = padded(SRC)
    return search_batch(cpu, src, src_len, cfg, nbest), search_batch(
        gpu, *cuda(src, src_len), cfg, nbest
    )


def assert_same_hypotheses(want, got) -> None:
    assert got.token_lists() == want.token_lists()
    assert torch.equal(got.lengths.cpu(), want.lengths)
    for field in ("logprob", "score", "token_logprobs", "attention"):
        torch.testing.assert_close(getattr(got, field).cpu(), getattr(want, field), **TOL)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_greedy_search_gives_the_cpu_outputs(cell, seed, fp32_only):
    want, got = search_on_both(peaked_model(cell, seed), DecodeConfig())
    assert_same_hypotheses(want, got)


@pytest.mark.parametrize("stop", ["exact", "early"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_search_gives_the_cpu_nbest(cell, stop, fp32_only):
    cfg = DecodeConfig(
        strategy="beam", beam_size=5, nbest=3, length_penalty="gnmt", alpha=1.0, stop=stop
    )
    want, got = search_on_both(peaked_model(cell, seed=2), cfg, nbest=3)
    assert_same_hypotheses(want, got)


def test_score_equals_the_cpu(fp32_only):
    cpu, gpu = on_both(tiny_model("gru"))
    src, src_len = padded(SRC)
    tgt, tgt_len = padded(TGT)
    scorer = Scorer("gnmt", 1.0, 0.2)
    want = scorer.score(cpu, src, src_len, tgt, tgt_len)  # objective, log P, per token
    got = scorer.score(gpu, *cuda(src, src_len, tgt, tgt_len))
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g.cpu(), w, **TOL)


# -- nmt-train on the GPU ---------------------------------------------------------------------

PAIRS = toy_pairs(12)
SOURCES = [src for src, _ in PAIRS]
TARGETS = [tgt for _, tgt in PAIRS]
SHORT = ("train.max_updates=30", "train.max_epochs=0", "train.valid_every=30", "train.log_every=1")


def train_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["split"] == "train"]


def translate_on_cpu_only(run: Path) -> subprocess.CompletedProcess:
    """nmt-translate device=cpu on a run, in a process that sees no GPU at all."""
    return subprocess.run(
        cli_command("translate", f"run={run}", "checkpoint=last", "device=cpu"),
        input="".join(s + "\n" for s in SOURCES),
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(CUDA_VISIBLE_DEVICES=""),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same toy run (same seed, data and batches) trained on the CPU and on the GPU."""
    return {
        device: train_toy_run(
            tmp_path_factory.mktemp(f"train-{device}"), f"device={device}", *SHORT
        )
        for device in ("cpu", "cuda")
    }


def test_cuda_training_starts_where_the_cpu_does(runs):
    cpu, gpu = train_rows(runs["cpu"]), train_rows(runs["cuda"])
    assert len(gpu) == 30 and all(float(r["loss"]) == float(r["loss"]) for r in gpu)
    # the first update: the same weights on the same batch (TF32 may round the GPU's)
    assert float(gpu[0]["loss"]) == pytest.approx(float(cpu[0]["loss"]), rel=1e-2)
    assert float(gpu[-1]["loss"]) < float(gpu[0]["loss"])


def test_a_checkpoint_trained_on_cuda_loads_and_translates_on_a_machine_without_one(runs):
    state = load_checkpoint(runs["cuda"] / "checkpoints" / "last.pt")
    assert all(t.device.type == "cpu" for t in state["model"].values())
    proc = translate_on_cpu_only(runs["cuda"])
    assert proc.returncode == 0, proc.stderr
    # the same as in this process on the CPU (the GPU's own outputs may break a near tie of a
    # 30-update model the other way: test_translator_score_on_cuda_equals_the_cpu compares them)
    on_cpu = Translator.load(runs["cuda"], checkpoint="last", device="cpu")
    assert proc.stdout.splitlines() == on_cpu.translate_text(SOURCES)


def test_translator_score_on_cuda_equals_the_cpu(runs):
    on_cpu = Translator.load(runs["cuda"], checkpoint="last", device="cpu")
    on_gpu = Translator.load(runs["cuda"], checkpoint="last", device="cuda")
    want = on_cpu.score(SOURCES, TARGETS, length_penalty="gnmt", alpha=1.0)
    got = on_gpu.score(SOURCES, TARGETS, length_penalty="gnmt", alpha=1.0)
    for w, g in zip(want, got, strict=True):
        assert g.ids == w.ids
        # TF32 is on here, as in a user's run: agreement to about 1e-3 of a log-prob
        assert g.logprob == pytest.approx(w.logprob, rel=5e-3, abs=5e-3)
        assert g.score == pytest.approx(w.score, rel=5e-3, abs=5e-3)


@pytest.mark.parametrize(
    "precision",
    LOW_PRECISIONS
    or [
        pytest.param(p, marks=pytest.mark.skip(reason="nmt.config has no train.precision key"))
        for p in ("bf16", "fp16")
    ],
)
def test_low_precision_training_on_cuda_tracks_fp32(precision, runs, tmp_path):
    run = train_toy_run(tmp_path, "device=cuda", f"train.precision={precision}", *SHORT)
    rows, fp32 = train_rows(run), train_rows(runs["cuda"])
    losses = [float(r["loss"]) for r in rows]
    assert rows and all(loss == loss and loss != float("inf") for loss in losses)
    # the same weights on the same first batch: autocast rounds the products to 8 (bf16) or
    # 11 (fp16) bits of mantissa, which moves a loss near ln(V) by far less than 5%
    assert losses[0] == pytest.approx(float(fp32[0]["loss"]), rel=5e-2)
    assert losses[-1] < losses[0]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert all(t.dtype == torch.float32 for t in state["model"].values() if t.is_floating_point())
    proc = translate_on_cpu_only(run)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(SOURCES)
