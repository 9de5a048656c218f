"""`nmt-analyze run=DIR data.test_src=FILE data.test_ref=FILE`: why each translation missed
its reference (search error, model error, or the length penalty), with a beam × alpha sweep,
exact search and an n-best oracle, written as JSONL, JSON, Markdown and HTML."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.cli import hydra_errors, naming, report_errors
from nmt.config import register_configs, validate
from nmt.errors import ConfigError
from nmt.resources import conf_dir

register_configs()


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="analyze")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.analysis.analyze import analyze, read_pair
    from nmt.analysis.report import analysis_text, write
    from nmt.translator import Translator

    validate(cfg)
    read_pair(cfg.data.test_src, cfg.data.test_ref)  # refuse bad input before loading a model
    if cfg.out and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError(f"out={cfg.out} is a file; give a directory for the analysis")
    translator = Translator.load(cfg.run, cfg.checkpoint, cfg.device, cfg.threads, cfg.kernels)
    run_info = translator.run.manifest(translator.checkpoint)
    result = analyze(translator.model, translator.vocabs, cfg, translator.device, run_info)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(cfg.out) if cfg.out else translator.run.analysis / stamp
    with naming(out):
        written = write(result, out)
    print(analysis_text(result.summary))
    print(f"report: {written['html']} (with report.md, summary.json, sentences.jsonl)")


if __name__ == "__main__":
    main()
