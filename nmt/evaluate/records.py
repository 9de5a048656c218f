"""Typed records of the evaluation report (report.json) and the parts every report shares:
sacrebleu scores, paired tests and the run manifest.

A `Record` is a dataclass written to JSON field by field, in declaration order, so the field
order below is the key order of the files; tests/evaluate/test_records.py pins the keys.
Open-ended maps (metric → score, file → sha256, a config) stay dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any


class Record:
    """A dataclass that serialises to JSON: nested records, lists and dicts converted.

    Field metadata: "json" renames the key (`class_` → "class"), "omit_none" leaves the key
    out when the value is None, "flatten" merges a dict's items in at the field's position.
    """

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready dicts and lists, keys in field order."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            if f.metadata.get("flatten"):
                out.update(plain(value))
            else:
                out[f.metadata.get("json", f.name)] = plain(value)
        return out


def plain(value: Any) -> Any:
    """value with every Record (and other dataclass, e.g. DecodeConfig) as a JSON dict."""
    if isinstance(value, Record):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# -- sacrebleu scores and paired tests (nmt/evaluate/metrics.py) --------------------------------


@dataclass
class ConfidenceInterval(Record):
    """sacrebleu's bootstrap estimate: mean ± half_width, i.e. [low, high] at 95%."""

    mean: float
    half_width: float
    low: float
    high: float
    n_bootstrap: int
    level: float


@dataclass
class LengthStats(Record):
    """Output and reference length in BLEU's tokens, their ratio and the brevity penalty."""

    hyp_len: int
    ref_len: int
    ratio: float
    bp: float


@dataclass
class CorpusScore(Record):
    """One metric's corpus score with sacrebleu's text line and signature."""

    name: str  # sacrebleu's: BLEU, chrF2, chrF2++, TER
    score: float
    text: str
    signature: str
    ci: ConfidenceInterval | None  # with n_bootstrap > 1
    length: LengthStats | None = field(default=None, metadata={"omit_none": True})  # BLEU only


@dataclass
class PairedCell(Record):
    """One metric of one system in a paired test against the baseline."""

    score: float
    delta: float
    p_value: float | None  # None for the baseline itself
    significant: bool | None
    better: bool | None
    mean: float | None
    ci: float | None


@dataclass
class PairedRow(Record):
    """One system's line of a paired test; its cells are keyed by metric in the JSON row."""

    system: str
    baseline: bool
    identical_to_baseline: bool
    cells: dict[str, PairedCell] = field(metadata={"flatten": True})


@dataclass
class PairedResult(Record):
    """A paired significance test of every system against the first."""

    test: str  # bs | ar
    name: str
    n: int
    seed: int
    alpha: float
    signatures: dict[str, str]
    systems: list[PairedRow]


# -- the manifest (nmt/evaluate/manifest.py) ----------------------------------------------------


@dataclass
class GitState(Record):
    """The commit of the nmt code being run and whether tracked files differ from it."""

    commit: str  # "unknown" outside a git checkout
    dirty: bool | None


@dataclass
class Manifest(Record):
    """What was evaluated, with what code, on what data."""

    created: str  # ISO time, UTC
    config: dict
    git: GitState
    versions: dict[str, str]
    data: dict[str, str]  # input file → sha256
    signatures: dict[str, str]
    run: dict | None  # the run directory's config, decode settings and hashes


# -- the evaluation report (nmt/evaluate/report.py) ---------------------------------------------


@dataclass
class ReportSettings(Record):
    """How the report compared texts and resampled."""

    metrics: list[str]
    tokenize: str
    lowercase: bool
    chrf_word_order: int
    confidence: bool
    n_bootstrap: int
    significance: str
    n_ar: int
    seed: int
    length_buckets: list[int]
    bucket_by: str  # "source words" | "reference words"
    worst: int


@dataclass
class LengthBucket(Record):
    """Corpus scores of the sentences in one word-count range (empty ranges too)."""

    label: str
    min_words: int
    max_words: int | None  # None: no upper bound
    sentences: int
    scores: dict[str, float]  # {} when empty
    length_ratio: float | None


@dataclass
class Segment(Record):
    """One sentence of a system with its sentence-level scores."""

    line: int  # 1-based
    src: str | None
    ref: str
    hyp: str
    scores: dict[str, float]


@dataclass
class SystemResult(Record):
    """Everything the report holds about one system's output."""

    name: str
    path: str
    scores: dict[str, CorpusScore]
    length: LengthStats
    buckets: list[LengthBucket]
    worst: list[int]  # line numbers, worst first by the first metric
    segments: list[Segment]


@dataclass
class Training(Record):
    """The run's metrics.csv, summarised; curves is the figure's file name once drawn."""

    run: str
    curves: str | None
    updates: int
    train_rows: int
    validations: list[dict]  # metrics.csv rows
    last_train: dict | None
    best_valid: dict | None


@dataclass
class AttentionEntry(Record):
    """One attention map's sentence, as report.json lists it; image once drawn."""

    line: int
    source: str
    output: str
    note: str
    src_tokens: list[str]
    tgt_tokens: list[str]
    image: str | None = None


@dataclass(kw_only=True)
class EvaluationReport(Record):
    """report.json: the first system's scores, every system, the tests, training, manifest."""

    format: str = "nmt-evaluate-report/1"
    hyp: str
    ref: str
    src: str | None
    sentences: int
    scores: dict[str, CorpusScore]
    settings: ReportSettings
    systems: list[SystemResult]
    significance: dict[str, PairedResult]
    training: Training | None
    attention: list[AttentionEntry]
    manifest: Manifest
