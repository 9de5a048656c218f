"""The run manifest every report carries: what was evaluated, with what code, on what data.

Enough to re-run the evaluation and to tell whether two reports compared the same things:
the configs, the git commit of the code, package versions and sha256 of every input file.
"""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from nmt.evaluate.records import GitState, Manifest
from nmt.rundir import file_hashes

PACKAGES = ("nmt", "torch", "sacrebleu", "sentencepiece", "numpy", "matplotlib")
_SOURCE = Path(__file__).resolve().parents[2]  # the checkout holding nmt/, if there is one


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution ("not installed" when absent), and Python's."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(_SOURCE), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> GitState:
    """The commit of the nmt code being run and whether tracked files differ from it.

    "unknown" (and dirty None) when nmt is not running from a git checkout, e.g. a wheel.
    """
    commit = _git("rev-parse", "HEAD") if (_SOURCE / "nmt").is_dir() else None
    if not commit:
        return GitState("unknown", None)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return GitState(commit, None if status is None else bool(status))


def build_manifest(
    config: dict,
    inputs: list[str | Path],
    signatures: dict[str, str],
    run: dict | None = None,
) -> Manifest:
    """The manifest: evaluation config, code state, versions, input hashes and signatures.

    run, when a run directory was given, holds its resolved training config, the hashes of
    its SentencePiece models and checkpoint, and the decode settings.
    """
    return Manifest(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config,
        git=git_state(),
        versions=package_versions(),
        data=file_hashes(inputs),
        signatures=signatures,
        run=run,
    )
