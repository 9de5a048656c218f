"""The summary's aggregates: class counts with BLEU and actions, where references fell off
the beam, exact-search rates, and the worst examples of each class."""

from __future__ import annotations

from omegaconf import DictConfig

from nmt.analysis.classify import ACTIONS, CLASSES, LABELS, SEARCH
from nmt.analysis.records import (
    ClassSummary,
    ExactRecord,
    ExactSummary,
    Fallout,
    FalloutSummary,
    SentenceRecord,
)
from nmt.evaluate.metrics import MetricSettings, corpus_scores


def exact_summary(results: list[ExactRecord], a: DictConfig) -> ExactSummary:
    """Rates over the sentences exact search ran on, with the budgets of a (cfg.analysis);
    mode rates among those it finished."""
    done = [r for r in results if r.finished]
    rate = lambda key: sum(getattr(r, key) for r in done) / len(done) if done else None  # noqa: E731
    return ExactSummary(
        sentences=len(results),
        node_budget=a.exact_nodes,
        time_budget_s=a.exact_seconds,
        finished=len(done),
        finished_rate=len(done) / len(results) if results else None,
        beam_is_mode_rate=rate("beam_is_mode"),
        mode_in_nbest_rate=rate("mode_in_nbest"),
        mode_empty_rate=rate("mode_empty"),
        reference_is_mode_rate=rate("reference_is_mode"),
        mean_nodes=sum(r.nodes for r in results) / len(results) if results else None,
    )


def worst_per_class(records: list[SentenceRecord]) -> dict[str, list[int]]:
    """Line numbers of each class, lowest sentence BLEU first (ties by line)."""
    out = {c: [] for c in CLASSES}
    for rec in sorted(records, key=lambda r: (r.bleu, r.line)):
        out[rec.class_].append(rec.line)
    return out


def class_summary(records: list[SentenceRecord], refs: list[str]) -> dict[str, ClassSummary]:
    """Count, share, corpus BLEU and recommended action of every class."""
    out = {}
    for c in CLASSES:
        idx = [i for i, r in enumerate(records) if r.class_ == c]
        bleu = None
        if idx:
            hyps = [records[i].hyp for i in idx]
            scores = corpus_scores(hyps, [refs[i] for i in idx], MetricSettings(("bleu",)))
            bleu = scores["bleu"].score
        out[c] = ClassSummary(
            label=LABELS[c],
            count=len(idx),
            share=len(idx) / len(records),
            bleu=bleu,
            action=ACTIONS[c],
            ties=sum(records[i].tie for i in idx),
        )
    return out


def _fallout(records: list[SentenceRecord]) -> Fallout:
    reasons: dict[str, int] = {}
    for r in records:
        key = r.fell_off_reason or "stayed"
        reasons[key] = reasons.get(key, 0) + 1
    steps = [r.fell_off_step for r in records if r.fell_off_reason == "pruned"]
    return Fallout(
        sentences=len(records),
        reasons=reasons,
        mean_pruned_step=sum(steps) / len(steps) if steps else None,
        pruned_at_step_1=sum(s == 1 for s in steps),
    )


def fallout_summary(records: list[SentenceRecord]) -> FalloutSummary:
    """Where references fell off the beam: by reason, for all sentences and search errors."""
    search = [r for r in records if r.class_ == SEARCH]
    return FalloutSummary(_fallout(records), _fallout(search))
