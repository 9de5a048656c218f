"""Two CPU processes under torchrun (gloo) train as one process does, resume, and fail fast."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt.train.checkpoint import load_checkpoint
from nmt.train.trainer import Trainer
from tests.helpers import cli_env, compose_config, files_overrides, toy_pairs, write_parallel

HOOKS = Path(__file__).with_name("torchrun_hooks.py")
UPDATES = 6
BASE = (
    "data.batch_tokens=30",
    "train.max_epochs=0",
    f"train.max_updates={UPDATES}",
    "train.valid_every=100",
    "train.save_every=3",
    "train.log_every=1",
    "optim.accumulate=2",  # one batch per rank and update
    "seed=5",
    "threads=1",
    "train.dist_timeout_s=20",
)
ABORT = "terminate called without an active exception"
COMPARED = ["update", "epoch", "split", "loss", "ppl", "bleu", "lr"]  # not timings


def torchrun(
    cwd: Path, *args: str, hooks: Path = HOOKS, **env: str
) -> tuple[subprocess.CompletedProcess, float]:
    """`torchrun --standalone --nproc_per_node=2 HOOKS ARGS` (torchrun_hooks.py unless
    `hooks` names another), and its wall time."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(hooks), *args]
    start = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=cli_env(OMP_NUM_THREADS="1", **env),
    )
    # a process that aborted at exit after its work was done (issue 20), whatever the
    # job's status: the injected crash's job fails too, but never this way
    assert ABORT not in proc.stderr, proc.stderr[-3000:]
    return proc, time.monotonic() - start


def metrics(run: Path) -> list[list[str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [[row[c] for c in COMPARED] for row in csv.DictReader(f)]


def numbers(rows: list[list[str]]) -> tuple[list[str], list[float]]:
    """The words and the numbers in metrics rows, apart."""
    cells = [v for r in rows for v in r]
    return [v for v in cells if not v[:1].isdigit()], [float(v) for v in cells if v[:1].isdigit()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("ddp")
    train = write_parallel(tmp / "data", "train", toy_pairs(40))
    return tmp, [*files_overrides(tmp / "data", train, train), *BASE]


@pytest.fixture(scope="module")
def ddp_run(corpus) -> tuple[Path, Path]:
    """A 2-process run in the default run directory; each rank's parameters in dumps/."""
    tmp, overrides = corpus
    (tmp / "dumps").mkdir()
    proc, _ = torchrun(tmp, *overrides, NMT_TEST_DUMP=str(tmp / "dumps"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp / "outputs").glob("*/*"))
    assert len(runs) == 1, runs  # both ranks used one run directory
    return runs[0], tmp / "dumps"


def test_ranks_hold_identical_parameters(ddp_run):
    _, dumps = ddp_run
    rank0, rank1 = (torch.load(dumps / f"rank{r}.pt") for r in (0, 1))
    for name, p in rank0.items():
        assert torch.equal(p, rank1[name]), name


def test_two_processes_train_as_one_with_the_same_accumulation(ddp_run, corpus, tmp_path):
    run, _ = ddp_run
    # torchrun's processes multiply in torch's BLAS (no oneDNN products under DDP); so here
    single = Trainer(compose_config("train", [*corpus[1], "kernels=blas"]), tmp_path / "single")
    single.fit()
    ddp = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ddp["progress"]["update"] == UPDATES
    for name, p in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], p, rtol=0, atol=1e-5, msg=name)
    # the same losses; validation sums the shards' losses in another order
    (words, values), (single_words, single_values) = (
        numbers(metrics(r)) for r in (run, tmp_path / "single")
    )
    assert words == single_words and values == pytest.approx(single_values, rel=1e-9)


def test_only_rank_0_writes_the_run_directory(ddp_run):
    run, _ = ddp_run
    assert run.name.startswith("ddp-")  # named after the rendezvous, which all ranks share
    assert len(list((run / ".hydra").iterdir())) == 1  # one Hydra record, rank 0's
    log = (run / "train.log").read_text()
    assert log.count("stopped: reached train.max_updates") == 1
    assert sorted(p.name for p in (run / "valid").iterdir()) == [f"update-{UPDATES:07d}.txt"]
    assert len(metrics(run)) == UPDATES + 1  # a row per update and the final validation


def test_a_crashed_rank_fails_the_job_fast_and_resume_continues_identically(ddp_run, corpus):
    tmp, overrides = corpus
    run = tmp / "crashed"
    args = [*overrides, f"hydra.run.dir={run}"]
    proc, seconds = torchrun(tmp, *args, NMT_TEST_FAIL="1:4:crash")
    assert proc.returncode != 0
    assert seconds < 60, seconds
    assert "injected failure on rank 1 after update 4" in proc.stderr
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", proc.stderr)  # torchrun's summary
    assert "rank 0 of 2: another process of this job crashed" in proc.stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["update"] == 3

    proc, _ = torchrun(tmp, *args, "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = load_checkpoint(run / "checkpoints" / "last.pt")
    reference = load_checkpoint(ddp_run[0] / "checkpoints" / "last.pt")
    for key in ("model", "optimizer"):
        assert torch.equal(
            torch.cat([t.flatten() for t in _tensors(resumed[key])]),
            torch.cat([t.flatten() for t in _tensors(reference[key])]),
        ), key
    assert metrics(run) == metrics(ddp_run[0])


def _tensors(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree.float()]
    if isinstance(tree, dict):
        return [t for key in sorted(tree, key=str) for t in _tensors(tree[key])]
    if isinstance(tree, list | tuple):
        return [t for item in tree for t in _tensors(item)]
    return []


@pytest.mark.slow
def test_a_hung_rank_times_out_instead_of_freezing_the_job(corpus):
    tmp, overrides = corpus
    args = [*overrides, f"hydra.run.dir={tmp / 'hung'}", "train.dist_timeout_s=5"]
    proc, seconds = torchrun(tmp, *args, NMT_TEST_FAIL="1:2:hang")
    assert proc.returncode != 0
    assert seconds < 60, seconds
    assert "rank 0 of 2" in proc.stderr
    assert "train.dist_timeout_s=5 s" in proc.stderr
