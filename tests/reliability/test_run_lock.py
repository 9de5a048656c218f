"""Never two writers: nmt-train holds RUN/.lock while it trains; a second process on the same
run is refused naming the holder, a lock left by a killed process is taken over with a
warning, and the lock goes when training ends, by Ctrl-C and SIGTERM too."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from nmt.errors import RunDirError
from nmt.train import lock as lock_module
from nmt.train.checkpoint import load_checkpoint
from nmt.train.lock import RunLock
from tests.helpers import cli_command, cli_env, run_cli
from tests.reliability.conftest import toy_overrides

HOST = socket.gethostname()


def dead_pid() -> int:
    """The pid of a process of ours that has ended (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def test_the_lock_file_names_its_holder_and_goes_at_release(tmp_path):
    with RunLock(tmp_path) as held:
        record = json.loads((tmp_path / ".lock").read_text())
        assert record["pid"] == os.getpid() and record["host"] == HOST
        assert time.strptime(record["started"], "%Y-%m-%d %H:%M:%S %z")
        assert held.path == tmp_path / ".lock"
    assert not (tmp_path / ".lock").exists()


def test_a_second_holder_is_refused_in_one_line_naming_pid_and_host(tmp_path):
    with RunLock(tmp_path):
        started = json.loads((tmp_path / ".lock").read_text())["started"]
        with pytest.raises(RunDirError) as err:
            RunLock(tmp_path).acquire()  # another open file: flock refuses it like a process
    assert str(err.value) == (
        f"{tmp_path} is being trained by another nmt-train (pid {os.getpid()} on {HOST}, "
        f"since {started}): two processes must not write one run; wait for it to end (Ctrl-C "
        "or SIGTERM saves a checkpoint and stops it), or train in another hydra.run.dir"
    )
    RunLock(tmp_path).acquire()  # released: free again


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    pid = dead_pid()
    left = {"pid": pid, "host": HOST, "started": "2024-01-02 03:04:05 +0000"}
    (tmp_path / ".lock").write_text(json.dumps(left))
    with caplog.at_level(logging.WARNING, logger="nmt.train.lock"), RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert caplog.messages == [
        f"{tmp_path / '.lock'}: the nmt-train that held it (pid {pid} on {HOST}, since "
        "2024-01-02 03:04:05 +0000) ended without releasing it (killed?); taking it over"
    ]


def test_without_flock_the_pid_and_host_decide(tmp_path, monkeypatch):
    """Some network file systems have no flock: a live holder on this host, or any on another
    host (which cannot be checked), refuses; a dead one on this host is taken over."""
    monkeypatch.setattr(lock_module, "fcntl", None)
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": os.getppid(), "host": HOST, "started": "then"}))
    with pytest.raises(RunDirError, match=f"pid {os.getppid()} on {HOST}, since then"):
        RunLock(tmp_path).acquire()
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(RunDirError, match=f"if that process is gone, delete {path}$"):
        RunLock(tmp_path).acquire()
    path.write_text(json.dumps({"pid": dead_pid(), "host": HOST, "started": "then"}))
    with RunLock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_run_directory_without_write_permission_is_named(tmp_path, monkeypatch):
    def refused(path, flags, mode=0o777):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lock_module.os, "open", refused)
    with pytest.raises(RunDirError) as err:
        RunLock(tmp_path).acquire()
    assert str(err.value) == (
        f"{tmp_path}: Permission denied: nmt-train cannot write its lock file .lock there; "
        "make the directory writable, or train in another hydra.run.dir"
    )


@pytest.mark.slow
def test_a_second_nmt_train_on_a_running_run_is_refused_and_ctrl_c_releases_the_lock(
    tmp_path,
):
    overrides = [*toy_overrides(tmp_path), "train.max_epochs=0", "train.log_every=1"]
    run = tmp_path / "run"
    first = subprocess.Popen(
        cli_command("train", *overrides, f"hydra.run.dir={run}", "train.max_updates=100000"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        while not (run / "metrics.csv").is_file() and first.poll() is None:
            time.sleep(0.05)
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == first.pid
        second = run_cli("train", *overrides, f"hydra.run.dir={run}", "resume=true")
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert lines[-1] == (
            f"error: {run} is being trained by another nmt-train (pid {first.pid} on {HOST}, "
            f"since {holder['started']}): two processes must not write one run; wait for it "
            "to end (Ctrl-C or SIGTERM saves a checkpoint and stops it), or train in another "
            "hydra.run.dir"
        )
        assert json.loads((run / ".lock").read_text()) == holder  # untouched by the second
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130, first.stderr.read().decode()
    finally:
        first.kill()
        first.wait()
    assert not (run / ".lock").exists()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["update"] >= 1


@pytest.mark.slow
def test_sigterm_before_training_starts_also_releases_the_lock(tmp_path):
    """Killed while it reads the data: outside the loop SIGTERM would end the process on the
    spot; the lock turns it into exit status 143 through the normal way out."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        cli_command("train", *toy_overrides(tmp_path), f"hydra.run.dir={run}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    while not (run / ".lock").exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr and "saved" not in stderr, stderr  # stopped before the loop
    assert not (run / ".lock").exists()
