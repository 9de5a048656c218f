"""What exact resume needs besides weights: counters, RNG states, the settings that must not
change, a fingerprint of the data, and a metrics.csv that continues where the checkpoint is.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nmt.errors import ConfigError, RunDirError
from nmt.rundir import RunDir, metrics_reader, metrics_row
from nmt.train.checkpoint import CheckpointDir, load_checkpoint, write_errors, write_text_atomic

log = logging.getLogger(__name__)

# Settings a resumed run may change: when and how long it trains, validates, saves and logs,
# how validation decodes, where it runs, and how the loss is chunked (float rounding only).
# Every other key decides the model, the batches or the optimisation, and changing it would
# make the resumed run another run.
MAY_CHANGE = (
    *("train.", "decode.", "device", "threads", "progress", "resume"),
    *("optim.loss_chunk", "kernels"),
)
MUST_KEEP = ("train.early_stop_metric",)  # "best" so far was measured with it


@dataclass
class Progress:
    """Counters that decide validation, checkpoints and stopping; saved in every checkpoint."""

    update: int = 0
    epoch: int = 0  # 0-based
    batch: int = 0  # batches of this epoch already consumed (always at an update boundary)
    best: float | None = None
    bad_validations: int = 0
    bad_updates: int = 0  # updates skipped in a row for a non-finite loss or gradient
    skipped_updates: int = 0  # all updates skipped so far
    running_loss: float | None = None  # the per-token loss EMA logged to metrics.csv
    elapsed_s: float = 0.0  # training time before this process started (train.max_minutes)
    best_kept: list[list[float]] = field(default_factory=list)  # [value, update], keep_best > 1
    history: list[dict] = field(default_factory=list)

    def record_validation(self, value: float, keep_best: int) -> bool:
        """Count a validation scoring `value` (higher is better); → whether it is a new best.

        With keep_best > 1, best_kept lists the keep_best best, best first, earliest on ties.
        """
        improved = self.best is None or value > self.best
        if improved:
            self.best, self.bad_validations = value, 0
        else:
            self.bad_validations += 1
        if keep_best > 1:
            kept = sorted([*self.best_kept, [value, self.update]], key=lambda e: (-e[0], e[1]))
            self.best_kept = kept[:keep_best]
        return improved

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA) generator states, as plain data and tensors."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = [name, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured (CUDA only onto as many devices as were saved)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:
            pass
        else:
            name, keys, pos, has_gauss, gauss = state["numpy"]
            np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def fixed_settings_changed(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key (run: old, now: new)' for each setting that differs and may not change on resume.

    Keys the saved config lacks (added to nmt later) cannot have shaped the run and are
    ignored.
    """
    old, new = _flatten(saved), _flatten(current)
    changed = []
    for key in old:
        if key.startswith(MAY_CHANGE) and key not in MUST_KEEP:
            continue
        if new.get(key, "<absent>") != old[key]:
            changed.append(f"{key} (run: {old[key]!r}, now: {new.get(key, '<absent>')!r})")
    return changed


