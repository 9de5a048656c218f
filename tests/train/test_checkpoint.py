"""Checkpoints: atomic writes, bounded folders, safe loading, mismatches named."""

from __future__ import annotations

import errno
import os
import pickle
import shutil

import pytest
import torch

from nmt.errors import DiskFullError, NmtError, RunDirError
from nmt.train import checkpoint as ckpt
from nmt.train.checkpoint import (
    CheckpointDir,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    write_text_atomic,
)
from tests.conftest import tiny_model


class WritesMarker:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def state(value: float = 1.0) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "progress": {"update": int(value)}}


def test_a_failing_save_leaves_the_previous_checkpoint_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(state(1), path)

    def half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", half_then_fail)
    with pytest.raises(OSError) as err:
        save_checkpoint(state(2), path)
    assert err.value.filename == str(path) and err.value.strerror == "No space left on device"
    assert load_checkpoint(path)["progress"]["update"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_one_save_gives_every_name_the_same_complete_file(tmp_path):
    folder = CheckpointDir(tmp_path, keep_last=2, keep_best=1)
    for update in (1, 2, 3):
        folder.save(state(update), update, best=update == 2, keep_best_updates=[])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "last.pt", "update-0000002.pt", "update-0000003.pt"]
    assert load_checkpoint(tmp_path / "best.pt")["progress"]["update"] == 2
    last = (tmp_path / "last.pt").read_bytes()
    assert last == (tmp_path / "update-0000003.pt").read_bytes()


def test_leftovers_of_a_killed_save_are_removed_and_nothing_else(tmp_path):
    folder = CheckpointDir(tmp_path)
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / "last.pt").write_bytes(b"whole")
    assert [p.name for p in folder.remove_temporary()] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    for path, dump in (
        (tmp_path / "evil.pt", lambda obj, f: torch.save(obj, f)),
        (tmp_path / "evil.pkl", lambda obj, f: pickle.dump(obj, f)),
    ):
        with path.open("wb") as f:
            dump({"model": WritesMarker(marker)}, f)
        with pytest.raises(RunDirError) as err:
            load_checkpoint(path)
        assert str(err.value).startswith(f"{path}: refused: it holds pickled objects")
        assert "\n" not in str(err.value)
        assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 1, 100])
def test_a_truncated_or_empty_checkpoint_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "last.pt"
    save_checkpoint(state(), path)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(RunDirError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "empty" in message if keep == 0 else "truncated" in message


def test_a_checkpoint_of_another_model_names_the_parameters_that_differ(tmp_path):
    small, other = tiny_model(tgt_vocab=19), tiny_model(tgt_vocab=25, input_feeding=False)
    with pytest.raises(RunDirError) as err:
        load_model_state(small, other.state_dict(), tmp_path / "best.pt")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'best.pt'}: the checkpoint does not fit the model")
    assert "shapes differ: " in message and "(25, " in message and "(19, " in message
    assert "decoder." in message and "\n" not in message
    load_model_state(small, tiny_model(tgt_vocab=19, seed=5).state_dict(), tmp_path / "x")


def test_a_full_disk_or_quota_says_the_space_needed_and_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"

    def full(src, dst, code=errno.ENOSPC):
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(ckpt.os, "replace", full)
    usage = shutil.disk_usage(tmp_path)._replace(free=3_400_000)
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda folder: usage)
    with pytest.raises(DiskFullError) as err:
        write_text_atomic(path, "x" * 2_000_000, then="try again")
    assert str(err.value) == (
        f"{path}: No space left on device: writing it needs about 2.0 MB and {tmp_path} has "
        "3.4 MB free; free some space, then try again"
    )
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(path))
    monkeypatch.setattr(ckpt.os, "replace", lambda s, d: full(s, d, errno.EDQUOT))
    with pytest.raises(DiskFullError, match=f"and the disk quota of {tmp_path} is spent;"):
        write_text_atomic(path, "x")
    monkeypatch.setattr(ckpt.os, "replace", lambda s, d: full(s, d, errno.EIO))
    with pytest.raises(OSError) as err:  # other failures keep their own message
        write_text_atomic(path, "x")
    assert not isinstance(err.value, NmtError) and err.value.errno == errno.EIO
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
