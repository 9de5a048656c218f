"""`nmt-translate run=DIR`: translate a file or standard input, one output line per input line.

With decode.nbest > 1 it prints n-best lists instead: `sent_id ||| hypothesis ||| score |||
logprob`, one line per hypothesis, best first. Under a multirun (-m) sweep, `output` must be
a file named after the swept keys, e.g. output='hyp.b${decode.beam_size}.a${decode.alpha}.txt'.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nmt.cli import report_errors
from nmt.config import register_configs, validate
from nmt.errors import ConfigError
from nmt.resources import conf_dir

register_configs()


def check_output(cfg: DictConfig) -> None:
    """In a multirun sweep, refuse an output every job would share (stdout or one file)."""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    raw = OmegaConf.to_container(cfg, resolve=False)["output"]
    if raw == "-" or "${" not in str(raw):
        raise ConfigError(
            f"output={raw} would be written by every job of this multirun sweep; name it "
            "after the swept keys, e.g. output='hyp.b${decode.beam_size}.a${decode.alpha}.txt'"
        )


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="translate")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.data.corpus import read_lines
    from nmt.search.decode import check_decode
    from nmt.translator import Translator, format_nbest

    validate(cfg)
    check_decode(cfg.decode)
    check_output(cfg)
    translator = Translator.from_run(cfg.run, cfg.checkpoint, cfg.device, cfg.threads)
    lines = read_lines(cfg.input)
    progress = cfg.output != "-"
    if cfg.decode.nbest > 1:
        text = format_nbest(translator.translate_nbest(lines, cfg.decode, progress))
    else:
        text = "".join(h + "\n" for h in translator.translate(lines, cfg.decode, progress))
    if cfg.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        with open(cfg.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