def check_resumable(saved: dict[str, Any], current: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume when settings that shape the batches, model or optimiser changed."""
    changed = fixed_settings_changed(saved, current)
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir}: {len(changed)} setting(s) differ from the run's and "
            f"would make it another run: {'; '.join(changed)}. Give the run's values (see "
            f"{RunDir(run_dir).config_path}), or start a new run in another hydra.run.dir; only "
            "train.* (except early_stop_metric), decode.*, device, threads, progress, "
            "optim.loss_chunk and kernels may change"
        )


def resume_checkpoint(
    resume: bool, settings: dict[str, Any], checkpoints: CheckpointDir, run_dir: Path
) -> dict | None:
    """The checkpoint to continue from, None for a new run; refuse to overwrite a run.

    resume: the run's `resume` key; settings: its resolved config, compared with the one the
    checkpoint was trained with (`check_resumable`)."""
    existing = [p.name for p in checkpoints.files()]
    last = checkpoints.last
    if not resume:
        if existing:
            raise RunDirError(
                f"{run_dir} already holds a trained model (checkpoints/"
                f"{', '.join(existing[:3])}); continue it with resume=true, or pick another "
                "hydra.run.dir: nmt never overwrites a run"
            )
        return None
    if last.is_file():
        state = load_checkpoint(last)
        if not isinstance(state.get("config"), dict):
            raise RunDirError(f"{last}: not a training checkpoint (no config in it)")
        check_resumable(state["config"], settings, run_dir)
        return state
    if existing:
        raise RunDirError(
            f"{last}: not found, but {checkpoints.folder} holds {', '.join(existing)}; "
            "copy the one to continue from to last.pt, then resume"
        )
    log.warning("resume=true: %s holds no checkpoint yet; starting a new run", run_dir)
    return None


def check_training_state(
    state: dict, path: Path, data_sha256: str, train: str, run_dir: Path
) -> None:
    """Refuse to resume from `path` (holding `state`) if it is no training checkpoint, or if
    it was trained on other data than `train`'s (sha256 `data_sha256`)."""
    data = state.get("data", {})
    if data.get("train_sha256", data_sha256) != data_sha256:
        raise RunDirError(
            f"cannot resume {run_dir}: the training data (data.train={train}) differs from "
            f"the data the run was trained on (sha256 {data['train_sha256'][:12]}…, now "
            f"{data_sha256[:12]}…); restore the original files, or start a new run in another "
            "hydra.run.dir"
        )
    for key in ("optimizer", "progress"):
        if key not in state:
            raise RunDirError(f"{path}: not a training checkpoint (no {key} in it)")
    RunDir(run_dir).check_spm(data.get("spm_sha256", {}), path)


class MetricsLog:
    """metrics.csv: a header, then rows appended as training goes.

    On resume the file is repaired to end where the checkpoint does: rows written after it
    (by the run that stopped, which the resumed run writes again) and a last line cut off by
    a kill are dropped, with a warning. A file that is no metrics.csv, or a row edited so that
    it holds no number where one belongs, is refused naming the line.
    """

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path = path
        self.fields = fields

    def start(self, resume_update: int | None) -> None:
        """A fresh file (resume_update None), or the existing one cut after resume_update."""
        out = io.StringIO()
        writer = csv.DictWriter(out, self.fields, lineterminator="\n")
        writer.writeheader()
        if resume_update is not None and not self.path.is_file():
            log.warning(
                "%s: missing; started it again (the rows up to update %d are lost)",
                self.path,
                resume_update,
            )
        elif resume_update is not None:
            text = self.path.read_text(encoding="utf-8")
            complete = text[: text.rfind("\n") + 1]  # a row cut by a kill has no newline
            if complete != text:
                log.warning(
                    "%s: dropped its last line, cut off by the stop (%r)",
                    self.path,
                    text[len(complete) :][:60],
                )
            later = []
            reader = metrics_reader(io.StringIO(complete, newline=""), self.path)
            for raw in reader:
                row = metrics_row(raw, self.path, reader.line_num)
                if row["update"] is None:  # no update to place it by: not nmt-train's row
                    continue
                if row["update"] <= resume_update:
                    writer.writerow({k: raw.get(k, "") for k in self.fields})
                else:
                    later.append(row["update"])
            if later:
                log.warning(
                    "%s: dropped %d row(s) of updates %d-%d, written after the checkpoint "
                    "(update %d) by the run that stopped; training repeats them",
                    self.path,
                    len(later),
                    min(later),
                    max(later),
                    resume_update,
                )
        write_text_atomic(self.path, out.getvalue(), then=self._then)

    def write(self, row: dict[str, Any]) -> None:
        line = io.StringIO()
        csv.DictWriter(line, self.fields, lineterminator="\n").writerow(row)
        with (
            write_errors(self.path, len(line.getvalue()), self._then),
            self.path.open("a", newline="", encoding="utf-8") as f,
        ):
            f.write(line.getvalue())

    @property
    def _then(self) -> str:
        return f"continue with resume=true hydra.run.dir={self.path.parent}"
