"""`nmt-translate run=DIR`: translate a file or standard input, one output line per input line.

With decode.nbest > 1 it prints n-best lists instead: `sent_id ||| hypothesis ||| score |||
logprob`, one line per hypothesis, best first. Under a multirun (-m) sweep, `output` must be
a file named after the swept keys, e.g. output='hyp.b${decode.beam_size}.a${decode.alpha}.txt'.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nmt.cli import hydra_errors, naming, report_errors
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


def check_paths(cfg: DictConfig) -> None:
    """Refuse an output that cannot be a file, or is the input file (writing would destroy it)."""
    out, src = Path(cfg.output), Path(cfg.input)
    if cfg.output != "-" and out.is_dir():
        raise ConfigError(f"output={cfg.output} is a directory; give a file name")
    files = cfg.output != "-" and cfg.input != "-" and out.exists() and src.exists()
    if files and os.path.samefile(out, src):
        raise ConfigError(
            f"output={cfg.output} is the input file; writing the translations there would "
            "overwrite the text being translated: choose another output file"
        )


def write_output(path: str, text: str) -> None:
    """Write the translations to path; a failure (disk full, …) names the file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with naming(path), open(path, "w", encoding="utf-8") as f:
        f.write(text)


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="translate")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.data.corpus import read_lines

    validate(cfg)
    check_output(cfg)
    check_paths(cfg)
    # a bad input file is reported at once; standard input is read once the model is loaded
    lines = read_lines(cfg.input) if cfg.input != "-" else None
    # torch is imported once the config is valid
    from nmt.translator import Translator, format_nbest

    translator = Translator.load(cfg.run, cfg.checkpoint, cfg.device, cfg.threads, cfg.kernels)
    if lines is None:
        lines = read_lines(cfg.input)
    progress = cfg.output != "-" and sys.stderr.isatty()  # a bar is for people, not logs
    if cfg.decode.nbest > 1:
        text = format_nbest(translator.translate(lines, decode=cfg.decode, progress=progress))
    else:  # plain strings: the fast path
        hyps = translator.translate_text(lines, decode=cfg.decode, progress=progress)
        text = "".join(h + "\n" for h in hyps)
    if cfg.output == "-":
        with naming("standard output"):
            sys.stdout.write(text)
            sys.stdout.flush()
    else:
        write_output(cfg.output, text)


if __name__ == "__main__":
    main()
