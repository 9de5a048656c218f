"""`nmt-evaluate hyp=FILE ref=FILE`: BLEU, chrF and TER with sacrebleu signatures."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.cli import report_errors
from nmt.config import register_configs
from nmt.resources import conf_dir

register_configs()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="evaluate")
@report_errors
def main(cfg: DictConfig) -> None:
    from nmt.evaluate.metrics import corpus_scores, read_aligned

    hyps, refs = read_aligned(cfg.hyp, cfg.ref)
    scores = corpus_scores(hyps, refs, list(cfg.metrics), cfg.tokenize, cfg.lowercase)
    for result in scores.values():
        print(f"{result['text']}\n  signature: {result['signature']}")
    if cfg.json:
        report = {"hyp": cfg.hyp, "ref": cfg.ref, "sentences": len(hyps), "scores": scores}
        Path(cfg.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
