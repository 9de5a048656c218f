"""Resumed training is the training that was interrupted: same losses, same parameters."""

from __future__ import annotations

import csv
import random

import pytest
import torch

from nmt.errors import ConfigError, RunDirError
from nmt.train import trainer as trainer_module
from nmt.train.checkpoint import load_checkpoint
from nmt.train.trainer import Trainer
from tests.helpers import compose_config, files_overrides, toy_pairs, write_parallel

# Dropout and accumulation on: the resumed run must restore the RNG and the batch position.
BASE = (
    "data.batch_tokens=30",
    "train.max_epochs=0",
    "train.max_updates=24",
    "train.valid_every=8",
    "train.save_every=3",
    "train.log_every=1",
    "model.dropout=0.2",
    "optim.accumulate=2",
    "seed=3",
    "threads=1",
)
COMPARED = ["update", "epoch", "split", "loss", "ppl", "bleu", "lr"]  # not timings


def config(tmp_path, *overrides):
    train = write_parallel(tmp_path / "data", "train", toy_pairs(24))
    return compose_config(
        "train", files_overrides(tmp_path / "data", train, train) + [*BASE, *overrides]
    )


def metrics(run) -> list[list[str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [[row[c] for c in COMPARED] for row in csv.DictReader(f)]


def assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


class Crash(Exception):
    """Stands in for a kill: raised from inside training at a chosen moment."""


def test_resume_after_crashes_at_random_points_is_bit_identical(tmp_path, monkeypatch):
    reference = Trainer(config(tmp_path), tmp_path / "a")
    reference.fit()

    calls, rng = {"n": 0, "at": 0}, random.Random(1)
    loss, save = trainer_module.Trainer._loss, trainer_module.CheckpointDir.save

    def crashing_loss(self, batch, smoothing):
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise Crash
        return loss(self, batch, smoothing)

    def crashing_save(self, state, *args):
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise Crash  # a save that never happened: last.pt must stay the previous one
        return save(self, state, *args)

    nll = trainer_module.valid_nll

    def crashing_nll(*args):  # a kill during validation
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise Crash
        return nll(*args)

    monkeypatch.setattr(trainer_module.Trainer, "_loss", crashing_loss)
    monkeypatch.setattr(trainer_module, "valid_nll", crashing_nll)
    monkeypatch.setattr(trainer_module.CheckpointDir, "save", crashing_save)
    crashes, resumed_at = 0, []
    while True:
        calls["n"], calls["at"] = 0, rng.randint(2, 14) if crashes < 6 else 0
        trainer = Trainer(config(tmp_path, "resume=true"), tmp_path / "b")
        resumed_at.append(trainer.progress.update)
        try:
            trainer.fit()
            break
        except Crash:
            crashes += 1
    assert crashes == 6 and len(set(resumed_at)) > 3, resumed_at  # resumed from varied points
    assert_same_model(reference.model, trainer.model)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["progress"]["history"] == b["progress"]["history"]
    for x, y in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_finished_run_continues_with_more_updates_as_one_longer_run(tmp_path):
    longer = Trainer(config(tmp_path, "train.max_updates=16"), tmp_path / "a")
    longer.fit()
    Trainer(config(tmp_path, "train.max_updates=8"), tmp_path / "b").fit()
    again = Trainer(config(tmp_path, "train.max_updates=8", "resume=true"), tmp_path / "b")
    assert again.fit()["updates"] == 8  # nothing left to do
    more = Trainer(config(tmp_path, "train.max_updates=16", "resume=true"), tmp_path / "b")
    assert more.fit()["updates"] == 16
    assert_same_model(longer.model, more.model)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_changing_batch_or_model_settings_on_resume_is_refused_naming_them(tmp_path):
    Trainer(config(tmp_path, "train.max_updates=3"), tmp_path / "run").fit()
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    changed = config(
        tmp_path, "resume=true", "data.batch_tokens=40", "seed=4", "model.hidden_size=16"
    )
    with pytest.raises(ConfigError) as err:
        Trainer(changed, tmp_path / "run")
    message = str(err.value)
    for key in ("data.batch_tokens (run: 30, now: 40)", "seed (run: 3, now: 4)"):
        assert key in message
    assert "model.hidden_size" in message
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before
    # when, how long and where it trains may change
    harmless = config(
        tmp_path,
        "resume=true",
        "train.max_updates=5",
        "train.valid_every=2",
        "train.max_minutes=9",
        "progress=true",
        "threads=2",
        "decode.max_len_b=5",
    )
    assert Trainer(harmless, tmp_path / "run").progress.update == 3


def test_changed_training_data_is_refused(tmp_path):
    Trainer(config(tmp_path, "train.max_updates=2"), tmp_path / "run").fit()
    cfg = config(tmp_path, "resume=true")
    target = tmp_path / "data" / "train.yy"
    target.write_text(target.read_text().replace("ahpla", "ahplb"))
    with pytest.raises(RunDirError, match="training data .* differs"):
        Trainer(cfg, tmp_path / "run")


def test_resume_without_a_checkpoint_starts_a_new_run(tmp_path):
    trainer = Trainer(config(tmp_path, "resume=true", "train.max_updates=2"), tmp_path / "run")
    assert trainer.progress.update == 0
    assert trainer.fit()["updates"] == 2


def test_resume_refuses_checkpoints_without_last(tmp_path):
    Trainer(config(tmp_path, "train.max_updates=3"), tmp_path / "run").fit()
    (tmp_path / "run" / "checkpoints" / "last.pt").unlink()
    with pytest.raises(RunDirError, match="copy the one to continue from to last.pt"):
        Trainer(config(tmp_path, "resume=true"), tmp_path / "run")


def test_metrics_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    Trainer(config(tmp_path, "train.max_updates=6"), tmp_path / "run").fit()
    path = tmp_path / "run" / "metrics.csv"
    text = path.read_text()
    # rows a killed run wrote after its last checkpoint, the last one cut mid-line
    path.write_text(text + "7,1,train,0.5,1.6,,0.01,10,1\n8,1,tra")
    trainer = Trainer(config(tmp_path, "resume=true"), tmp_path / "run")
    assert trainer.progress.update == 6
    assert path.read_text() == text
    trainer.fit()
    updates = [int(r[0]) for r in metrics(tmp_path / "run") if r[2] == "train"]
    assert updates == list(range(1, 25))
    assert path.read_text().count("update,epoch") == 1


def test_checkpoints_are_bounded_by_keep_last_and_keep_best(tmp_path):
    trainer = Trainer(
        config(
            tmp_path,
            "train.max_updates=12",
            "train.save_every=1",
            "train.valid_every=2",
            "train.keep_last=2",
            "train.keep_best=2",
            "train.early_stop_metric=ppl",
        ),
        tmp_path / "run",
    )
    trainer.fit()
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    kept = sorted(int(u) for _, u in trainer.progress.best_kept)
    assert len(kept) == 2
    assert names == sorted(
        ["best.pt", "last.pt", "update-0000011.pt", "update-0000012.pt"]
        + [f"best-{u:07d}.pt" for u in kept]
    )
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["progress"]["best"] == trainer.progress.best == trainer.progress.best_kept[0][0]
    assert best["progress"]["update"] == trainer.progress.best_kept[0][1]
