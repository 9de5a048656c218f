"""SIGKILL of one torchrun rank, mid-update and mid-validation: the job fails within
train.dist_timeout_s, torchrun's summary names the killed rank, and resume=true ends
bit-identical to the job that was never killed (CPU, gloo)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from nmt.train.checkpoint import load_checkpoint
from tests.distributed.test_ddp import _tensors, corpus, ddp_run, metrics, torchrun  # noqa: F401 (fixtures)

HOOKS = Path(__file__).with_name("kill_hooks.py")
TIMEOUT_S = 20  # test_ddp's train.dist_timeout_s


def killing(cwd: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """test_ddp's torchrun over kill_hooks.py, and when the job ended."""
    proc, _ = torchrun(cwd, *args, hooks=HOOKS, **env)
    return proc, time.time()


def assert_killed_and_named(proc, ended: float, killed_at: Path, rank: int) -> None:
    """The job failed, soon after the kill, and torchrun's summary names the killed rank."""
    assert proc.returncode != 0
    seconds = ended - float(killed_at.read_text())
    assert seconds < TIMEOUT_S, seconds
    summary = rf"rank\s*:\s*{rank} \(local_rank: {rank}\)\s*\n\s*exitcode\s*:\s*-9"
    assert re.search(summary, proc.stderr), proc.stderr[-3000:]
    assert "Signal 9 (SIGKILL)" in proc.stderr


@pytest.mark.slow
def test_a_rank_killed_mid_update_then_mid_validation_resumes_bit_identically(
    corpus,  # noqa: F811 (test_ddp's fixtures)
    ddp_run,  # noqa: F811
):
    tmp, overrides = corpus
    run, killed_at = tmp / "killed", tmp / "killed_at"
    args = [*overrides, f"hydra.run.dir={run}"]

    # rank 1 dies in update 5: last.pt is update 3's save (train.save_every=3)
    proc, ended = killing(tmp, *args, NMT_TEST_KILL="1:update:5", NMT_TEST_KILLED_AT=str(killed_at))
    assert_killed_and_named(proc, ended, killed_at, rank=1)
    # (rank 0's own line, "another process of this job crashed", is lost when torchrun's
    # SIGTERM reaches it first: the summary is what names the rank)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["update"] == 3

    # rank 0, the writer, dies in the final validation: update 6 was saved, not validated
    args.append("resume=true")
    proc, ended = killing(tmp, *args, NMT_TEST_KILL="0:valid", NMT_TEST_KILLED_AT=str(killed_at))
    assert_killed_and_named(proc, ended, killed_at, rank=0)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["progress"]["update"] == 6 and last["progress"]["history"] == []
    assert (run / ".lock").is_file()  # a SIGKILL releases nothing: the next job takes it over

    proc, _ = killing(tmp, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"\.lock: the nmt-train that held it \(pid \d+ on .*\) ended", proc.stderr)
    assert not (run / ".lock").exists()
    resumed = load_checkpoint(run / "checkpoints" / "last.pt")
    reference = load_checkpoint(ddp_run[0] / "checkpoints" / "last.pt")
    for key in ("model", "optimizer"):
        for a, b in zip(_tensors(resumed[key]), _tensors(reference[key]), strict=True):
            assert a.equal(b), key
    assert resumed["progress"]["history"] == reference["progress"]["history"]
    assert metrics(run) == metrics(ddp_run[0])
