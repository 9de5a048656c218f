"""Checkpoint averaging: one model whose parameters are the mean of several of a run's saves.

The average of a run's last (or best) few checkpoints often translates a little better than
any one of them. `average_run` chooses them (`nmt-average` is its command):

- last=N: the N newest saves, checkpoints/update-NNNNNNN.pt by update number (train.keep_last
  keeps them), with last.pt first when its update is newer than every kept one (keep_last=0);
- best=N: the N best validations under the run's train.early_stop_metric, from best-NNNNNNN.pt
  (train.keep_best > 1 keeps them) or else best.pt, each scored by its own validation record;
- checkpoints=[A, B, ...]: these files, each once.

They must be checkpoints of one model (parameter names, shapes and dtypes; SentencePiece
models where recorded). Floating-point tensors are averaged in float64 and cast back; others
(integer buffers) are the newest checkpoint's. The output, RUN/checkpoints/average-last5.pt
(average-best5.pt, average-list3.pt) unless named, holds the model, the newest's data record
and an `average` record, and no optimiser or progress: it is for decoding, and resume=true
refuses it. CheckpointDir prunes only update-/best-NNNNNNN.pt and resume reads only last.pt,
so training never touches it; those names, and the inputs, are refused as output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from nmt.errors import ConfigError, RunDirError
from nmt.rundir import BEST, LAST, RunDir
from nmt.train.checkpoint import (
    NUMBERED,
    load_checkpoint,
    payload_bytes,
    save_checkpoint,
    write_errors,
)

ONE_MODEL = "average checkpoints of one model"


@dataclass
class Member:
    """One checkpoint averaged: its file, update and validation score (None: not recorded)."""

    path: Path
    update: int | None
    score: float | None  # BLEU or perplexity, as the run's train.early_stop_metric says
    state: dict[str, Any]


@dataclass
class Averaged:
    """What average_run wrote: where, how the checkpoints were chosen, and which they were."""

    output: Path
    how: str  # "last 5", "best 5 by valid bleu" or "as listed"
    metric: str
    members: list[Member]

    def lines(self) -> list[str]:
        """The output, then one line per checkpoint averaged."""
        head = f"wrote {self.output}: the average of {len(self.members)} checkpoints ({self.how})"
        return [head] + [
            f"  {m.path}: update {m.update}, "
            + (f"valid {self.metric} {m.score:.2f}" if m.score is not None else "no validation")
            for m in self.members
        ]


def _load(path: Path, metric: str) -> Member:
    state = load_checkpoint(path)
    progress = state.get("progress") or {}
    update = progress.get("update")
    score = next(
        (h.get(metric) for h in progress.get("history", []) if h.get("update") == update), None
    )
    return Member(path, update, score, state)


def _numbered(folder: Path, kind: str) -> list[tuple[int, Path]]:
    """(update, path) of folder's kind-NNNNNNN.pt files, newest first."""
    found = [(p, NUMBERED.fullmatch(p.name)) for p in folder.glob(f"{kind}-*.pt")]
    return sorted(((int(m.group(2)), p) for p, m in found if m), reverse=True)


def _too_few(what: str, n: int, have: list[Path], run: RunDir, key: str) -> RunDirError:
    names = f" ({', '.join(p.name for p in have)})" if have else ""
    kept = OmegaConf.select(run.config, key)
    return RunDirError(
        f"{what}={n}: {run.checkpoints} holds {len(have)} to choose from{names}, as the run's "
        f"{key}={kept} keeps; train (or resume) with {key}={n} or more to average {n}"
        + (f", or give {what}={len(have)}" if have else "")
    )


def last_checkpoints(run: RunDir, n: int, metric: str) -> list[Member]:
    """The n newest saves, newest first (last.pt first if newer than every update-*.pt)."""
    numbered = _numbered(run.checkpoints, "update")
    kept = [p for _, p in numbered]
    last = _load(run.last, metric).update if run.last.is_file() else None
    if last is not None and (not numbered or last > numbered[0][0]):
        kept.insert(0, run.last)
    if n > len(kept):
        raise _too_few("last", n, kept, run, "train.keep_last")
    return [_load(p, metric) for p in kept[:n]]


def best_checkpoints(run: RunDir, n: int, metric: str) -> list[Member]:
    """The n best validations, best first (earliest on ties, as training ranks them)."""
    paths = [p for _, p in _numbered(run.checkpoints, "best")]
    paths = paths or ([run.best] if run.best.is_file() else [])
    members = [_load(p, metric) for p in paths]
    for m in members:
        if m.score is None:
            raise RunDirError(f"{m.path}: records no validation {metric} at its update; use last=N")
    if n > len(members):
        raise _too_few("best", n, paths, run, "train.keep_best")
    sign = -1 if metric == "bleu" else 1  # higher BLEU, lower perplexity is better
    return sorted(members, key=lambda m: (sign * m.score, m.update))[:n]


