"""What the evaluation report shows: its sections, tables, figures and notes, built from the
typed report data and rendered by nmt/evaluate/render.py."""

from __future__ import annotations

import json

from nmt.evaluate.metrics import LOWER_IS_BETTER
from nmt.evaluate.records import CorpusScore, EvaluationReport, Manifest, PairedCell
from nmt.evaluate.render import (
    Block,
    Caption,
    Code,
    Figure,
    Note,
    Page,
    Section,
    Table,
    esc,
    md_cell,
    num,
)

EVALUATION_SECTIONS = {
    "summary": "Summary",
    "significance": "Significance",
    "length": "Length",
    "sentences": "Worst sentences",
    "training": "Training curves",
    "attention": "Attention",
    "manifest": "Manifest",
}
MANIFEST = "Code, package versions and sha256 of every input"


def _name(data: EvaluationReport, metric: str) -> str:
    """sacrebleu's name of a metric as configured: BLEU, chrF2, chrF2++, TER."""
    return data.scores[metric].name


def _title(data: EvaluationReport) -> str:
    """'Evaluation report: base.txt', or 'base.txt vs new.txt' for several systems."""
    return "Evaluation report: " + " vs ".join(sy.name for sy in data.systems)


def _score(entry: CorpusScore) -> str:
    """'31.20' or '31.20 [29.81, 32.57]' when a 95% CI was computed."""
    text = num(entry.score)
    if entry.ci:
        text += f" [{num(entry.ci.low)}, {num(entry.ci.high)}]"
    return text


def _p(cell: PairedCell) -> str:
    if cell.p_value is None:
        return "baseline"
    return f"{cell.delta:+.2f}, p = {cell.p_value:.4f}{' *' if cell.significant else ''}"


def _evaluation_tables(data: EvaluationReport) -> dict[str, list[Table]]:
    """Each section's tables, with plain-text cells."""
    s = data.settings
    metrics = s.metrics
    heads = [_name(data, m) for m in metrics]
    many = len(data.systems) > 1
    out: dict[str, list[Table]] = {name: [] for name in EVALUATION_SECTIONS}
    ci = " (95% CI)" if s.confidence else ""
    out["summary"].append(
        Table(
            f"{data.sentences:,} sentences against {data.ref}",
            ["system", *[h + ci for h in heads], "length ratio"],
            [
                [
                    sy.name + (" (baseline)" if i == 0 and many else ""),
                    *[_score(sy.scores[m]) for m in metrics],
                    num(sy.length.ratio, 3),
                ]
                for i, sy in enumerate(data.systems)
            ],
        )
    )
    words = f"{s.chrf_word_order} ({'chrF++' if s.chrf_word_order == 2 else 'chrF'})"
    out["summary"].append(
        Table(
            "Settings",
            ["setting", "value"],
            [
                ["BLEU tokenisation", s.tokenize],
                ["case", "lowercased" if s.lowercase else "case-sensitive"],
                ["chrF word n-grams", words],
                [
                    "confidence intervals",
                    f"bootstrap, n = {s.n_bootstrap}" if s.confidence else "off",
                ],
                ["significance", s.significance if many else "one system: none"],
                ["seed", str(s.seed)],
                *[[f"signature {_name(data, m)}", data.scores[m].signature] for m in metrics],
            ],
        )
    )
    for test in data.significance.values():
        out["significance"].append(
            Table(
                f"{test.name} against the baseline (n = {test.n}, seed = {test.seed}; "
                f"* p < {test.alpha})",
                ["system", *heads],
                [
                    [
                        r.system + (" (identical to baseline)" if r.identical_to_baseline else ""),
                        *[f"{r.cells[m].score:.2f} ({_p(r.cells[m])})" for m in metrics],
                    ]
                    for r in test.systems
                ],
            )
        )
    order = " (highest first)" if metrics[0] in LOWER_IS_BETTER else " (lowest first)"
    for sy in data.systems:
        ln = sy.length
        out["length"].append(
            Table(
                f"{sy.name}: output {ln.hyp_len:,} / reference {ln.ref_len:,} BLEU tokens, "
                f"ratio {ln.ratio:.3f}, brevity penalty {ln.bp:.3f}; by {s.bucket_by}",
                ["length", "sentences", *heads, "length ratio"],
                [
                    [
                        b.label,
                        str(b.sentences),
                        *[num(b.scores.get(m)) for m in metrics],
                        num(b.length_ratio, 3),
                    ]
                    for b in sy.buckets
                    if b.sentences  # empty ranges stay in report.json only
                ],
            )
        )
        by_line = {seg.line: seg for seg in sy.segments}
        cols = ["line", *heads] + (["source"] if data.src else []) + ["reference", "output"]
        rows = []
        for line in sy.worst[: s.worst]:
            seg = by_line[line]
            rows.append(
                [
                    str(line),
                    *[num(seg.scores[m]) for m in metrics],
                    *([seg.src] if data.src else []),
                    seg.ref,
                    seg.hyp,
                ]
            )
        out["sentences"].append(
            Table(f"{sy.name}: the {len(rows)} worst by sentence {heads[0]}{order}", cols, rows)
        )
    if data.training:
        out["training"].append(
            Table(
                f"Validations of {data.training.run}",
                ["update", "loss", "perplexity", "BLEU"],
                [
                    [str(v["update"]), num(v["loss"], 3), num(v["ppl"]), num(v["bleu"])]
                    for v in data.training.validations
                ],
            )
        )
    return out


