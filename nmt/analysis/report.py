"""Write an analysis: sentences.jsonl, summary.json, PNG figures, report.md, report.html.

The page (sections of tables, figures and notes) is built once from the typed records and
rendered by the stack both reports share (nmt/evaluate/render.py), so both formats show the
same sections and the HTML stays one self-contained file with its images inlined.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nmt.analysis.analyze import Analysis
from nmt.analysis.classify import CLASSES, LABELS, MATCH
from nmt.analysis.records import AnalysisSummary, SweepRow
from nmt.analysis.sentences import records_text
from nmt.evaluate import render
from nmt.evaluate.plots import DPI, attention_heatmap
from nmt.evaluate.render import Table, num, pct

SWEEP_PANELS = (
    ("bleu", "BLEU"),
    ("search_error_rate", "search-error rate"),
    ("length_ratio", "length ratio (hyp / ref)"),
    ("empty_rate", "empty-output rate"),
)


def sweep_figure(rows: list[SweepRow], path: Path) -> Path:
    """BLEU, search-error rate, length ratio and empty rate against beam width, one line per α."""
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, len(SWEEP_PANELS))
    beams = sorted({r.beam for r in rows})
    for alpha in sorted({r.alpha for r in rows}):
        mine = sorted((r for r in rows if r.alpha == alpha), key=lambda r: r.beam)
        for ax, (key, label) in zip(axes, SWEEP_PANELS, strict=True):
            x, y = [r.beam for r in mine], [getattr(r, key) for r in mine]
            ax.plot(x, y, "o-", label=f"α={alpha:g}")
            ax.set_xscale("log", base=2)
            ax.set_xticks(beams, labels=[str(b) for b in beams], minor=False)
            ax.minorticks_off()
            ax.set_xlabel("beam width")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0].legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _analysis_tables(analysis: Analysis) -> dict[str, list[Table]]:
    """Each section's tables, with plain-text cells."""
    s, recs = analysis.summary, analysis.records
    by_line = {r.line: r for r in recs}
    d = s.decode
    out: dict[str, list[Table]] = {k: [] for k in ANALYSIS_SECTIONS}
    out["classes"].append(
        Table(
            f"{s.sentences:,} sentences, beam {d.beam_size}, {d.length_penalty} α="
            f"{d.alpha:g}, word reward {d.word_reward:g}; BLEU {s.scores['bleu'].score:.2f}"
            f", chrF {s.scores['chrf'].score:.2f}; {s.ties} ties (|Δ| ≤ "
            f"{s.tie_tolerance:g}) counted as model error; {s.ref_over_limit} references "
            "longer than the length limit",
            ["class", "sentences", "share", "BLEU", "what to do"],
            [
                [c.label, str(c.count), pct(c.share), num(c.bleu), c.action]
                for c in s.classes.values()
            ],
        )
    )
    for f, title in ((s.fallout.all, "all sentences"), (s.fallout.search_errors, "search errors")):
        rows = [[reason, str(n)] for reason, n in sorted(f.reasons.items())]
        rows.append(["mean step of pruning", num(f.mean_pruned_step)])
        rows.append(["pruned at step 1", str(f.pruned_at_step_1)])
        out["fallout"].append(
            Table(f"Reference prefix y*₁..ₜ in the beam: {title}", ["", "n"], rows)
        )
    o = s.oracle
    out["oracle"].append(
        Table(
            f"n-best oracle over {s.nbest} hypotheses",
            ["measure", "value"],
            [
                ["corpus BLEU of the beam's best", num(s.scores["bleu"].score)],
                ["corpus BLEU of the best by sentence BLEU", num(o.bleu)],
                ["sentences with a better hypothesis in the n-best", pct(o.better_in_nbest)],
                ["mean rank of the oracle hypothesis", num(o.mean_rank)],
            ],
        )
    )
    for c in CLASSES:
        if c == MATCH or not s.examples[c]:
            continue
        rows = []
        for line in s.examples[c]:
            r = by_line[line]
            rows.append(
                [
                    str(line),
                    num(r.bleu),
                    num(r.ref_logprob),
                    num(r.hyp_logprob),
                    num(r.ref_score, 3),
                    num(r.hyp_score, 3),
                    str(r.fell_off_step or "–"),
                    r.src,
                    r.ref,
                    r.hyp,
                ]
            )
        out["examples"].append(
            Table(
                f"{LABELS[c]}: worst {len(rows)} by sentence BLEU",
                [
                    "line",
                    "BLEU",
                    "log P(y*)",
                    "log P(ŷ)",
                    "obj(y*)",
                    "obj(ŷ)",
                    "fell off",
                    "source",
                    "reference",
                    "output",
                ],
                rows,
            )
        )
    if s.sweep:
        out["sweep"].append(
            Table(
                "Beam width × α (class shares from each setting's own beam)",
                [
                    "beam",
                    "α",
                    "BLEU",
                    "chrF",
                    "mean log P",
                    "length ratio",
                    "empty",
                    "short",
                    "search err.",
                    "objective",
                    "model err.",
                    "match",
                    "seconds",
                ],
                [
                    [
                        str(r.beam),
                        f"{r.alpha:g}",
                        num(r.bleu),
                        num(r.chrf),
                        num(r.mean_logprob),
                        num(r.length_ratio, 3),
                        pct(r.empty_rate),
                        pct(r.short_rate),
                        pct(r.search_error_rate),
                        pct(r.shares["objective"]),
                        pct(r.shares["model"]),
                        pct(r.shares["match"]),
                        num(r.seconds, 1),
                    ]
                    for r in s.sweep
                ],
            )
        )
    e = s.exact
    if e:
        out["exact"].append(
            Table(
                f"Exact search (mode of log P) on the first {e.sentences} sentences; budget "
                f"{e.node_budget:,} nodes / {e.time_budget_s:g} s per sentence; rates "
                "among the searches that finished",
                ["measure", "value"],
                [
                    ["finished (mode proven)", f"{e.finished} ({pct(e.finished_rate)})"],
                    ["beam output is the mode", pct(e.beam_is_mode_rate)],
                    ["mode in the beam's n-best", pct(e.mode_in_nbest_rate)],
                    ["mode is the empty translation", pct(e.mode_empty_rate)],
                    ["mode is the reference", pct(e.reference_is_mode_rate)],
                    ["mean nodes per sentence", num(e.mean_nodes, 1)],
                ],
            )
        )
    cal = s.calibration
    if cal:
        out["calibration"].append(
            Table(
                f"α × word reward on {cal.dev_src}: best α = {cal.alpha:g}, word reward "
                f"{cal.word_reward:g} (BLEU {cal.bleu:.2f}, search-error rate "
                f"{pct(cal.best.search_error_rate)}); decode with decode.alpha={cal.alpha:g} "
                f"decode.word_reward={cal.word_reward:g}",
                ["α", "word reward", "BLEU", "length ratio", "search err."],
                [
                    [
                        f"{r.alpha:g}",
                        f"{r.word_reward:g}",
                        num(r.bleu),
                        num(r.length_ratio, 3),
                        pct(r.search_error_rate),
                    ]
                    for r in cal.rows
                ],
            )
        )
    out["timings"].append(
        Table("Wall time", ["part", "seconds"], [[k, num(v, 1)] for k, v in s.timings.items()])
    )
    return out


