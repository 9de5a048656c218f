"""Where the Hydra configs and the demo corpus are, in a source checkout and in a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(installed: str, checkout: str) -> Path:
    """The folder that a wheel installs as nmt/<installed>, or <checkout> in a source tree.

    pyproject.toml maps the repository's top-level conf/ and data/demo/ into the package when
    a wheel is built; an editable install or a plain checkout reads them where they are.
    """
    inside = _PACKAGE / installed
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / checkout


def conf_dir() -> Path:
    """The folder holding train.yaml, translate.yaml, evaluate.yaml and the config groups."""
    return resource_dir("conf", "conf")


def demo_dir() -> Path:
    """The folder holding the committed demo corpus (train/dev/test .tsv.gz)."""
    return resource_dir("demo", "data/demo")
