"""Training: a tiny corpus is learnt exactly; bad data stops training before it starts."""

import csv

import pytest

from nmt.errors import DataError, RunDirError
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
    translator = Translator.from_run(run, device="cpu")
    sources = [s for s, _ in pairs] + [""]
    assert translator.translate(sources) == [t for _, t in pairs] + [""]
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