ANALYSIS_SECTIONS = {
    "classes": "Classes",
    "fallout": "Where the reference fell off the beam",
    "oracle": "n-best oracle",
    "examples": "Examples",
    "sweep": "Beam width × α sweep",
    "exact": "Exact search",
    "calibration": "α × word reward calibration",
    "attention": "Attention",
    "timings": "Wall time",
}
NOTES = {
    "sweep": "No sweep: set analysis.sweep_beams and analysis.sweep_alphas.",
    "exact": "Exact search off: set analysis.exact_sentences.",
    "calibration": "No calibration: give data.dev_src and data.dev_ref.",
    "attention": "No sentences chosen.",
}


def figures(analysis: Analysis, out: Path) -> list[tuple[str, render.Figure]]:
    """Draw the PNGs into out: (section, figure) of each."""
    figs = []
    if analysis.summary.sweep:
        sweep_figure(analysis.summary.sweep, out / "sweep.png")
        caption = "BLEU, search errors, length and empty output by beam width"
        figs.append(("sweep", render.Figure("sweep.png", caption, render.Caption.text(caption))))
    for k, amap in enumerate(analysis.attention):
        name = f"attention-line{amap.line}-{'hyp' if k % 2 == 0 else 'ref'}.png"
        title = f"line {amap.line}: {amap.note}"
        attention_heatmap(amap.weights, amap.src_tokens, amap.tgt_tokens, out / name, title)
        caption = f"Line {amap.line}, {amap.note}: {amap.output}"
        figs.append(("attention", render.Figure(name, caption, render.Caption.text(caption))))
    return figs


