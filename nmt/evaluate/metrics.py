"""Corpus BLEU, chrF and TER through sacrebleu, with the signatures that make them comparable."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER

from nmt.data.corpus import read_lines
from nmt.errors import ConfigError, DataError

METRICS = ("bleu", "chrf", "ter")


def read_aligned(hyp_path: str, ref_path: str) -> tuple[list[str], list[str]]:
    """System output and reference, checked to be non-empty and of equal length."""
    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if not hyps:
        raise DataError(f"{hyp_path}: the hypothesis file is empty; did the translation fail?")
    if len(hyps) != len(refs):
        raise DataError(
            f"{hyp_path} has {len(hyps):,} lines but {ref_path} has {len(refs):,}; "
            "hypotheses and references must be aligned line by line"
        )
    return hyps, refs


def corpus_scores(
    hyps: list[str],
    refs: list[str],
    metrics: list[str],
    tokenize: str = "13a",
    lowercase: bool = False,
) -> dict[str, dict]:
    """Each requested metric's corpus score, sacrebleu's text line and signature."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"metrics={unknown} not supported; choose from {', '.join(METRICS)}")
    try:
        scorers = {
            "bleu": lambda: BLEU(tokenize=tokenize, lowercase=lowercase),
            "chrf": lambda: CHRF(lowercase=lowercase),
            "ter": lambda: TER(case_sensitive=not lowercase),
        }
        out = {}
        for name in metrics:
            metric = scorers[name]()
            score = metric.corpus_score(hyps, [refs])
            out[name] = {
                "score": round(score.score, 4),
                "text": str(score),
                "signature": str(metric.get_signature()),
            }
        return out
    except (KeyError, RuntimeError, ImportError) as err:
        raise ConfigError(f"tokenize={tokenize!r}: {err}") from err
