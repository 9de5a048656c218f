"""`nmt-prepare`: prepare a corpus once into a data directory that nmt-train maps
(Hydra config conf/prepare.yaml; the `data` group exactly as nmt-train reads it).

    nmt-prepare data=multi30k out=prepared/m30k-de-en workers=2
    nmt-train data=prepared data.prepared=prepared/m30k-de-en

A second run with the same inputs and settings reuses the directory; a directory holding
another corpus is refused. nmt/data/prepare.py does the work.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nmt.cli import hydra_errors, register_resolvers, report_errors
from nmt.config import register_configs
from nmt.config_checks import validate
from nmt.errors import ConfigError
from nmt.resources import available_cpus, conf_dir

register_configs()
register_resolvers()


def workers(value: object) -> int:
    """The key `workers`: auto = the CPUs this process may use, or a count ≥ 1."""
    text = str(value).strip().lower()
    if text == "auto":
        return available_cpus()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"workers={value!r} must be auto (the CPUs this process may use) or a number of "
            "processes, 1 or more"
        )
    return int(text)


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="prepare")
@report_errors
def main(cfg: DictConfig) -> None:
    validate(cfg)
    if cfg.data.prepared:
        raise ConfigError(
            f"data.prepared={cfg.data.prepared} names a prepared corpus; nmt-prepare reads text "
            "files (data.train, data.valid) and writes out=DIR"
        )
    count = workers(cfg.workers)
    from nmt.data.prepare import prepare  # numpy and SentencePiece once the config is valid

    corpus = prepare(cfg.data, cfg.out, count, progress=cfg.progress)
    print(f"prepared corpus: {corpus.describe()}")


if __name__ == "__main__":
    main()
