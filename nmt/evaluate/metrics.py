"""BLEU, chrF and TER through sacrebleu: corpus and sentence scores, bootstrap confidence
intervals and paired significance tests, each with the signature that makes it comparable.

Every number here comes from sacrebleu's own classes (`sacrebleu.metrics`,
`sacrebleu.significance`), called as its command line calls them for `--confidence`,
`--paired-bs` and `--paired-ar`; nothing is re-implemented.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric, Score
from sacrebleu.significance import PairedTest

from nmt.data.corpus import read_lines
from nmt.errors import ConfigError, DataError
from nmt.evaluate.records import (
    ConfidenceInterval,
    CorpusScore,
    LengthStats,
    PairedCell,
    PairedResult,
    PairedRow,
)

METRICS = ("bleu", "chrf", "ter")
TESTS = {"bs": "paired bootstrap resampling", "ar": "paired approximate randomisation"}
ALPHA = 0.05  # a difference is reported as significant when p < ALPHA
LOWER_IS_BETTER = {"ter"}


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


@dataclass(frozen=True)
class MetricSettings:
    """How text is compared: tokeniser, case, chrF word n-grams; printed in every signature."""

    metrics: tuple[str, ...] = METRICS
    tokenize: str = "13a"  # BLEU only: 13a | intl | zh | ja-mecab | char | none …
    lowercase: bool = False
    chrf_word_order: int = 0  # 0 = chrF, 2 = chrF++

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ConfigError(
                f"metrics={list(self.metrics)} not supported; choose one or more of "
                f"{', '.join(METRICS)}"
            )
        if self.tokenize not in BLEU.TOKENIZERS:
            raise ConfigError(
                f"tokenize={self.tokenize!r} is not a sacrebleu tokeniser; choose one of "
                f"{', '.join(BLEU.TOKENIZERS)}"
            )
        if self.chrf_word_order < 0:
            raise ConfigError(f"chrf_word_order={self.chrf_word_order} must be 0 or more")

    def make(self, name: str, sentence: bool = False) -> Metric:
        """A fresh sacrebleu metric object; sentence BLEU uses effective order, as sacrebleu's
        --sentence-level does, so one missing 4-gram does not zero a sentence."""
        try:
            if name == "bleu":
                return BLEU(
                    tokenize=self.tokenize, lowercase=self.lowercase, effective_order=sentence
                )
            if name == "chrf":
                return CHRF(word_order=self.chrf_word_order, lowercase=self.lowercase)
            return TER(case_sensitive=not self.lowercase)
        except (KeyError, RuntimeError, ImportError, OSError) as err:
            # e.g. ja-mecab without `pip install sacrebleu[ja]`; sacrebleu's text spans lines
            detail = re.sub(r"\s+", " ", str(err)).strip()
            raise ConfigError(f"tokenize={self.tokenize!r} cannot be used here: {detail}") from err


@contextlib.contextmanager
def sacrebleu_seed(seed: int) -> Iterator[None]:
    """Fix sacrebleu's resampling seed, which it reads from $SACREBLEU_SEED (its CLI's way)."""
    if seed <= 0:
        # sacrebleu's PairedTest treats a seed of 0 as "no seed": results would change per run
        raise ConfigError(f"seed={seed} must be greater than 0")
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old


def _length(score: Score) -> LengthStats:
    """A BLEU score's lengths (sacrebleu's sys_len, ref_len, ratio, bp)."""
    return LengthStats(
        hyp_len=score.sys_len,
        ref_len=score.ref_len,
        ratio=round(score.ratio, 4),
        bp=round(score.bp, 4),
    )


def _entry(score: Score, metric: Metric) -> CorpusScore:
    """A score as a record: value, sacrebleu's text line, signature, and the CI when resampled."""
    ci = length = None
    if metric.n_bootstrap:
        # sacrebleu's CI: the bootstrap mean ± half the width of the 2.5–97.5 percentile range
        # (Score.estimate_ci); its public face is the text "(μ = m ± h)", the fields are these.
        mean, half = float(score._mean), float(score._ci)
        ci = ConfidenceInterval(
            mean=round(mean, 4),
            half_width=round(half, 4),
            low=round(mean - half, 4),
            high=round(mean + half, 4),
            n_bootstrap=metric.n_bootstrap,
            level=0.95,
        )
    if isinstance(metric, BLEU):
        length = _length(score)
    return CorpusScore(
        name=score.name,  # sacrebleu's: BLEU, chrF2, chrF2++, TER
        score=round(score.score, 4),
        text=str(score),
        signature=str(metric.get_signature()),
        ci=ci,
        length=length,
    )


