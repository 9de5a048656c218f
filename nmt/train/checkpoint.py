"""Checkpoints: written atomically, loaded without executing pickled code.

A checkpoint is a dict of tensors and plain Python data (numbers, strings, lists, dicts),
so `torch.load(weights_only=True)` reads it and a crafted file cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from nmt.errors import RunDirError


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write state to path so that path is either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint; refuse anything that is not plain data."""
    if not path.is_file():
        raise RunDirError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or unsafe files
        raise RunDirError(
            f"{path}: cannot be loaded as an nmt checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); it may be truncated, "
            "or a pickle that would run code, which nmt refuses to load"
        ) from err
