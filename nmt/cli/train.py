"""`nmt-train`: train a model into a fresh run directory (Hydra config conf/train.yaml)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nmt.cli import report_errors
from nmt.config import register_configs, validate
from nmt.resources import conf_dir

register_configs()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
@report_errors
def main(cfg: DictConfig) -> float | None:
    """Train; the run directory is Hydra's output directory. Returns the best score (sweeps)."""
    from nmt.train.trainer import Trainer  # torch is imported only once the config is valid

    validate(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    result = Trainer(cfg, run_dir).fit()
    print(f"run directory: {run_dir}")
    return result["best"]


if __name__ == "__main__":
    main()
