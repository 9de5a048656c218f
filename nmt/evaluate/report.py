"""An evaluation report: scores with confidence intervals, significance against a baseline,
length analysis, worst sentences, training curves and attention, written as JSON, Markdown
and one self-contained HTML file.

`build_report` computes everything into `Report.data`, a typed `EvaluationReport` (what
report.json holds, with stable keys); `write_report` draws the figures and renders the three
files, the Markdown and HTML through the shared stack in nmt/evaluate/render.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.data.corpus import read_lines
from nmt.errors import ConfigError, DataError
from nmt.evaluate import render
from nmt.evaluate.manifest import build_manifest
from nmt.evaluate.metrics import (
    LOWER_IS_BETTER,
    TESTS,
    MetricSettings,
    corpus_scores,
    length_stats,
    paired_test,
    read_aligned,
    sentence_scores,
)
from nmt.evaluate.plots import AttentionMap, attention_heatmap, training_curves
from nmt.evaluate.records import (
    AttentionEntry,
    EvaluationReport,
    LengthBucket,
    ReportSettings,
    Segment,
    SystemResult,
    Training,
)
from nmt.evaluate.sections import evaluation_page
from nmt.rundir import RunDir

SIGNIFICANCE = ("none", "bs", "ar", "both")


@dataclass
class Report:
    """The report's data (report.json) and what its figures are drawn from."""

    data: EvaluationReport
    training_rows: list[dict] = field(default_factory=list)
    attention: list[AttentionMap] = field(default_factory=list)


def system_paths(cfg: DictConfig) -> list[str]:
    """hyp, then systems: the files to evaluate, the first being the baseline."""
    paths = ([cfg.hyp] if cfg.hyp else []) + list(cfg.systems)
    if not paths:
        raise ConfigError("nothing to evaluate: give hyp=FILE, or systems=[BASELINE,OTHER,...]")
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ConfigError(f"{', '.join(twice)} given more than once among hyp and systems")
    return paths


def check_evaluation(cfg: DictConfig) -> None:
    """Refuse impossible option values and combinations, naming the key."""
    if cfg.significance not in SIGNIFICANCE:
        raise ConfigError(
            f"significance={cfg.significance!r} is not one of: {', '.join(SIGNIFICANCE)}"
        )
    if cfg.confidence and cfg.n_bootstrap < 2:
        raise ConfigError(f"n_bootstrap={cfg.n_bootstrap} must be 2 or more (1000 is usual)")
    for key in ("n_bootstrap", "n_ar"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]} must be greater than 0")
    if cfg.worst < 0:
        raise ConfigError(f"worst={cfg.worst} must be 0 or more")
    edges = list(cfg.length_buckets)
    if any(e <= 0 for e in edges) or edges != sorted(set(edges)):
        raise ConfigError(f"length_buckets={edges} must be increasing positive word counts")
    if cfg.attention_lines:
        missing = [k for k in ("run", "src", "report_dir") if not cfg[k]]
        if missing:
            needs = " and ".join(f"{k}=" for k in missing)
            raise ConfigError(
                f"attention_lines={list(cfg.attention_lines)} needs {needs}: the model comes "
                "from the run, the sentences from src, the images go to report_dir"
            )


def source_lines(path: str, expected: int, numbers: list[int] | None = None) -> list[str]:
    """The source file, aligned with the reference; or just the lines numbered (1-based)."""
    lines = read_lines(path)
    if len(lines) != expected:
        raise DataError(
            f"{path} has {len(lines):,} lines but the reference has {expected:,}; the source "
            "must be aligned line by line with it"
        )
    if numbers is None:
        return lines
    bad = [n for n in numbers if not 1 <= n <= len(lines)]
    if bad:
        raise ConfigError(
            f"attention_lines={list(numbers)}: line {bad[0]} is not in {path} (lines 1 to "
            f"{len(lines):,}); give 1-based line numbers, as the report's sentence table shows"
        )
    return [lines[n - 1] for n in numbers]


