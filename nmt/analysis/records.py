"""Typed records of an analysis: one `SentenceRecord` a line of sentences.jsonl, and the
`AnalysisSummary` of summary.json with its parts.

Field order is key order in the files (see nmt/evaluate/records.py `Record`);
tests/analysis/test_records.py pins the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nmt.config import DecodeConfig
from nmt.evaluate.records import Manifest, Record


@dataclass
class NbestEntry(Record):
    """One hypothesis of the beam's n-best, with its numbers and sentence BLEU."""

    text: str
    logprob: float
    score: float  # the Scorer's objective
    bleu: float


@dataclass
class ExactRecord(Record):
    """Exact search on one sentence, compared with the beam's n-best and the reference."""

    finished: bool  # the mode is proven
    mode_text: str
    mode_tokens: list[str]
    mode_logprob: float
    mode_empty: bool
    beam_is_mode: bool
    mode_in_nbest: bool
    reference_is_mode: bool
    nodes: int
    seconds: float


@dataclass
class SentenceRecord(Record):
    """One test sentence: both scores, lengths, class, metrics, n-best oracle, fall-off."""

    line: int  # 1-based
    class_: str = field(metadata={"json": "class"})  # match | search | objective | model
    tie: bool
    src: str
    ref: str
    hyp: str
    ref_logprob: float
    hyp_logprob: float
    ref_score: float
    hyp_score: float
    ref_len: int  # T, EOS included
    hyp_len: int
    limit: int  # the beam's length limit
    ref_over_limit: bool
    bleu: float
    chrf: float
    ref_tokens: list[str]
    hyp_tokens: list[str]
    ref_ranks: list[int]  # slot of y*_{1:t} in the live beam per step; K+1 = outside
    fell_off_step: int | None
    fell_off_reason: str | None  # pruned | stopped | length limit
    ref_nbest_rank: int | None
    oracle_bleu: float
    oracle_rank: int
    oracle_hyp: str
    nbest: list[NbestEntry]
    exact: ExactRecord | None = None  # on the first analysis.exact_sentences only


@dataclass
class MetricScore(Record):
    """A corpus score and its sacrebleu signature."""

    score: float
    signature: str


@dataclass
class ClassSummary(Record):
    """Count, share, corpus BLEU and recommended action of one class."""

    label: str
    count: int
    share: float
    bleu: float | None  # None for an empty class
    action: str
    ties: int


@dataclass
class Fallout(Record):
    """Where references fell off the beam, by reason, over a set of sentences."""

    sentences: int
    reasons: dict[str, int]  # pruned | stopped | length limit | stayed
    mean_pruned_step: float | None
    pruned_at_step_1: int


@dataclass
class FalloutSummary(Record):
    """Fall-off over all sentences and over the search errors alone."""

    all: Fallout
    search_errors: Fallout


@dataclass
class OracleSummary(Record):
    """What the best hypothesis of each n-best (by sentence BLEU) would score."""

    bleu: float
    better_in_nbest: float  # share of sentences
    mean_rank: float


@dataclass
class ExactSummary(Record):
    """Rates over the sentences exact search ran on; mode rates among those it finished."""

    sentences: int
    node_budget: int
    time_budget_s: float
    finished: int
    finished_rate: float | None
    beam_is_mode_rate: float | None
    mode_in_nbest_rate: float | None
    mode_empty_rate: float | None
    reference_is_mode_rate: float | None
    mean_nodes: float | None


@dataclass
class SweepRow(Record):
    """One beam width × alpha (× word reward) setting decoded over the whole set."""

    beam: int
    alpha: float
    word_reward: float
    bleu: float
    chrf: float
    length_ratio: float
    mean_logprob: float
    empty_rate: float
    short_rate: float
    search_error_rate: float
    shares: dict[str, float]  # class → share
    seconds: float


@dataclass
class Calibration(Record):
    """Alpha and word reward calibrated jointly on a dev set: the best setting by BLEU and
    every setting tried."""

    dev_src: str
    alpha: float
    word_reward: float
    bleu: float
    rows: list[SweepRow]
    best: SweepRow


@dataclass(kw_only=True)
class AnalysisSummary(Record):
    """summary.json: what the report is written from besides the sentence records."""

    format: str = "nmt-analyze/1"
    run: str | list[str]  # an ensemble's runs as a list
    checkpoint: str | list[str]
    test_src: str
    test_ref: str
    sentences: int
    decode: DecodeConfig
    nbest: int
    scores: dict[str, MetricScore]
    classes: dict[str, ClassSummary]
    ties: int
    tie_tolerance: float
    ref_over_limit: int
    fallout: FalloutSummary
    oracle: OracleSummary
    examples: dict[str, list[int]]  # class → line numbers, worst first
    sweep: list[SweepRow]
    exact: ExactSummary | None
    calibration: Calibration | None
    attention_lines: list[int]
    timings: dict[str, float]  # part → seconds
    manifest: Manifest
