"""The disk under a training run fails: full while saving a checkpoint, the checkpoints/ folder
read-only or deleted mid-run. Training stops with one clear line (or, for a deleted folder,
goes on with a warning); every checkpoint saved before is intact and loadable, no temporary
file is left, and resume=true ends bit-identical to a run that never failed."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from nmt.errors import DiskFullError, RunDirError
from nmt.train import checkpoint as ckpt
from nmt.train import trainer as trainer_module
from nmt.train.checkpoint import load_checkpoint
from nmt.train.trainer import Trainer
from tests.train.test_resume import assert_same_model, config, metrics

# test_resume's BASE saves at updates 3, 6, 8 (validation, best), 9, 12, 15, 16 (v), … 24
FAILING_SAVE, SAVED_BEFORE, BEST_BEFORE = 5, 9, 8  # the 5th save is update 12's (not a best)
NO_SPACE = "No space left on device"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Trainer:
    """The run that never failed."""
    tmp = tmp_path_factory.mktemp("reference")
    trainer = Trainer(config(tmp), tmp / "run")
    trainer.fit()
    return trainer


class Fault:
    """Arms `fault` (a callable: armed → bool) during the n-th checkpoint save only."""

    def __init__(self, monkeypatch, at: int) -> None:
        self.calls, self.at, self.armed = 0, at, False
        save = trainer_module.CheckpointDir.save

        def counting_save(folder, *args, **kwargs):
            self.calls += 1
            self.armed = self.calls == self.at
            try:
                if self.armed:
                    self.before_save(folder)
                return save(folder, *args, **kwargs)
            finally:
                self.armed = False

        monkeypatch.setattr(trainer_module.CheckpointDir, "save", counting_save)

    def before_save(self, folder) -> None:
        """What happens to the disk just before the failing save (subclasses)."""

    def off(self) -> None:
        self.at = 0


def inject_no_space(monkeypatch, fault: Fault, where: str) -> None:
    """ENOSPC from the file system while the fault is armed: in torch.save's writes (after
    half the file), in fsync of the written file, or in the rename onto last.pt."""
    save, fsync, replace = ckpt.torch.save, os.fsync, os.replace
    enospc = OSError(errno.ENOSPC, NO_SPACE)

    def half_then_full(obj, f):
        if fault.armed and where == "write":
            f.write(b"PK\x03\x04 half a checkpoint")
            raise enospc
        return save(obj, f)

    def failing_fsync(fd):
        if fault.armed and where == "fsync":
            raise enospc
        return fsync(fd)

    def failing_replace(src, dst):
        if fault.armed and where == "replace" and Path(dst).name == "last.pt":
            raise OSError(errno.ENOSPC, NO_SPACE, str(src), None, str(dst))
        return replace(src, dst)

    monkeypatch.setattr(ckpt.torch, "save", half_then_full)
    monkeypatch.setattr(ckpt.os, "fsync", failing_fsync)
    monkeypatch.setattr(ckpt.os, "replace", failing_replace)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def assert_previous_checkpoints_intact(run: Path, before: dict[str, bytes]) -> None:
    """No temporary file left; last.pt and best.pt are the saves before the failure."""
    folder = run / "checkpoints"
    assert not list(folder.glob(".*.tmp")), list(folder.iterdir())
    for name in ("last.pt", "best.pt"):
        assert (folder / name).read_bytes() == before[name], name
    assert load_checkpoint(folder / "last.pt")["progress"]["update"] == SAVED_BEFORE
    assert load_checkpoint(folder / "best.pt")["progress"]["update"] == BEST_BEFORE


def resume_and_compare(tmp_path: Path, run: Path, reference: Trainer) -> Trainer:
    """Resume the failed run without the fault; it must end as the reference did."""
    resumed = Trainer(config(tmp_path, "resume=true"), run)
    assert resumed.progress.update == SAVED_BEFORE
    resumed.fit()
    assert_same_model(reference.model, resumed.model)
    assert metrics(run) == metrics(reference.run_dir)
    assert resumed.progress.history == reference.progress.history
    return resumed


class Snapshot(Fault):
    def before_save(self, folder) -> None:
        self.before = snapshot(folder.folder)


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_disk_full_in_a_save_names_the_space_keeps_the_checkpoints_and_resumes_exactly(
    tmp_path, monkeypatch, reference, where
):
    fault = Snapshot(monkeypatch, FAILING_SAVE)
    inject_no_space(monkeypatch, fault, where)
    free = namedtuple("usage", "total used free")(10**9, 10**9 - 200_000, 200_000)
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: free)
    run = tmp_path / "run"
    trainer = Trainer(config(tmp_path), run)
    with pytest.raises(DiskFullError) as err:
        trainer.fit()
    message = str(err.value)
    folder = run / "checkpoints"
    assert "\n" not in message
    assert message.startswith(f"{folder}/last.pt: {NO_SPACE}: writing it needs about ")
    assert message.endswith(
        f" MB and {folder} has 0.2 MB free; free some space, then continue with resume=true "
        f"hydra.run.dir={run} (the checkpoints saved before are intact)"
    )
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    need = float(re.search(r"needs about ([\d.]+) MB", message).group(1)) * 1e6
    size = (folder / "last.pt").stat().st_size
    assert abs(need - size) < 0.15 * size, (need, size)  # the space needed is the real one
    assert_previous_checkpoints_intact(run, fault.before)
    if where == "write":  # resuming is the same whichever write failed: once is enough
        fault.off()
        resume_and_compare(tmp_path, run, reference)


def test_a_read_only_checkpoints_folder_is_one_clear_error_and_resumes_exactly(
    tmp_path, monkeypatch, reference
):
    """Injected: the tests may run as root, whom file permissions do not stop."""
    fault = Snapshot(monkeypatch, FAILING_SAVE)
    mkstemp = ckpt.tempfile.mkstemp

    def refused(*args, dir, **kwargs):
        if fault.armed:
            raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/.last.pt.x.tmp")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(ckpt.tempfile, "mkstemp", refused)
    run = tmp_path / "run"
    trainer = Trainer(config(tmp_path), run)
    with pytest.raises(RunDirError) as err:
        trainer.fit()
    folder = run / "checkpoints"
    assert str(err.value) == (
        f"{folder}: Permission denied: cannot write {folder}/last.pt there; make {folder} "
        f"writable, then continue with resume=true hydra.run.dir={run} (the checkpoints saved "
        "before are intact)"
    )
    assert_previous_checkpoints_intact(run, fault.before)
    fault.off()
    resume_and_compare(tmp_path, run, reference)


@pytest.mark.skipif(
    os.geteuid() == 0, reason="running as root, whom chmod does not stop (see the injected test)"
)
def test_checkpoints_folder_made_read_only_by_chmod_stops_training_cleanly(tmp_path, monkeypatch):
    class ReadOnly(Snapshot):
        def before_save(self, folder) -> None:
            super().before_save(folder)
            folder.folder.chmod(0o555)

    fault = ReadOnly(monkeypatch, FAILING_SAVE)
    run = tmp_path / "run"
    trainer = Trainer(config(tmp_path), run)
    try:
        with pytest.raises(RunDirError, match="Permission denied: cannot write .*last.pt"):
            trainer.fit()
    finally:
        (run / "checkpoints").chmod(0o755)
    assert_previous_checkpoints_intact(run, fault.before)


def test_checkpoints_deleted_mid_run_are_saved_again_with_a_warning(
    tmp_path, monkeypatch, reference, caplog
):
    """The model in memory is then the only copy of the run: training goes on and saves it
    (stopping would lose it all); the warning says what was lost."""

    class Deleted(Fault):
        def before_save(self, folder) -> None:
            shutil.rmtree(folder.folder)

    Deleted(monkeypatch, FAILING_SAVE)
    run = tmp_path / "run"
    trainer = Trainer(config(tmp_path), run)
    with caplog.at_level(logging.WARNING, logger="nmt.train.checkpoint"):
        trainer.fit()
    folder = run / "checkpoints"
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder} was deleted while training ran: made it again and saved update 12 as "
        "last.pt; the checkpoints it held are lost (best.pt returns at the next better "
        "validation)"
    ]
    assert_same_model(reference.model, trainer.model)  # training itself never noticed
    assert metrics(run) == metrics(reference.run_dir)
    last, ref = (load_checkpoint(r / "checkpoints/last.pt") for r in (run, reference.run_dir))
    assert last["progress"]["history"] == ref["progress"]["history"]
    assert last["progress"]["update"] == ref["progress"]["update"] == 24
    # best.pt is back if a validation after update 12 was a new best, else gone with the rest
    ref_best = load_checkpoint(reference.run_dir / "checkpoints/best.pt")["progress"]["update"]
    if ref_best > 12:
        assert load_checkpoint(folder / "best.pt")["progress"]["update"] == ref_best
    else:
        assert not (folder / "best.pt").exists()
