"""NaN and inf: a bad update is skipped with a warning; too many in a row stop training."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from nmt.errors import DivergedError
from nmt.train import trainer as trainer_module
from nmt.train.checkpoint import load_checkpoint
from nmt.train.trainer import Trainer
from tests.train.test_resume import config


def poison_losses(monkeypatch, bad_calls: set[int], value: float = float("nan")) -> None:
    """Make the training loss `value` (times the real one) at the given 1-based calls."""
    original, calls = trainer_module.Trainer._loss, {"n": 0}

    def loss(self, batch, smoothing):
        result = original(self, batch, smoothing)
        if self.model.training:
            calls["n"] += 1
            if calls["n"] in bad_calls:
                return result * value
        return result

    monkeypatch.setattr(trainer_module.Trainer, "_loss", loss)


def test_nan_loss_skips_the_update_with_a_warning(tmp_path, monkeypatch, caplog):
    # accumulate=2: batches 3 and 4 form update 2, batch 9 belongs to update 5
    poison_losses(monkeypatch, {3, 9})
    trainer = Trainer(config(tmp_path, "train.max_updates=6"), tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        result = trainer.fit()
    assert result["updates"] == 6
    assert trainer.progress.skipped_updates == 2 and trainer.progress.bad_updates == 0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [
        "update 2 skipped: non-finite loss (1 in a row; training stops at train.max_bad_updates=5)",
        "update 4 skipped: non-finite loss (1 in a row; training stops at train.max_bad_updates=5)",
    ]
    assert math.isfinite(trainer.progress.running_loss)


def test_infinite_gradient_is_skipped(tmp_path, monkeypatch, caplog):
    trainer = Trainer(
        config(tmp_path, "train.max_updates=3", "optim.clip_value=0.5"), tmp_path / "run"
    )
    weight = trainer.model.encoder.embed.weight
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 1 else grad

    weight.register_hook(hook)
    with caplog.at_level(logging.WARNING):
        trainer.fit()
    assert trainer.progress.skipped_updates == 1 and trainer.progress.update == 3
    assert "non-finite gradient" in caplog.text
    assert torch.isfinite(weight).all()


def test_too_many_bad_updates_in_a_row_stop_and_keep_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    # updates 1-3 are good (saved at 3); from batch 7 on every loss is NaN
    poison_losses(monkeypatch, set(range(7, 100)))
    trainer = Trainer(config(tmp_path, "train.max_bad_updates=3"), tmp_path / "run")
    with pytest.raises(DivergedError) as err:
        trainer.fit()
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert str(err.value) == (
        "training stopped after update 3: 3 updates in a row had a non-finite (NaN or inf) "
        f"loss or gradient (train.max_bad_updates=3); {last} holds update 3, the last good "
        "state. Lower optim.lr, set optim.clip_norm, or check the training data"
    )
    state = load_checkpoint(last)
    assert state["progress"]["update"] == 3 and state["progress"]["bad_updates"] == 0
    for name, value in state["model"].items():
        assert torch.equal(value, trainer.model.state_dict()[name]), name
