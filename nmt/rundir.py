"""RunDir: the layout of the run directory nmt-train writes, and what to say when it is wrong.

    RUN/
      config.yaml     the run's resolved TrainRunConfig
      spm.model       the joint SentencePiece model, or spm.src.model and spm.tgt.model
      checkpoints/    last.pt, best.pt, update-NNNNNNN.pt, best-NNNNNNN.pt (train/checkpoint.py)
      metrics.csv     a row per logged update and per validation
      valid/          update-NNNNNNN.txt: the validation set's translations at each validation
      analysis/       nmt-analyze's reports, a folder each

Every command finds these files through RunDir, and the trainer writes them through it. It
sits beside config.py in the layer order, with neither torch nor Hydra at import: the data
layer asks it for the SentencePiece file names.
"""

from __future__ import annotations

import csv
import hashlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from nmt.errors import RunDirError

if TYPE_CHECKING:
    from collections.abc import Iterable

LAST = "last.pt"  # in checkpoints/: what resume=true continues from, checkpoint=last
BEST = "best.pt"  # in checkpoints/: the best validation so far, checkpoint=best
METRICS_NUMBERS = ("update", "epoch", "loss", "ppl", "bleu", "lr", "tokens_per_s", "elapsed_s")


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (corpora can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_hashes(paths: Iterable[str | Path | None]) -> dict[str, str]:
    """{path: sha256} for each existing file, in the order given."""
    return {str(p): sha256(p) for p in paths if p and Path(p).is_file()}


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Rows of a trainer's metrics.csv; numbers as floats (update, epoch as ints), blanks None."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: not found; nmt-train writes it from the first update on")
    with path.open(newline="", encoding="utf-8") as f:
        reader = metrics_reader(f, path)
        return [metrics_row(raw, path, number) for number, raw in enumerate(reader, start=2)]


def metrics_reader(lines: Iterable[str], path: Path) -> csv.DictReader:
    """A csv.DictReader of metrics.csv's lines; refused if the header is not nmt-train's."""
    reader = csv.DictReader(lines)
    missing = {"update", "split", "loss", "ppl", "bleu"} - set(reader.fieldnames or [])
    if missing:
        raise RunDirError(
            f"{path}: not a metrics.csv written by nmt-train (no column "
            f"{', '.join(sorted(missing))}); restore its first line, or move the file aside"
        )
    return reader


def metrics_row(raw: dict[str, str | None], path: Path, number: int) -> dict:
    """One row of metrics.csv (line `number`) typed: floats, update and epoch ints, None."""
    row: dict = {"split": raw.get("split", "")}
    for key in METRICS_NUMBERS:
        value = (raw.get(key) or "").strip()
        try:
            row[key] = None if not value else float(value)
        except ValueError:
            raise RunDirError(
                f"{path}, line {number}: {key}={value!r} is not a number; correct or delete "
                "that line"
            ) from None
    for key in ("update", "epoch"):
        if row[key] is not None:
            row[key] = int(row[key])
    return row


class RunDir:
    """One run directory: its files by name, and readers that say what is wrong and the fix.

    `RunDir(path)` only names files (the trainer uses it before the directory exists);
    `RunDir.open(path)` is for commands that read a finished run and refuses what is not one.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """The run directory at path, refused with a clear message unless it holds config.yaml."""
        run = cls(path)
        if run.root.exists() and not run.root.is_dir():
            raise RunDirError(f"{run.root} is a file; run= takes the directory nmt-train wrote")
        if not run.root.is_dir():
            raise RunDirError(f"{run.root}: no such run directory")
        if not run.config_path.is_file():
            raise run._no_config()
        return run

    def _no_config(self) -> RunDirError:
        return RunDirError(
            f"{self.root}: no config.yaml; is this a run directory written by nmt-train?"
        )

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # -- the layout ----------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def spm_joint(self) -> Path:
        """The SentencePiece model of both sides (data.joint_vocab=true)."""
        return self.root / "spm.model"

    @property
    def spm_src(self) -> Path:
        return self.root / "spm.src.model"

    @property
    def spm_tgt(self) -> Path:
        return self.root / "spm.tgt.model"

    @property
    def spm_models(self) -> tuple[Path, Path, Path]:
        """Every SentencePiece model name a run may hold (one joint, or source and target)."""
        return (self.spm_joint, self.spm_src, self.spm_tgt)

    @property
    def checkpoints(self) -> Path:
        """The checkpoints/ folder (train/checkpoint.py's CheckpointDir names its files)."""
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def lock_path(self) -> Path:
        """The lock nmt-train holds while it writes the run (train/lock.py)."""
        return self.root / ".lock"

    def valid_output(self, update: int) -> Path:
        """Where the translations of the validation set at `update` are written."""
        return self.root / "valid" / f"update-{update:07d}.txt"

    @property
    def analysis(self) -> Path:
        """The folder nmt-analyze writes its reports into when not given out=."""
        return self.root / "analysis"

    # -- reading -------------------------------------------------------------------------

    @cached_property
    def config(self) -> DictConfig:
        """The run's config.yaml, typed by TrainRunConfig (read once)."""
        # imported here: the data layer uses RunDir for file names without importing Hydra
        from nmt.config import TrainRunConfig

        path = self.config_path
        if not path.is_file():
            raise self._no_config()
        text = path.read_text(encoding="utf-8", errors="replace")
        if text and not text.endswith("\n"):  # nmt-train writes it whole, ending in a newline
            last = text.rsplit("\n", 1)[-1].strip()[:40]
            raise RunDirError(
                f"{path}: ends mid-line ({last!r}), so it looks truncated; restore it from the "
                "run's .hydra/*/config.yaml (or, had you edited it, end it with a newline)"
            )
        try:
            loaded = OmegaConf.load(path)
            if not isinstance(loaded, DictConfig):
                raise TypeError(f"expected a mapping of keys, found a {type(loaded).__name__}")
            return OmegaConf.merge(OmegaConf.structured(TrainRunConfig), loaded)
        except Exception as err:  # yaml and OmegaConf raise several types for a broken file
            raise RunDirError(
                f"{path}: not a config written by nmt-train ({str(err).splitlines()[0]}); "
                "restore it from the run's .hydra/*/config.yaml or train again"
            ) from None

    def spm_hashes(self) -> dict[str, str]:
        """{file name: sha256} of the run's SentencePiece models, as its checkpoints record."""
        return {p.name: sha256(p) for p in self.spm_models if p.is_file()}

    def check_spm(self, recorded: dict[str, str], checkpoint: Path) -> None:
        """Refuse SentencePiece models other than the ones `checkpoint` was trained with
        (`recorded`: its spm_hashes; older checkpoints record none)."""
        for name, digest in recorded.items():
            path = self.root / name
            now = sha256(path) if path.is_file() else None
            if now != digest:
                state = f"now {now[:12]}…" if now else "now missing"
                raise RunDirError(
                    f"{path}: not the SentencePiece model {checkpoint} was trained with (sha256 "
                    f"{digest[:12]}…, {state}): it was edited or replaced; restore the run's "
                    "own (the model works only with it), or train a new run"
                )

    def checkpoint(self, which: str) -> Path:
        """checkpoint=best | last | PATH as a file: best and last must exist in checkpoints/;
        a PATH is taken as given (loading it says if it is missing)."""
        if which not in ("best", "last"):
            return Path(which)
        path = self.best if which == "best" else self.last
        if not path.is_file():
            raise RunDirError(
                f"{path}: not found; training may not have reached its first "
                "validation (see train.valid_every), or pass checkpoint=PATH"
            )
        return path

    def metrics(self) -> list[dict]:
        """The rows of metrics.csv (read_metrics_csv)."""
        return read_metrics_csv(self.metrics_path)

    def manifest(self, checkpoint: Path | None = None) -> dict:
        """What a report's manifest records of the run: its resolved config, decode settings
        and the sha256 of its SentencePiece models and (when one was used) checkpoint."""
        config = OmegaConf.to_container(self.config, resolve=False)
        return {
            "path": str(self.root),
            "config": config,
            "decode": config.get("decode"),
            "spm_models": file_hashes(self.spm_models),
            "checkpoint": file_hashes([checkpoint]) if checkpoint is not None else {},
        }
