"""`nmt-evaluate hyp=FILE ref=FILE`: BLEU, chrF and TER with sacrebleu signatures; with
report_dir=DIR, a JSON / Markdown / HTML report (CIs, significance, curves, attention)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.cli import hydra_errors, naming, report_errors
from nmt.config import register_configs
from nmt.errors import ConfigError
from nmt.resources import conf_dir

register_configs()


def attention(cfg: DictConfig) -> tuple[list, Path | None]:
    """Attention maps of the chosen source lines by the run's model, and its checkpoint."""
    if not cfg.attention_lines:
        return [], None
    from nmt.evaluate.attention import attention_maps
    from nmt.evaluate.report import attention_sources
    from nmt.translator import Translator

    sentences = attention_sources(cfg)  # checks the options and line numbers first
    translator = Translator.load(cfg.run, cfg.checkpoint)
    note = f"greedy, checkpoint {cfg.checkpoint}"
    maps = attention_maps(
        translator.model,
        translator.vocabs,
        sentences,
        list(cfg.attention_lines),
        translator.config.decode,
        translator.device,
        note,
    )
    return maps, translator.checkpoint


def check_outputs(cfg: DictConfig) -> None:
    """Refuse a report_dir or json path that cannot be written, before anything is scored."""
    if cfg.report_dir and Path(cfg.report_dir).exists() and not Path(cfg.report_dir).is_dir():
        raise ConfigError(f"report_dir={cfg.report_dir} is a file; give a directory")
    if cfg.json and Path(cfg.json).is_dir():
        raise ConfigError(f"json={cfg.json} is a directory; give a file name")


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="evaluate")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.evaluate.report import build_report, evaluation_text, write_json, write_report

    check_outputs(cfg)
    report = build_report(cfg, *attention(cfg))
    print(evaluation_text(report.data))
    if cfg.report_dir:
        with naming(cfg.report_dir):
            written = write_report(report, cfg.report_dir)
        print(f"report: {written['html']} (with report.md and report.json)")
    if cfg.json:
        with naming(cfg.json):
            write_json(report.data, cfg.json)


if __name__ == "__main__":
    main()
