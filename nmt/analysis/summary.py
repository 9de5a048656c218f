"""The summary's aggregates: class counts with BLEU and actions, where references fell off
the beam, exact-search rates, and the worst examples of each class."""

from __future__ import annotations

from omegaconf import DictConfig

from nmt.analysis.classify import ACTIONS, CLASSES, LABELS, SEARCH
from nmt.evaluate.metrics import MetricSettings, corpus_scores


def exact_summary(results: list[dict], cfg: DictConfig) -> dict:
    """Rates over the sentences exact search ran on; mode rates among those it finished."""
    done = [r for r in results if r["finished"]]
    rate = lambda key: sum(r[key] for r in done) / len(done) if done else None  # noqa: E731
    return {
        "sentences": len(results),
        "node_budget": cfg.analysis.exact_nodes,
        "time_budget_s": cfg.analysis.exact_seconds,
        "finished": len(done),
        "finished_rate": len(done) / len(results) if results else None,
        "beam_is_mode_rate": rate("beam_is_mode"),
        "mode_in_nbest_rate": rate("mode_in_nbest"),
        "mode_empty_rate": rate("mode_empty"),
        "reference_is_mode_rate": rate("reference_is_mode"),
        "mean_nodes": sum(r["nodes"] for r in results) / len(results) if results else None,
    }


def worst_per_class(records: list[dict]) -> dict[str, list[int]]:
    """Line numbers of each class, lowest sentence BLEU first (ties by line)."""
    out = {c: [] for c in CLASSES}
    for rec in sorted(records, key=lambda r: (r["bleu"], r["line"])):
        out[rec["class"]].append(rec["line"])
    return out


def class_summary(records: list[dict], refs: list[str]) -> dict:
    """Count, share, corpus BLEU and recommended action of every class."""
    out = {}
    for c in CLASSES:
        idx = [i for i, r in enumerate(records) if r["class"] == c]
        bleu = None
        if idx:
            hyps = [records[i]["hyp"] for i in idx]
            bleu = corpus_scores(hyps, [refs[i] for i in idx], MetricSettings(("bleu",)))
            bleu = bleu["bleu"]["score"]
        out[c] = {
            "label": LABELS[c],
            "count": len(idx),
            "share": len(idx) / len(records),
            "bleu": bleu,
            "action": ACTIONS[c],
            "ties": sum(records[i]["tie"] for i in idx),
        }
    return out


def fallout_summary(records: list[dict]) -> dict:
    """Where references fell off the beam: by reason, for all sentences and search errors."""

    def count(recs: list[dict]) -> dict:
        reasons: dict[str, int] = {}
        for r in recs:
            key = r["fell_off_reason"] or "stayed"
            reasons[key] = reasons.get(key, 0) + 1
        steps = [r["fell_off_step"] for r in recs if r["fell_off_reason"] == "pruned"]
        return {
            "sentences": len(recs),
            "reasons": reasons,
            "mean_pruned_step": sum(steps) / len(steps) if steps else None,
            "pruned_at_step_1": sum(s == 1 for s in steps),
        }

    search = [r for r in records if r["class"] == SEARCH]
    return {"all": count(records), "search_errors": count(search)}
