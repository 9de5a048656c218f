"""nmt-train killed (SIGKILL, even inside a save) or interrupted (Ctrl-C, SIGTERM) and
resumed with resume=true ends bit-identical to a run that never stopped (CPU)."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt.train.checkpoint import load_checkpoint
from tests.helpers import cli_command, cli_env, run_cli
from tests.reliability.conftest import toy_overrides

UPDATES = 120
SETTINGS = (
    "data.batch_tokens=30",
    "model.dropout=0.2",
    "optim.accumulate=2",
    "train.max_epochs=0",
    f"train.max_updates={UPDATES}",
    "train.valid_every=40",
    "train.save_every=7",
    "train.log_every=3",
    "train.keep_last=2",
)
COMPARED = ["update", "epoch", "split", "loss", "ppl", "bleu", "lr"]


def metrics(run: Path) -> list[list[str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [[row[c] for c in COMPARED] for row in csv.DictReader(f)]


def assert_identical(a: Path, b: Path) -> None:
    """Same metrics rows (timings aside), same weights, optimiser state and counters."""
    assert metrics(a) == metrics(b)
    sa = load_checkpoint(a / "checkpoints" / "last.pt")
    sb = load_checkpoint(b / "checkpoints" / "last.pt")
    for name, value in sa["model"].items():
        assert torch.equal(value, sb["model"][name]), name
    for x, y in zip(
        sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert sa["progress"]["history"] == sb["progress"]["history"]
    assert sa["progress"]["update"] == sb["progress"]["update"] == UPDATES


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("kill")
    return tmp, [*toy_overrides(tmp), *SETTINGS]


@pytest.fixture(scope="module")
def reference(corpus) -> Path:
    """The run that was never interrupted."""
    tmp, overrides = corpus
    proc = run_cli("train", *overrides, f"hydra.run.dir={tmp}/reference")
    assert proc.returncode == 0, proc.stderr
    return tmp / "reference"


def train_rows(run: Path) -> int:
    path = run / "metrics.csv"
    return path.read_text().count(",train,") if path.is_file() else 0


def start(overrides: list[str], run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command("train", *overrides, f"hydra.run.dir={run}", "resume=true", *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(corpus, reference):
    tmp, overrides = corpus
    run, rng = tmp / "killed", random.Random(8)
    resumed_from = []
    for kill in range(5):
        proc = start(overrides, run)
        if kill == 0:
            time.sleep(rng.uniform(0.5, 2.5))  # while it starts: SentencePiece, data, model
        else:  # once training is under way, at a random moment
            before = train_rows(run)
            while train_rows(run) <= before and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.25))  # short: a fast machine does 120 updates in seconds
        proc.kill()
        proc.wait()
        last = run / "checkpoints" / "last.pt"
        resumed_from.append(load_checkpoint(last)["progress"]["update"] if last.exists() else 0)
    proc = start(overrides, run)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert resumed_from == sorted(resumed_from) and resumed_from[-1] < UPDATES, resumed_from
    assert len(set(resumed_from)) >= 3, resumed_from
    assert_identical(reference, run)
    print(f"killed 5 times; last.pt was at updates {resumed_from} of {UPDATES}")


KILL_IN_SAVE = """
import os, signal, sys
import nmt.train.checkpoint as ckpt
from nmt.cli.train import main
real_save, calls = ckpt.torch.save, []

def save(obj, f):  # the third save dies after writing part of the temporary file
    calls.append(1)
    if len(calls) == 3:
        real_save(obj, f)
        f.flush()
        os.truncate(f.fileno(), f.tell() // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, f)

ckpt.torch.save = save
sys.argv = ["nmt-train", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_a_kill_inside_a_save_never_leaves_a_broken_last_checkpoint(corpus, reference):
    tmp, overrides = corpus
    run = tmp / "killed-in-save"
    args = [*overrides, f"hydra.run.dir={run}", "resume=true"]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_IN_SAVE, *args], capture_output=True, env=cli_env()
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    folder = run / "checkpoints"
    leftovers = list(folder.glob(".last.pt.*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the half-written save
    assert load_checkpoint(folder / "last.pt")["progress"]["update"] == 14  # the second save
    proc = run_cli("train", *args)
    assert proc.returncode == 0, proc.stderr
    assert not list(folder.glob(".*.tmp"))
    assert_identical(reference, run)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_and_exits_with_128_plus_the_signal(corpus, signum):
    tmp, overrides = corpus
    run = tmp / f"interrupted-{signum}"
    proc = start(overrides, run, "train.max_updates=100000", "train.save_every=0")
    while train_rows(run) < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 128 + signum
    stderr = proc.stderr.read().decode()
    name = signal.Signals(signum).name
    assert "Traceback" not in stderr
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    update = state["progress"]["update"]
    assert stderr.splitlines()[-1] == (
        f"interrupted by {name}: saved {run}/checkpoints/last.pt at update {update}; continue "
        f"with the same command and resume=true hydra.run.dir={run}"
    )
    assert int(metrics(run)[-1][0]) <= update  # every row the checkpoint covers, no more