def _names(run: str | list[str]) -> str:
    """The run, or an ensemble's runs, as a title names them."""
    return run if isinstance(run, str) else "ensemble of " + ", ".join(run)


def analysis_page(analysis: Analysis, figs: list[tuple[str, render.Figure]]) -> render.Page:
    """The report's page: every section of ANALYSIS_SECTIONS, figures first, then tables;
    a note where a section is empty."""
    s, tables = analysis.summary, _analysis_tables(analysis)
    sections = []
    for key, title in ANALYSIS_SECTIONS.items():
        blocks = [fig for section, fig in figs if section == key] + tables[key]
        if not blocks and key in NOTES:
            blocks = [render.Note(NOTES[key])]
        sections.append(render.Section(key, title, blocks))
    shares = " · ".join(f"{c.label} {pct(c.share)}" for c in s.classes.values())
    return render.Page(
        title=f"nmt error analysis: {_names(s.run)}",
        heading=f"Error analysis: {_names(s.run)}",
        subtitle=f"{shares} · {s.sentences:,} sentences · {s.manifest.created}",
        sections=sections,
    )


def write(analysis: Analysis, out_dir: str | Path) -> dict[str, Path]:
    """sentences.jsonl (unless the analysis streamed it there), summary.json, the PNGs,
    report.md and report.html into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"jsonl": out / "sentences.jsonl", "summary": out / "summary.json"}
    if analysis.sentences != written["jsonl"]:  # not streamed there as they were made
        written["jsonl"].write_text(records_text(analysis.records), encoding="utf-8")
    text = json.dumps(analysis.summary.to_json(), indent=2, ensure_ascii=False)
    written["summary"].write_text(text + "\n", encoding="utf-8")
    page = analysis_page(analysis, figures(analysis, out))
    written["md"] = out / "report.md"
    written["md"].write_text(render.markdown(page), encoding="utf-8")
    written["html"] = out / "report.html"
    written["html"].write_text(render.html(page, out), encoding="utf-8")
    return written


def analysis_text(summary: AnalysisSummary) -> str:
    """What nmt-analyze prints: class shares, BLEU, exact-search rates, wall times."""
    lines = [
        f"{summary.sentences:,} sentences, BLEU {summary.scores['bleu'].score:.2f}, "
        f"chrF {summary.scores['chrf'].score:.2f}"
    ]
    for c in summary.classes.values():
        lines.append(f"  {c.label:<18} {c.count:>6} {pct(c.share):>7}  {c.action}")
    e = summary.exact
    if e:
        lines.append(
            f"exact search: {e.finished}/{e.sentences} finished; beam output is the mode "
            f"{pct(e.beam_is_mode_rate)}, mode empty {pct(e.mode_empty_rate)}"
        )
    lines.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary.timings.items()))
    return "\n".join(lines)
