"""`nmt-average run=DIR last=N | best=N | checkpoints=[A,B]`: average a run's checkpoints into
a new one that `nmt-translate run=DIR checkpoint=PATH` decodes with (nmt/train/average.py).

    nmt-average run=outputs/RUN last=5      writes outputs/RUN/checkpoints/average-last5.pt
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nmt.cli import hydra_errors, report_errors
from nmt.config import register_configs
from nmt.resources import conf_dir

register_configs()


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="average")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.train.average import average_run  # torch is imported once the config is read

    done = average_run(cfg.run, cfg.last, cfg.best, list(cfg.checkpoints), cfg.output)
    print("\n".join(done.lines()))


if __name__ == "__main__":
    main()
