"""One toy run trained through nmt-train, shared by the reliability tests, and CLI helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import files_overrides, toy_pairs, train_toy_run, write_parallel

# One torch thread: the toy model is faster so, and timings do not collapse on a busy machine.
FAST = ("threads=1", "progress=false", "device=cpu")


def toy_overrides(folder: Path, n: int = 24) -> list[str]:
    """Overrides for a small model on the toy corpus written into folder/data."""
    train = write_parallel(folder / "data", "train", toy_pairs(n))
    return [*files_overrides(folder / "data", train, train), *FAST]


def train_reliability_run(folder: Path) -> Path:
    """Train a toy run in folder/run through nmt-train (a few seconds); return its path."""
    return train_toy_run(
        folder, *FAST, "train.max_updates=40", "train.valid_every=40", "train.max_epochs=0"
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A toy run directory written by nmt-train; never modified by tests."""
    return train_reliability_run(tmp_path_factory.mktemp("reliability"))
