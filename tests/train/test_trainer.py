"""Training: a tiny corpus is learnt exactly; bad data stops training before it starts."""

import csv

import pytest
import torch

from nmt.errors import DataError, RunDirError
from nmt.kernels.precision import cpu_has_bf16
from nmt.train.checkpoint import load_checkpoint
from nmt.train.state import Progress
from nmt.train.trainer import Trainer
from nmt.translator import Translator
from tests.helpers import compose_config, files_overrides, toy_pairs, write_parallel


def test_tiny_corpus_is_overfit_to_exact_translations(tmp_path):
    pairs = toy_pairs(12)
    train = write_parallel(tmp_path / "data", "train", pairs)
    cfg = compose_config(
        "train",
        files_overrides(tmp_path / "data", train, train)
        + ["train.max_updates=250", "train.valid_every=125", "train.max_epochs=0", "seed=7"],
    )
    run = tmp_path / "run"
    result = Trainer(cfg, run).fit()
    assert result["history"][-1]["ppl"] < 1.05
    assert result["history"][-1]["bleu"] == pytest.approx(100.0)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    train_losses = [float(r["loss"]) for r in rows if r["split"] == "train"]
    assert train_losses[-1] < 0.05 < train_losses[0]
    # the run directory alone translates, exactly
    translator = Translator.load(run, device="cpu")
    sources = [s for s, _ in pairs] + [""]
    assert translator.translate_text(sources) == [t for _, t in pairs] + [""]
    for name in (
        "config.yaml",
        "spm.model",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "valid/update-0000250.txt",
    ):
        assert (run / name).is_file(), name


def test_unequal_line_counts_stop_before_anything_is_trained(tmp_path):
    train = write_parallel(tmp_path / "data", "train", toy_pairs(5))
    with (tmp_path / "data" / "train.yy").open("a") as f:
        f.write("one more line\n")
    cfg = compose_config("train", files_overrides(tmp_path / "data", train, train))
    with pytest.raises(DataError, match=r"train\.xx.*5.*train\.yy.*6|train\.yy.*6.*train\.xx.*5"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_finished_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"precious")
    train = write_parallel(tmp_path / "data", "train", toy_pairs(5))
    cfg = compose_config("train", files_overrides(tmp_path / "data", train, train))
    with pytest.raises(RunDirError, match="already holds a trained model"):
        Trainer(cfg, run)
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"precious"


def _trainer(tmp_path, *overrides, name="run"):
    train = write_parallel(tmp_path / "data", "train", toy_pairs(24))
    cfg = compose_config(
        "train",
        files_overrides(tmp_path / "data", train, train) + ["data.batch_tokens=30", *overrides],
    )
    return Trainer(cfg, tmp_path / name)


def test_same_seed_gives_identical_parameters(tmp_path):
    import torch

    overrides = ("train.max_updates=6", "train.valid_every=6", "model.dropout=0.2", "seed=3")
    a = _trainer(tmp_path, *overrides, name="a")
    a.fit()
    b = _trainer(tmp_path, *overrides, name="b")
    b.fit()
    for (name, pa), pb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name


def test_patience_stops_when_validation_does_not_improve(tmp_path):
    trainer = _trainer(
        tmp_path,
        "optim.lr=0",
        "train.valid_every=2",
        "train.patience=2",
        "train.max_updates=100",
        "train.early_stop_metric=ppl",
    )
    result = trainer.fit()
    assert "train.patience" in result["stop"]
    assert [h["update"] for h in result["history"]] == [2, 4, 6]


def test_accumulation_sums_batches_into_one_update(tmp_path):
    trainer = _trainer(
        tmp_path, "optim.accumulate=2", "train.max_epochs=1", "train.valid_every=1000"
    )
    batches = len(trainer.sampler)
    assert batches >= 4
    result = trainer.fit()
    assert result["updates"] == batches // 2
    assert "max_epochs" in result["stop"]


def test_warmup_schedule_rises_linearly(tmp_path):
    trainer = _trainer(
        tmp_path,
        "optim.scheduler=warmup",
        "optim.warmup_updates=10",
        "optim.lr=0.01",
        "train.max_updates=4",
        "train.valid_every=1000",
        "optim.clip_value=0.5",
        "optim.label_smoothing=0.1",
        "optim=adamw",
    )
    trainer.fit()
    assert trainer.lr == pytest.approx(0.01 * 5 / 10)


def test_a_validation_record_counts_rounds_without_improvement_and_keeps_the_best():
    p = Progress(update=10)
    assert p.record_validation(20.0, keep_best=2)
    p.update = 20
    assert not p.record_validation(20.0, keep_best=2)  # a tie is no improvement
    assert p.bad_validations == 1
    p.update = 30
    assert p.record_validation(25.0, keep_best=2)
    assert (p.best, p.bad_validations) == (25.0, 0)
    assert p.best_kept == [[25.0, 30], [20.0, 10]]  # the earlier of two equal ones stays


