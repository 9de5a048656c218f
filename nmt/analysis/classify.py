"""The four outcome classes of a sentence, decided from the beam's own numbers.

The checks run in this order, so the classes are disjoint and cover every sentence:

1. match      ŷ equals y* after detokenisation;
2. search     objective(y*) > objective(ŷ) + tol: the objective the beam ranks by prefers
              the reference, so the beam failed to find it (widen the beam);
3. objective  log P(y*) > log P(ŷ) + tol but objective(y*) < objective(ŷ) - tol: the model
              prefers the reference, the length penalty / word reward made ŷ win (tune α);
4. model      everything else: the model itself prefers its wrong output (fix model/data).

A difference within tol (1e-6) is a tie; a tie decides for "model" and is counted as such.
"""

from __future__ import annotations

MATCH, SEARCH, OBJECTIVE, MODEL = "match", "search", "objective", "model"
CLASSES = (MATCH, SEARCH, OBJECTIVE, MODEL)
LABELS = {
    MATCH: "match",
    SEARCH: "search error",
    OBJECTIVE: "objective-induced",
    MODEL: "model error",
}
ACTIONS = {
    MATCH: "nothing: the output is the reference",
    SEARCH: "widen the beam: the model scores the reference higher than what the beam found",
    OBJECTIVE: "tune alpha / word reward: the length penalty, not the search, lost the reference",
    MODEL: "fix model, data or training: the model prefers its wrong output",
}


def classify(
    match: bool,
    ref_score: float,
    hyp_score: float,
    ref_logprob: float,
    hyp_logprob: float,
    tol: float = 1e-6,
) -> tuple[str, bool]:
    """(class, tie) of one sentence; tie is True when a difference within tol decided it."""
    if match:
        return MATCH, False
    d_obj, d_raw = ref_score - hyp_score, ref_logprob - hyp_logprob
    if d_obj > tol:
        return SEARCH, False
    if d_raw > tol and d_obj < -tol:
        return OBJECTIVE, False
    return MODEL, abs(d_obj) <= tol or abs(d_raw) <= tol


def shares(classes: list[str]) -> dict[str, float]:
    """Share of sentences in each class (0 for an empty list)."""
    n = max(len(classes), 1)
    return {c: classes.count(c) / n for c in CLASSES}
