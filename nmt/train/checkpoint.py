"""Checkpoints: written atomically, kept in bounded numbers, loaded without executing code.

A checkpoint is a dict of tensors and plain Python data (numbers, strings, lists, dicts),
so `torch.load(weights_only=True)` reads it and a crafted file cannot run code.

The `checkpoints/` folder of a run holds `last.pt` (what `resume=true` continues from),
`update-NNNNNNN.pt` for the `keep_last` most recent saves, `best.pt` and, with `keep_best`
above 1, `best-NNNNNNN.pt` for the `keep_best` best validations. One save writes the state
once and gives it its names by hard links (a copy where the file system has none).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nmt.errors import DiskFullError, NmtError, RunDirError
from nmt.rundir import BEST, LAST

log = logging.getLogger(__name__)

# the numbered saves CheckpointDir keeps and prunes (nmt-average reads them too)
NUMBERED = re.compile(r"(update|best)-(\d{7})\.pt")
_UNSAFE = re.compile(r"Unsupported (global|operand)[^.\n]*")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _nearest_folder(path: Path) -> Path:
    """path's folder, or the nearest one above it that exists (a deleted folder is remade)."""
    return next((p for p in path.parents if p.is_dir()), path.parent)


@contextmanager
def write_errors(path: Path, need: int, then: str) -> Iterator[None]:
    """Say what to do when writing `path` (about `need` bytes) fails, as one line.

    A full file system (ENOSPC, EDQUOT) becomes a DiskFullError naming the folder, the space
    needed and the space free; a folder that cannot be written (EACCES, EPERM, EROFS) a
    RunDirError; either ends with `then`, what to do once the cause is gone. Any other
    OSError is given path as its file name if it has none.
    """
    try:
        yield
    except NmtError:
        raise
    except OSError as err:
        reason = err.strerror or str(err)
        folder = _nearest_folder(path)
        if err.errno in _NO_SPACE:
            try:
                free = f" and {folder} has {_mb(shutil.disk_usage(folder).free)} free"
            except OSError:
                free = ""
            if err.errno == errno.EDQUOT:  # the file system has room; the user's quota has not
                free = f" and the disk quota of {folder} is spent"
            message = (
                f"{path}: {reason}: writing it needs about {_mb(need)}{free}; "
                f"free some space, then {then}"
            )
            raise DiskFullError(message, err.errno, reason, str(path)) from err
        if err.errno in _NOT_WRITABLE:
            raise RunDirError(
                f"{folder}: {reason}: cannot write {path} there; make {folder} writable, "
                f"then {then}"
            ) from err
        if not err.filename:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def payload_bytes(tree: Any) -> int:
    """Bytes of the tensors in a state: about the size of its checkpoint file."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, Mapping):
        return sum(payload_bytes(v) for v in tree.values())
    if isinstance(tree, list | tuple):
        return sum(payload_bytes(v) for v in tree)
    return 0


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _temp_path(path: Path) -> Path:
    """A new empty file beside path, private to us by name, with the usual permissions."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open would not
    return Path(tmp)


