"""Test helpers: compose configs the way the CLI does, and write tiny corpora."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from nmt.cli import register_resolvers
from nmt.config import register_configs
from nmt.resources import conf_dir


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The config `nmt-<name>` would run with these command-line overrides."""
    register_configs()
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def write_parallel(
    folder: Path, split: str, pairs: list[tuple[str, str]], src: str = "xx", tgt: str = "yy"
) -> str:
    """Write pairs as <split>.<src> / <split>.<tgt> and return the prefix <split>."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, side in ((src, 0), (tgt, 1)):
        (folder / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in pairs))
    return str(folder / split)


# A toy language pair: target words are source words reversed, in reversed order.
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def toy_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n deterministic pairs of the toy language (2–4 words a sentence)."""
    import random

    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = rng.sample(WORDS, rng.randint(2, 4))
        pairs.append((" ".join(words), " ".join(w[::-1] for w in reversed(words))))
    return pairs


def files_overrides(data_dir: Path, train: str, valid: str) -> list[str]:
    """Overrides for a small model on data=files with the toy corpus."""
    return [
        "data=files",
        "data.src=xx",
        "data.tgt=yy",
        f"data.train={train}",
        f"data.valid={valid}",
        "data.vocab_size=300",
        "data.batch_tokens=400",
        "data.max_ratio=10",
        "model.emb_size=32",
        "model.hidden_size=32",
        "model.dec_hidden_size=64",
        "attention.size=32",
        "model.dropout=0.0",
        "optim.scheduler=none",
        "optim.lr=0.01",
        "progress=false",
        "device=cpu",
    ]


def cli_command(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"nmt.cli.{command}", *args]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without the switches that turn one-line errors into tracebacks."""
    env = {k: v for k, v in os.environ.items() if k not in ("NMT_VERBOSE", "HYDRA_FULL_ERROR")}
    return {**env, **extra}


def run_cli(
    command: str, *args: str, stdin: str | bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run `nmt-<command>` as a user would; stdout/stderr as text (undecodable bytes escaped)."""
    proc = subprocess.run(
        cli_command(command, *args),
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=300,
        env=cli_env(),
        cwd=cwd,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "backslashreplace"),
        proc.stderr.decode("utf-8", "backslashreplace"),
    )


def train_toy_run(folder: Path, *overrides: str, pairs: int = 12) -> Path:
    """Train a model on `toy_pairs(pairs)` through nmt-train into folder/run; return the run.

    The corpus is written to folder/data (train = valid); overrides set the length of
    training and anything else the caller needs.
    """
    train = write_parallel(folder / "data", "train", toy_pairs(pairs))
    run = folder / "run"
    proc = run_cli(
        "train",
        *files_overrides(folder / "data", train, train),
        *overrides,
        f"hydra.run.dir={run}",
    )
    assert proc.returncode == 0, proc.stderr
    return run