def test_cpu_training_multiplies_in_onednn_unless_turned_off(tmp_path, monkeypatch):
    """kernels=onednn: a single CPU process runs each batch's products through oneDNN
    (OneDNNMatmul); kernels=blas: torch's BLAS does, and training is the same."""

    from nmt.kernels import onednn

    if not onednn.onednn_matmul_available():
        pytest.skip("oneDNN's linear does not take plain weights here")
    calls = []
    product = onednn._product
    monkeypatch.setattr(onednn, "_product", lambda *a: calls.append(a) or product(*a))
    overrides = ("train.max_updates=3", "train.valid_every=3", "seed=3")
    fast = _trainer(tmp_path, *overrides, "kernels=onednn", name="onednn")
    fast.fit()
    assert fast.model.kernels.gemm == "onednn"
    assert len(calls) > 100  # every product of 3 batches' forward and backward
    calls.clear()
    plain = _trainer(tmp_path, *overrides, "kernels=blas", name="blas")
    plain.fit()
    assert not calls
    start = _trainer(tmp_path, *overrides, name="start").model.state_dict()
    for (name, a), b in zip(
        fast.model.state_dict().items(), plain.model.state_dict().values(), strict=True
    ):
        # Adam moves a weight by about lr an update whatever the size of its gradient, so a
        # gradient near 0 summed in another order may move a few weights differently: the
        # two trainings must agree on the movement, element by element, on average
        moved = (b - start[name]).abs().mean()
        assert (a - b).abs().mean() <= 0.02 * moved + 1e-8, name


@pytest.mark.parametrize("kernels", ["auto", "blas", "onednn"])
def test_a_training_batch_computes_what_the_plain_kernels_do(tmp_path, kernels):
    """Whatever the kernels, a batch's loss and gradients are the plain path's up to float
    rounding; the choice is recorded in the checkpoint."""
    import torch

    from nmt.kernels.onednn import onednn_matmul_available

    if kernels == "onednn" and not onednn_matmul_available():
        pytest.skip("oneDNN's linear does not take plain weights here")
    overrides = ("train.max_updates=1", "train.valid_every=1", "seed=3", "model.dropout=0")
    results = []
    for name in ("plain", kernels):
        trainer = _trainer(tmp_path, *overrides, f"kernels={name}", name=name)
        batch = trainer.train_data.batch(next(iter(trainer.sampler)))
        with trainer.model.kernels.training():
            loss = trainer._loss(batch, 0.1)
            grads = torch.autograd.grad(loss, list(trainer.model.parameters()))
        results.append((loss, grads))
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    assert trainer.model.kernels.rnn_path == "by_direction"
    trainer.fit()
    saved = load_checkpoint(tmp_path / kernels / "checkpoints" / "last.pt")["kernels"]
    assert saved == trainer.model.kernels.as_dict()


def test_a_resumed_run_keeps_the_kernels_its_checkpoint_records(tmp_path, monkeypatch):
    """kernels=auto measures once, when the run starts; a resume takes the recorded choice
    instead of measuring again (another choice would round differently)."""
    overrides = ("train.max_updates=2", "train.valid_every=2", "seed=3")
    first = _trainer(tmp_path, *overrides)
    first.fit()
    recorded = first.model.kernels.as_dict()
    for probe in ("fastest_logits", "fastest_gemm"):
        monkeypatch.setattr(f"nmt.kernels.probe.{probe}", lambda *a: pytest.fail("measured"))
    resumed = _trainer(
        tmp_path, "train.max_updates=4", "train.valid_every=2", "seed=3", "resume=true"
    )
    assert resumed.model.kernels.as_dict() == recorded


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no AVX512-BF16/AMX")
def test_bf16_training_learns_with_fp32_weights_and_resumes_bit_identically(tmp_path):
    """train.precision=bf16: autocast around fp32 master weights; the loss falls, the
    checkpoint holds fp32 tensors, and resume is as exact as at fp32."""
    overrides = ("train.max_updates=6", "train.valid_every=3", "train.precision=bf16", "seed=5")
    whole = _trainer(tmp_path, *overrides, name="whole")
    assert whole.model.kernels.precision == "bf16"
    whole.fit()
    state = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    assert all(t.dtype == torch.float32 for t in state["model"].values() if t.is_floating_point())
    assert state["loss_scale"] is None  # bf16 needs no loss scaling
    rows = [
        r
        for r in csv.DictReader((tmp_path / "whole" / "metrics.csv").open())
        if r["split"] == "valid"
    ]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    half = ("train.max_updates=3", "train.valid_every=3", "train.precision=bf16", "seed=5")
    _trainer(tmp_path, *half, name="split").fit()
    resumed = _trainer(tmp_path, *overrides, "resume=true", name="split")
    resumed.fit()
    for (name, a), b in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
