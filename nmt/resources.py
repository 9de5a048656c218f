"""Where the Hydra configs and the committed corpora are (in a source checkout and in a wheel),
and how many CPUs this process may use."""

from __future__ import annotations

import math
import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
CGROUP = Path("/sys/fs/cgroup")


def resource_dir(installed: str, checkout: str) -> Path:
    """The folder that a wheel installs as nmt/<installed>, or <checkout> in a source tree.

    pyproject.toml maps the repository's top-level conf/ and data/demo/, data/bible/ into the
    package when a wheel is built; an editable install or a plain checkout reads them where
    they are.
    """
    inside = _PACKAGE / installed
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / checkout


def conf_dir() -> Path:
    """The folder holding train.yaml, translate.yaml, evaluate.yaml and the config groups."""
    return resource_dir("conf", "conf")


def data_dir(name: str) -> Path:
    """The folder holding a corpus committed under data/ (demo, bible): nmt/<name> in a wheel.
    conf/data's YAML files name it as ${nmt_data_dir:NAME}."""
    return resource_dir(name, f"data/{name}")


def demo_dir() -> Path:
    """The folder holding the committed demo corpus (train/dev/test .tsv.gz)."""
    return data_dir("demo")


def available_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota
    (a container's `--cpus`), which os.cpu_count() and torch's default both ignore."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_quota(cgroup)
    return max(1, min(cpus or 1, math.ceil(quota) if quota else cpus or 1))


def _cgroup_quota(root: Path) -> float | None:
    """CPUs' worth of the cgroup quota (v2 cpu.max, or v1 cfs_quota/cfs_period); None: no limit."""
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
