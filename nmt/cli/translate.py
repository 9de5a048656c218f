"""`nmt-translate run=DIR`: translate a file or standard input, one output line per input line."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from nmt.cli import report_errors
from nmt.config import register_configs, validate
from nmt.resources import conf_dir

register_configs()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="translate")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.data.corpus import read_lines
    from nmt.translator import Translator

    validate(cfg)
    translator = Translator.from_run(cfg.run, cfg.checkpoint, cfg.device, cfg.threads)
    lines = read_lines(cfg.input)
    hyps = translator.translate(lines, cfg.decode, progress=cfg.output != "-")
    text = "".join(h + "\n" for h in hyps)
    if cfg.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(cfg.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