def _write_temp(state: dict[str, Any], path: Path) -> Path:
    """The state in a fsynced temporary file beside path; removed again on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with tmp.open("wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not err.filename:  # name the file for the user
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    return tmp


def _link(src: Path, dst: Path) -> None:
    """Make dst the same file as src, atomically (copied where hard links are unsupported)."""
    tmp = _temp_path(dst)
    try:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: Path, also: tuple[Path, ...] = ()) -> None:
    """Write state to path so that path is either the old file or the complete new one.

    The state goes to a temporary file that is fsynced, linked to each of `also` and then
    renamed over `path`; the folder is fsynced last, so a crash or a kill at any moment
    leaves every name pointing at a complete checkpoint.
    """
    tmp = _write_temp(state, path)
    try:
        for other in also:
            _link(tmp, other)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str, then: str = "run the command again") -> None:
    """Replace a small text file (config.yaml, metrics.csv) so it is never half-written; a
    failure says what to do (write_errors), `then` once its cause is gone."""
    with write_errors(path, len(text.encode("utf-8", "surrogatepass")), then):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(path)
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class CheckpointDir:
    """The `checkpoints/` folder of one run (RunDir.checkpoints): what is saved under which
    names, and pruning.

    A save that fails stops training with one line saying why and what to do (a full disk:
    the space needed and free; a folder that cannot be written), the checkpoints saved before
    untouched. If the folder is deleted while training runs, the next save makes it again
    with a warning: the model in memory is then the only copy of the run, so it is saved.
    """

    def __init__(self, folder: Path, keep_last: int = 3, keep_best: int = 1) -> None:
        self.folder = folder
        self.keep_last = keep_last
        self.keep_best = keep_best
        self._known = folder.is_dir()  # the folder existed or was saved into: expected to stay

    @property
    def last(self) -> Path:
        return self.folder / LAST

    @property
    def best(self) -> Path:
        return self.folder / BEST

    def files(self) -> list[Path]:
        """Every checkpoint in the folder, by name."""
        return sorted(self.folder.glob("*.pt")) if self.folder.is_dir() else []

    def remove_temporary(self) -> list[Path]:
        """Delete what a save that was killed half-way left behind (never a checkpoint)."""
        leftovers = sorted(self.folder.glob(".*.tmp")) if self.folder.is_dir() else []
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def save(
        self, state: dict[str, Any], update: int, best: bool, keep_best_updates: list[int]
    ) -> None:
        """Save `state` as last.pt and update-NNNNNNN.pt (and best.pt if `best`), then prune.

        `keep_best_updates` are the updates whose best-NNNNNNN.pt should exist (keep_best > 1).
        best.pt is written before last.pt: a resume never finds a newer best in last.pt's
        progress than best.pt holds.
        """
        also = []
        if best:
            also.append(self.best)
        if self.keep_best > 1 and update in keep_best_updates:
            also.append(self.folder / f"best-{update:07d}.pt")
        if self.keep_last > 0:
            also.append(self.folder / f"update-{update:07d}.pt")
        if self._known and not self.folder.is_dir():
            log.warning(
                "%s was deleted while training ran: made it again and saved update %d as %s; "
                "the checkpoints it held are lost%s",
                self.folder,
                update,
                LAST,
                "" if best else f" ({BEST} returns at the next better validation)",
            )
        run = self.folder.parent
        kept = (
            "the checkpoints saved before are intact" if self.last.is_file() else "none saved yet"
        )
        then = f"continue with resume=true hydra.run.dir={run} ({kept})"
        with write_errors(self.last, payload_bytes(state), then):
            save_checkpoint(state, self.last, tuple(also))
            self._prune(keep_best_updates)
        self._known = True

    def _prune(self, keep_best_updates: list[int]) -> None:
        numbered: dict[str, list[tuple[int, Path]]] = {"update": [], "best": []}
        for path in self.folder.iterdir():
            if m := NUMBERED.fullmatch(path.name):
                numbered[m.group(1)].append((int(m.group(2)), path))
        updates = sorted(numbered["update"], reverse=True)
        doomed = [path for _, path in updates[self.keep_last :]]
        keep = set(keep_best_updates) if self.keep_best > 1 else set()
        doomed += [path for n, path in numbered["best"] if n not in keep]
        for path in doomed:
            path.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint; refuse anything that is not plain data."""
    if not path.is_file():
        raise RunDirError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise RunDirError(f"{path}: the checkpoint is empty (0 bytes); use another one")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a foreign pickle protocol
            warnings.simplefilter("ignore")
            # Mapped, not read: only what the caller touches is paged in (a translator
            # never reads the optimiser state, twice the model's size with Adam).
            mmap = zipfile.is_zipfile(path)  # torch.save's format; older ones cannot map
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises several types for truncated or unsafe files
        text = str(err)
        if unsafe := _UNSAFE.search(text):
            raise RunDirError(
                f"{path}: refused: it holds pickled objects, not plain data ({unsafe.group(0)}); "
                "loading it could run code, so nmt loads only checkpoints of tensors, numbers "
                "and strings"
            ) from None
        detail = re.split(r"\.\s", text.strip(), maxsplit=1)[0] if text.strip() else "no detail"
        raise RunDirError(
            f"{path}: cannot be loaded as an nmt checkpoint ({type(err).__name__}: {detail}); "
            "it may be truncated or not a checkpoint: use another one (checkpoint=last, or "
            "checkpoints/update-NNNNNNN.pt)"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), Mapping):
        raise RunDirError(f"{path}: not an nmt checkpoint (no model state in it)")
    return state


def _some(names: list[str], limit: int = 4) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_model_state(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    """Load a checkpoint's model state; if it does not fit, name the parameters that differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(getattr(state[k], 'shape', ()))} in the checkpoint, "
        f"{tuple(own[k].shape)} in the model"
        for k in own
        if k in state
        and not (isinstance(state[k], torch.Tensor) and state[k].shape == own[k].shape)
    ]
    problems = []
    if shapes:
        problems.append("shapes differ: " + _some(shapes, 3))
    if missing:
        problems.append("missing from the checkpoint: " + _some(missing))
    if unexpected:
        problems.append("not in the model: " + _some(unexpected))
    if problems:
        raise RunDirError(
            f"{path}: the checkpoint does not fit the model the config describes ("
            + "; ".join(problems)
            + "); was it trained with other model.* / attention.* settings or vocabulary?"
        )
    model.load_state_dict(state)