def attention_sources(cfg: DictConfig) -> list[str]:
    """The source sentences cfg.attention_lines names, after checking the options it needs."""
    check_evaluation(cfg)
    return source_lines(cfg.src, len(read_lines(cfg.ref)), list(cfg.attention_lines))


def bucket_ranges(edges: list[int]) -> list[tuple[int, int | None, str]]:
    """(low, high, label) word-count ranges: [1, e1], [e1+1, e2], …, [last+1, ∞)."""
    out, low = [], 0
    for high in edges:
        out.append((low, high, f"{max(low, 1)}–{high}" if low else f"≤ {high}"))
        low = high + 1
    out.append((low, None, f"{low}+"))
    return out


def length_buckets(
    hyps: list[str],
    refs: list[str],
    lengths: list[int],
    edges: list[int],
    settings: MetricSettings,
) -> list[LengthBucket]:
    """Corpus scores and length ratio of the sentences in each length range (empty ones too)."""
    out = []
    for low, high, label in bucket_ranges(edges):
        idx = [i for i, n in enumerate(lengths) if n >= low and (high is None or n <= high)]
        scores, ratio = {}, None
        if idx:
            h, r = [hyps[i] for i in idx], [refs[i] for i in idx]
            scores = {k: v.score for k, v in corpus_scores(h, r, settings).items()}
            ratio = length_stats(h, r, settings).ratio
        out.append(LengthBucket(label, low, high, len(idx), scores, ratio))
    return out


def worst_first(segments: list[Segment], metric: str) -> list[int]:
    """Line numbers ordered worst first by one metric (TER: highest first), ties by line."""
    sign = -1 if metric in LOWER_IS_BETTER else 1
    ranked = sorted(segments, key=lambda s: (sign * s.scores[metric], s.line))
    return [s.line for s in ranked]


def _system(
    name: str,
    hyps: list[str],
    refs: list[str],
    src: list[str] | None,
    cfg: DictConfig,
    settings: MetricSettings,
) -> SystemResult:
    n_boot = cfg.n_bootstrap if cfg.confidence else 1
    per_sentence = sentence_scores(hyps, refs, settings)
    segments = [
        Segment(
            line=i + 1,
            src=None if src is None else src[i],
            ref=refs[i],
            hyp=hyps[i],
            scores={m: per_sentence[m][i] for m in settings.metrics},
        )
        for i in range(len(hyps))
    ]
    lengths = [len((src[i] if src is not None else refs[i]).split()) for i in range(len(refs))]
    return SystemResult(
        name=name,
        path=name,
        scores=corpus_scores(hyps, refs, settings, n_bootstrap=n_boot, seed=cfg.seed),
        length=length_stats(hyps, refs, settings),
        buckets=length_buckets(hyps, refs, lengths, list(cfg.length_buckets), settings),
        worst=worst_first(segments, settings.metrics[0]),
        segments=segments,
    )


def training_summary(rows: list[dict]) -> dict:
    """Counts, the last training row and the validations (all, and the best by BLEU)."""
    train = [r for r in rows if r["split"] == "train"]
    valid = [r for r in rows if r["split"] == "valid"]
    scored = [r for r in valid if r["bleu"] is not None]
    return {
        "updates": max((r["update"] for r in rows if r["update"] is not None), default=0),
        "train_rows": len(train),
        "validations": valid,
        "last_train": train[-1] if train else None,
        "best_valid": max(scored, key=lambda r: r["bleu"]) if scored else None,
    }