def listed_checkpoints(run: RunDir, paths: Sequence[str | Path], metric: str) -> list[Member]:
    """The named checkpoint files, each once."""
    members: list[Member] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise RunDirError(
                f"checkpoints=: {path}: no such file; list checkpoint files, e.g. "
                f"{run.checkpoints / 'update-0001000.pt'}"
            )
        member = _load(path, metric)  # refuses an unsafe or broken file, naming it
        twin = next((m for m in members if os.path.samefile(m.path, path)), None)
        if twin is not None:
            raise ConfigError(
                f"checkpoints=: {path} is {twin.path} again; give each checkpoint once"
            )
        members.append(member)
    return members


def _spm(member: Member) -> dict[str, str]:
    return (member.state.get("data") or {}).get("spm_sha256") or {}


def check_one_model(members: list[Member], newest: Member) -> None:
    """Refuse checkpoints that are not of newest's model, naming the file and parameter."""
    ours, spm = newest.state["model"], _spm(newest)
    for m in members:
        theirs, other = m.state["model"], _spm(m)
        if odd := sorted(ours.keys() ^ theirs.keys()):
            has, lacks = (newest, m) if odd[0] in ours else (m, newest)
            raise RunDirError(
                f"{lacks.path}: has no parameter {odd[0]}, but {has.path} has; {ONE_MODEL}"
            )
        for name, a in theirs.items():
            b = ours[name]
            if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
                continue
            for what, x, y in (
                ("shape", tuple(a.shape), tuple(b.shape)),
                ("dtype", a.dtype, b.dtype),
            ):
                if x != y:
                    raise RunDirError(
                        f"{m.path}: parameter {name} has {what} {x} but {newest.path} has {y}; "
                        + ONE_MODEL
                    )
        for file in sorted(spm.keys() & other.keys()):
            if spm[file] != other[file]:
                raise RunDirError(
                    f"{m.path}: trained with another {file} than {newest.path} (sha256 "
                    f"{other[file][:12]}… and {spm[file][:12]}…); {ONE_MODEL} and vocabulary"
                )


def average_states(states: list[dict[str, Any]], newest: dict[str, Any]) -> dict[str, Any]:
    """The mean of each floating-point tensor of states (in float64, cast back to its dtype);
    newest's value for anything else."""
    out: dict[str, Any] = {}
    for name, value in newest.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            total = torch.zeros(value.shape, dtype=torch.float64)
            for state in states:
                total += state[name].to(torch.float64)
            out[name] = (total / len(states)).to(value.dtype)
        else:
            out[name] = value.clone() if isinstance(value, torch.Tensor) else value
    return out


def check_output(output: Path, members: list[Member]) -> None:
    """Refuse an output that is no .pt file, a training checkpoint's name, or an input."""
    if output.suffix != ".pt" or output.is_dir():
        raise ConfigError(f"output={output}: give a file name ending in .pt")
    if output.name in (LAST, BEST) or NUMBERED.fullmatch(output.name):
        raise ConfigError(
            f"output={output}: {output.name} is a name nmt-train writes (resume reads last.pt, "
            "pruning deletes update-/best-NNNNNNN.pt); choose another, e.g. average.pt"
        )
    for m in members if output.exists() else []:
        if os.path.samefile(output, m.path):
            raise ConfigError(
                f"output={output} is {m.path}, a checkpoint being averaged; choose another file"
            )


def average_run(
    run: str | Path,
    last: int = 0,
    best: int = 0,
    checkpoints: Sequence[str | Path] = (),
    output: str | Path = "",
) -> Averaged:
    """Average a run's last `last`, best `best`, or the listed checkpoints into `output`
    (default RUN/checkpoints/average-<how>.pt), written atomically; → what was written."""
    run_dir = RunDir.open(run)
    chosen = [(k, v) for k, v in (("last", last), ("best", best), ("list", len(checkpoints))) if v]
    if len(chosen) != 1 or min(last, best) < 0:
        raise ConfigError(
            "give one of last=N (the N newest saves), best=N (the N best validations) or "
            "checkpoints=[A.pt,B.pt]; N is 1 or more"
        )
    (kind, n), metric = chosen[0], run_dir.config.train.early_stop_metric
    if kind == "last":
        members = last_checkpoints(run_dir, n, metric)
    elif kind == "best":
        members = best_checkpoints(run_dir, n, metric)
    else:
        members = listed_checkpoints(run_dir, checkpoints, metric)
    newest = max(members, key=lambda m: -1 if m.update is None else m.update)
    check_one_model(members, newest)
    run_dir.check_spm(_spm(newest), newest.path)
    how = {"last": f"last {n}", "best": f"best {n} by valid {metric}", "list": "as listed"}[kind]
    out = Path(output) if output else run_dir.checkpoints / f"average-{kind}{n}.pt"
    check_output(out, members)
    state = {
        "format": newest.state.get("format", 2),
        "model": average_states([m.state["model"] for m in members], newest.state["model"]),
        "data": newest.state.get("data", {}),
        "average": {
            "how": how,
            "metric": metric,
            "files": [str(m.path) for m in members],
            "updates": [m.update for m in members],
            "scores": [m.score for m in members],
        },
    }
    with write_errors(out, payload_bytes(state), "run nmt-average again"):
        save_checkpoint(state, out)
    return Averaged(out, how, metric, members)