def corpus_scores(
    hyps: list[str],
    refs: list[str],
    metrics: list[str] | MetricSettings,
    tokenize: str = "13a",
    lowercase: bool = False,
    n_bootstrap: int = 1,
    seed: int = 12345,
) -> dict[str, CorpusScore]:
    """Each metric's corpus score, text line and signature; with n_bootstrap > 1 also its 95%
    bootstrap confidence interval (sacrebleu's --confidence)."""
    settings = (
        metrics
        if isinstance(metrics, MetricSettings)
        else MetricSettings(tuple(metrics), tokenize, lowercase)
    )
    if "ter" in settings.metrics:
        _check_ter_lengths(hyps, refs)
    out = {}
    with sacrebleu_seed(seed):
        for name in settings.metrics:
            metric = settings.make(name)
            score = metric.corpus_score(hyps, [refs], n_bootstrap=n_bootstrap)
            out[name] = _entry(score, metric)
    return out


TER_MAX_WORDS = 1000  # TER's edit distance is quadratic: a 1,000-word pair takes ~1 min


def _check_ter_lengths(hyps: list[str], refs: list[str]) -> None:
    """Refuse TER on sentences so long that sacrebleu's TER would run for hours or run out of
    memory (it is quadratic in the sentence length); BLEU and chrF stay usable."""
    for i, (hyp, ref) in enumerate(zip(hyps, refs, strict=True), start=1):
        words = max(len(hyp.split()), len(ref.split()))
        if words > TER_MAX_WORDS:
            raise ConfigError(
                f"line {i:,} has {words:,} words: TER is quadratic in sentence length and "
                f"refuses sentences over {TER_MAX_WORDS:,} words; score without it: "
                "metrics=[bleu,chrf]"
            )


def length_stats(hyps: list[str], refs: list[str], settings: MetricSettings) -> LengthStats:
    """Hypothesis and reference length in BLEU's tokens, their ratio and brevity penalty."""
    metric = BLEU(tokenize=settings.tokenize, lowercase=settings.lowercase)
    return _length(metric.corpus_score(hyps, [refs]))


def sentence_scores(
    hyps: list[str], refs: list[str], settings: MetricSettings
) -> dict[str, list[float]]:
    """Each metric's score of every sentence on its own (sacrebleu's --sentence-level)."""
    out = {}
    for name in settings.metrics:
        metric = settings.make(name, sentence=True)
        out[name] = [
            round(metric.sentence_score(h, [r]).score, 4) for h, r in zip(hyps, refs, strict=True)
        ]
    return out


def paired_test(
    systems: list[tuple[str, list[str]]],
    refs: list[str],
    settings: MetricSettings,
    test: str,
    n_samples: int,
    seed: int,
) -> PairedResult:
    """Compare every system with the first (the baseline) by sacrebleu's PairedTest.

    test is "bs" (paired bootstrap resampling, Koehn 2004) or "ar" (paired approximate
    randomisation, Riezler and Maxwell 2005). A system whose output equals the baseline's
    line for line gets p = 1: sacrebleu would count no resample with a difference above
    the observed zero and report p = 1/(n+1), calling a system better than itself.
    """
    if test not in TESTS:
        raise ConfigError(f"significance test {test!r} is not one of: {', '.join(TESTS)}")
    if len(systems) < 2:
        raise ConfigError("a paired significance test needs two or more systems")
    with sacrebleu_seed(seed):
        objects = {name: settings.make(name) for name in settings.metrics}
        ps = PairedTest(systems, objects, [refs], test_type=test, n_samples=n_samples)
        signatures, table = ps()
    # PairedTest renames its metrics (BLEU, chrF2, TER) in the order it was given them
    sacre_names = [k for k in table if k != "System"]
    baseline_hyps = systems[0][1]
    comparisons = []
    for i, (sys_name, hyps) in enumerate(systems):
        identical = i > 0 and hyps == baseline_hyps
        cells = {}
        for ours, theirs in zip(settings.metrics, sacre_names, strict=True):
            result = table[theirs][i]
            p = None if i == 0 else (1.0 if identical else float(result.p_value))
            baseline_score = table[theirs][0].score
            delta = result.score - baseline_score
            cells[ours] = PairedCell(
                score=round(result.score, 4),
                delta=round(delta, 4),
                p_value=None if p is None else round(p, 6),
                significant=None if p is None else p < ALPHA,
                better=None if i == 0 or delta == 0 else (delta < 0) == (ours in LOWER_IS_BETTER),
                mean=None if result.mean is None else round(float(result.mean), 4),
                ci=None if result.ci is None else round(float(result.ci), 4),
            )
        comparisons.append(PairedRow(sys_name, i == 0, identical, cells))
    return PairedResult(
        test=test,
        name=TESTS[test],
        n=ps.n_samples,
        seed=seed,
        alpha=ALPHA,
        signatures={
            ours: str(signatures[theirs])
            for ours, theirs in zip(settings.metrics, sacre_names, strict=True)
        },
        systems=comparisons,
    )