def build_report(
    cfg: DictConfig, attention: list[AttentionMap] | None = None, checkpoint: Path | None = None
) -> Report:
    """Score every system against the reference and gather what the report shows.

    attention: heatmaps already computed (the CLI does it with the run's model);
    checkpoint: the checkpoint file they came from, hashed into the manifest.
    """
    check_evaluation(cfg)
    settings = MetricSettings(tuple(cfg.metrics), cfg.tokenize, cfg.lowercase, cfg.chrf_word_order)
    texts = []
    for path in system_paths(cfg):
        hyps, refs = read_aligned(path, cfg.ref)
        texts.append((path, hyps))
    src = source_lines(cfg.src, len(refs)) if cfg.src else None
    systems = [_system(name, hyps, refs, src, cfg, settings) for name, hyps in texts]
    significance = {}
    if len(texts) > 1 and cfg.significance != "none":
        tests = list(TESTS) if cfg.significance == "both" else [cfg.significance]
        for test in tests:
            n = cfg.n_bootstrap if test == "bs" else cfg.n_ar
            significance[test] = paired_test(texts, refs, settings, test, n, cfg.seed)
    rows, training, run = [], None, None
    if cfg.run:
        run_dir = RunDir.open(cfg.run)
        rows = run_dir.metrics()
        training = Training(run=str(run_dir.root), curves=None, **training_summary(rows))
        run = run_dir.manifest(checkpoint)
    first = systems[0]
    data = EvaluationReport(
        hyp=first.path,
        ref=cfg.ref,
        src=cfg.src or None,
        sentences=len(refs),
        scores=first.scores,
        settings=ReportSettings(
            metrics=list(settings.metrics),
            tokenize=settings.tokenize,
            lowercase=settings.lowercase,
            chrf_word_order=settings.chrf_word_order,
            confidence=bool(cfg.confidence),
            n_bootstrap=cfg.n_bootstrap,
            significance=cfg.significance,
            n_ar=cfg.n_ar,
            seed=cfg.seed,
            length_buckets=list(cfg.length_buckets),
            bucket_by="source words" if src is not None else "reference words",
            worst=cfg.worst,
        ),
        systems=systems,
        significance=significance,
        training=training,
        attention=[
            AttentionEntry(a.line, a.source, a.output, a.note, a.src_tokens, a.tgt_tokens)
            for a in attention or []
        ],
        manifest=build_manifest(
            OmegaConf.to_container(cfg, resolve=True),
            [*system_paths(cfg), cfg.ref, cfg.src],
            {m: first.scores[m].signature for m in settings.metrics},
            run,
        ),
    )
    return Report(data, rows, list(attention or []))


def evaluation_text(data: EvaluationReport) -> str:
    """What nmt-evaluate prints: each score with its signature, then the paired tests."""
    lines = []
    many = len(data.systems) > 1
    for i, system in enumerate(data.systems):
        if many:
            lines.append(f"system {i + 1}{' (baseline)' if i == 0 else ''}: {system.name}")
        for result in system.scores.values():
            lines.append(f"{result.text}\n  signature: {result.signature}")
    for test in data.significance.values():
        lines.append(
            f"{test.name} against {data.systems[0].name} (n={test.n}, "
            f"seed={test.seed}; * p < {test.alpha}):"
        )
        for row in test.systems[1:]:
            cells = []
            for m in data.settings.metrics:
                c = row.cells[m]
                cells.append(
                    f"{data.scores[m].name} {c.score:.2f} ({c.delta:+.2f}, p={c.p_value:.4f}"
                    f"{'*' if c.significant else ''})"
                )
            lines.append(f"  {row.system}: " + "  ".join(cells))
    return "\n".join(lines)


def write_json(data: EvaluationReport, path: str | Path) -> Path:
    """The report data as indented UTF-8 JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data.to_json(), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_report(report: Report, out_dir: str | Path) -> dict[str, Path]:
    """Draw the figures, then write report.json, report.md and report.html into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = report.data
    if data.training is not None:
        name = "training_curves.png"
        training_curves(report.training_rows, out / name, data.training.run)
        data.training.curves = name
    for entry, amap in zip(data.attention, report.attention, strict=True):
        name = f"attention-line{amap.line}.png"
        title = f"line {amap.line}" + (f" ({amap.note})" if amap.note else "")
        attention_heatmap(amap.weights, amap.src_tokens, amap.tgt_tokens, out / name, title)
        entry.image = name
    written = {"json": write_json(data, out / "report.json")}
    page = evaluation_page(data)
    written["md"] = out / "report.md"
    written["md"].write_text(render.markdown(page), encoding="utf-8")
    written["html"] = out / "report.html"
    written["html"].write_text(render.html(page, out), encoding="utf-8")
    return written
