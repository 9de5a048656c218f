"""`nmt-analyze run=DIR data.test_src=FILE data.test_ref=FILE`: why each translation missed
its reference (search error, model error, or the length penalty), with a beam × alpha sweep,
exact search and an n-best oracle, written as JSONL, JSON, Markdown and HTML.

sentences.jsonl is written as the sentences are analysed, decode.buffer_size at a time; after
a kill, the same command with out=DIR resume=true continues it from its last complete buffer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.cli import check_runs, hydra_errors, naming, report_errors
from nmt.config import register_configs
from nmt.config_checks import validate
from nmt.errors import ConfigError
from nmt.resources import conf_dir

register_configs()


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="analyze")
@report_errors
def main(cfg: DictConfig) -> None:
    validate(cfg)
    check_runs(cfg.run)  # before torch is imported
    from nmt.analysis.analyze import analyze, read_pair
    from nmt.analysis.report import analysis_text, write
    from nmt.data.stream import done
    from nmt.translator import Translator

    read_pair(cfg.data.test_src, cfg.data.test_ref)  # refuse bad input before loading a model
    if cfg.out and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError(f"out={cfg.out} is a file; give a directory for the analysis")
    if cfg.resume and not cfg.out:
        raise ConfigError("resume=true needs out=DIR, the directory of the interrupted analysis")
    translator = Translator.load(cfg.run, cfg.checkpoint, cfg.device, cfg.threads, cfg.kernels)
    run_info = translator.manifest()
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(cfg.out) if cfg.out else translator.run.analysis / stamp
    with naming(out):
        # sentences.jsonl is streamed as the records are made (resumable), the rest after
        model, vocabs, device = (
            translator.decoding_model(cfg.decode, scored=True),
            translator.vocabs,
            translator.device,
        )
        result = analyze(model, vocabs, cfg, device, run_info, out / "sentences.jsonl")
        written = write(result, out)
    done(written["jsonl"])  # its progress is kept until the report is complete
    print(analysis_text(result.summary))
    print(f"report: {written['html']} (with report.md, summary.json, sentences.jsonl)")


if __name__ == "__main__":
    main()
