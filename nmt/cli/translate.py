"""`nmt-translate run=DIR`: translate a file or standard input, one output line per input line.

With decode.nbest > 1 it prints n-best lists instead: `sent_id ||| hypothesis ||| score |||
logprob`, one line per hypothesis, best first. Under a multirun (-m) sweep, `output` must be
a file named after the swept keys, e.g. output='hyp.b${decode.beam_size}.a${decode.alpha}.txt'.

The input streams (nmt/data/stream.py): decode.buffer_size lines are read, translated and
written at a time, so memory is bounded by the buffer and a line typed into a pipe gets its
translation at once. output=FILE is written as FILE.part and renamed when complete; after a
kill, resume=true continues from the last complete buffer and ends with the same bytes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt.cli import check_runs, hydra_errors, naming, report_errors
from nmt.config import register_configs
from nmt.config_checks import validate
from nmt.errors import ConfigError
from nmt.resources import conf_dir

if TYPE_CHECKING:
    from nmt.config import DecodeConfig
    from nmt.translator import Translator

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


def translation(
    translator: Translator, decode: DecodeConfig, bar: tqdm
) -> Callable[[list[str], int], str]:
    """The text of one buffer of lines (`first`: its first line's 0-based number in the
    input): a translation a line, or n-best lists numbered over the whole input."""
    from nmt.translator import format_nbest

    def work(lines: list[str], first: int) -> str:
        if decode.nbest > 1:
            text = format_nbest(translator.translate(lines, decode=decode), first)
        else:  # plain strings: the fast path
            text = "".join(h + "\n" for h in translator.translate_text(lines, decode=decode))
        bar.update(first + len(lines) - bar.n)
        return text

    return work


def resume_settings(cfg: DictConfig, translator: Translator, decode: DecodeConfig) -> dict:
    """What a resumed translation must find as the interrupted one had it."""
    manifest = translator.manifest()
    return {
        "decode": dataclasses.asdict(decode),
        "model": [*manifest["spm_models"].values(), *manifest["checkpoint"].values()],
        "device": str(translator.device),
        "kernels": cfg.kernels,
        "threads": cfg.threads,
    }


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="translate")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.data.stream import LineReader, Source, count_lines, open_output, stream

    validate(cfg)
    check_output(cfg)
    check_paths(cfg)
    check_runs(cfg.run)
    # a bad input file is refused at once; standard input (or a pipe) is read as it comes,
    # once the model is loaded
    total = count_lines(cfg.input)
    # torch is imported once the config is valid
    from nmt.translator import Translator

    translator = Translator.load(cfg.run, cfg.checkpoint, cfg.device, cfg.threads, cfg.kernels)
    decode = translator.decode_config(cfg.decode)
    out = open_output(cfg.output, cfg.resume, lambda: resume_settings(cfg, translator, decode))
    progress = cfg.output != "-" and sys.stderr.isatty()  # a bar is for people, not logs
    bar = tqdm(total=total, unit="sent", disable=not progress)
    with LineReader(cfg.input) as reader, bar, naming(out.name):
        source = Source(reader, [cfg.input], reader.ready)
        stream(source, out, decode.buffer_size, translation(translator, decode, bar))


if __name__ == "__main__":
    main()
