"""What a report reads from a training run directory: metrics.csv, config.yaml, model files.

Plain file reading only; loading the model itself (for attention) is the translator's job.
"""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import OmegaConf

from nmt.errors import RunDirError
from nmt.evaluate.manifest import file_hashes

NUMERIC = ("update", "epoch", "loss", "ppl", "bleu", "lr", "tokens_per_s", "elapsed_s")
SPM_FILES = ("spm.model", "spm.src.model", "spm.tgt.model")


def run_directory(run: str | Path) -> Path:
    """The run directory as a Path, refused with a clear message if it is not one."""
    path = Path(run)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    if not (path / "config.yaml").is_file():
        raise RunDirError(f"{path}: no config.yaml; is this a run directory written by nmt-train?")
    return path


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Rows of a trainer's metrics.csv; numbers as floats (update, epoch as ints), blanks None."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: not found; nmt-train writes it from the first update on")
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"update", "split", "loss", "ppl", "bleu"} - set(reader.fieldnames or [])
        if missing:
            raise RunDirError(
                f"{path}: not a metrics.csv written by nmt-train (no column "
                f"{', '.join(sorted(missing))})"
            )
        for number, raw in enumerate(reader, start=2):
            row: dict = {"split": raw.get("split", "")}
            for key in NUMERIC:
                value = (raw.get(key) or "").strip()
                try:
                    row[key] = None if not value else float(value)
                except ValueError:
                    raise RunDirError(
                        f"{path}, line {number}: {key}={value!r} is not a number"
                    ) from None
            for key in ("update", "epoch"):
                if row[key] is not None:
                    row[key] = int(row[key])
            rows.append(row)
    return rows


def training_summary(rows: list[dict]) -> dict:
    """Counts, the last training row and the validations (all, and the best by BLEU)."""
    train = [r for r in rows if r["split"] == "train"]
    valid = [r for r in rows if r["split"] == "valid"]
    scored = [r for r in valid if r["bleu"] is not None]
    return {
        "updates": max((r["update"] for r in rows if r["update"] is not None), default=0),
        "train_rows": len(train),
        "validations": valid,
        "last_train": train[-1] if train else None,
        "best_valid": max(scored, key=lambda r: r["bleu"]) if scored else None,
    }


def run_manifest(run_dir: Path, checkpoint: Path | None = None) -> dict:
    """The run's resolved config, decode settings and hashes of its SentencePiece models and
    (when one was used) checkpoint, for the report's manifest."""
    path = run_dir / "config.yaml"
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # yaml and OmegaConf raise several types for a broken file
        raise RunDirError(f"{path}: not readable as YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(config, dict):
        raise RunDirError(f"{path}: not a config written by nmt-train (expected a mapping)")
    return {
        "path": str(run_dir),
        "config": config,
        "decode": config.get("decode"),
        "spm_models": file_hashes([run_dir / name for name in SPM_FILES]),
        "checkpoint": file_hashes([checkpoint]) if checkpoint is not None else {},
    }