def _manifest_blocks(m: Manifest) -> list[Block]:
    """The manifest's table and its configs (the run's config on the HTML page only)."""
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[m.git.dirty]
    rows = [["created", m.created], ["git commit", m.git.commit + dirty]]
    rows += [[f"version {k}", v] for k, v in m.versions.items()]
    rows += [[f"sha256 {k}", v] for k, v in m.data.items()]
    if m.run:
        rows += [[f"sha256 {k}", v] for k, v in m.run["spm_models"].items()]
        rows += [[f"sha256 {k}", v] for k, v in m.run["checkpoint"].items()]
        rows.append(["decode", json.dumps(m.run["decode"])])
    blocks = [
        Table(MANIFEST, ["item", "value"], rows, mono=True),
        Code("configuration", json.dumps(m.config, indent=2, ensure_ascii=False)),
    ]
    if m.run:
        blocks.append(
            Code("run configuration", json.dumps(m.run["config"], indent=2), markdown=False)
        )
    # the HTML page has always closed the manifest with an empty note; kept byte for byte
    return [*blocks, Note("", markdown=False)]


def _empty_note(name: str, data: EvaluationReport) -> str:
    return {
        "significance": "One system: give systems=[BASELINE,OTHER,…] to compare systems."
        if len(data.systems) < 2
        else "significance=none: no paired test was run.",
        "training": "No run directory: give run=DIR to plot its metrics.csv.",
        "attention": "No sentences chosen: give attention_lines=[LINE,…] with run=DIR and src=FILE.",
    }.get(name, "")


def _figures(name: str, data: EvaluationReport) -> list[Figure]:
    if name == "training" and data.training and data.training.curves:
        return [Figure(data.training.curves, "training curves")]
    if name != "attention":
        return []
    return [
        Figure(
            a.image,
            f"attention, line {a.line}",
            Caption(
                f"**Line {a.line}** ({md_cell(a.note)}): {md_cell(a.source)} → {md_cell(a.output)}",
                f"Line {a.line} ({esc(a.note)}):<br><b>source</b> {esc(a.source)}<br>"
                f"<b>output</b> {esc(a.output)}",
            ),
        )
        for a in data.attention
    ]


def evaluation_page(data: EvaluationReport) -> Page:
    """The report's page: every section of EVALUATION_SECTIONS, a note where one is empty."""
    tables = _evaluation_tables(data)
    sections = []
    for name, title in EVALUATION_SECTIONS.items():
        if name == "manifest":
            blocks = _manifest_blocks(data.manifest)
        else:
            blocks = [*_figures(name, data), *tables[name]]
            if not blocks:
                blocks = [Note(_empty_note(name, data))]
        sections.append(Section(name, title, blocks))
    first = data.systems[0]
    headline = " · ".join(
        f"{_name(data, m)} {_score(first.scores[m])}" for m in data.settings.metrics
    )
    return Page(
        title=f"nmt evaluation: {data.hyp}",
        heading=_title(data),
        subtitle=f"{headline} · {data.sentences:,} sentences · {data.manifest.created}",
        sections=sections,
    )
