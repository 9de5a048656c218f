"""Write an analysis: sentences.jsonl, summary.json, PNG figures, report.md, report.html.

Tables are built once as (caption, header, rows) of plain-text cells and rendered by the
evaluation report's Markdown/HTML helpers (nmt/evaluate/render.py), so both formats show the
same sections and the HTML stays one self-contained file with its images inlined.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nmt.analysis.analyze import Analysis
from nmt.analysis.classify import CLASSES, LABELS, MATCH
from nmt.evaluate import render
from nmt.evaluate.plots import DPI, attention_heatmap

SWEEP_PANELS = (
    ("bleu", "BLEU"),
    ("search_error_rate", "search-error rate"),
    ("length_ratio", "length ratio (hyp / ref)"),
    ("empty_rate", "empty-output rate"),
)


def _num(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def sweep_figure(rows: list[dict], path: Path) -> Path:
    """BLEU, search-error rate, length ratio and empty rate against beam width, one line per α."""
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, len(SWEEP_PANELS))
    beams = sorted({r["beam"] for r in rows})
    for alpha in sorted({r["alpha"] for r in rows}):
        mine = sorted((r for r in rows if r["alpha"] == alpha), key=lambda r: r["beam"])
        for ax, (key, label) in zip(axes, SWEEP_PANELS, strict=True):
            ax.plot([r["beam"] for r in mine], [r[key] for r in mine], "o-", label=f"α={alpha:g}")
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


def tables(analysis: Analysis) -> dict[str, list[tuple[str, list[str], list[list[str]]]]]:
    """Each section's tables as (caption, header, rows)."""
    s, recs = analysis.summary, analysis.records
    by_line = {r["line"]: r for r in recs}
    d = s["decode"]
    out: dict[str, list] = {k: [] for k in SECTIONS}
    out["classes"].append(
        (
            f"{s['sentences']:,} sentences, beam {d['beam_size']}, {d['length_penalty']} α="
            f"{d['alpha']:g}, word reward {d['word_reward']:g}; BLEU {s['scores']['bleu']['score']:.2f}"
            f", chrF {s['scores']['chrf']['score']:.2f}; {s['ties']} ties (|Δ| ≤ "
            f"{s['tie_tolerance']:g}) counted as model error; {s['ref_over_limit']} references "
            "longer than the length limit",
            ["class", "sentences", "share", "BLEU", "what to do"],
            [
                [c["label"], str(c["count"]), _pct(c["share"]), _num(c["bleu"]), c["action"]]
                for c in s["classes"].values()
            ],
        )
    )
    for key, title in (("all", "all sentences"), ("search_errors", "search errors")):
        f = s["fallout"][key]
        rows = [[reason, str(n)] for reason, n in sorted(f["reasons"].items())]
        rows.append(["mean step of pruning", _num(f["mean_pruned_step"])])
        rows.append(["pruned at step 1", str(f["pruned_at_step_1"])])
        out["fallout"].append((f"Reference prefix y*₁..ₜ in the beam: {title}", ["", "n"], rows))
    o = s["oracle"]
    out["oracle"].append(
        (
            f"n-best oracle over {s['nbest']} hypotheses",
            ["measure", "value"],
            [
                ["corpus BLEU of the beam's best", _num(s["scores"]["bleu"]["score"])],
                ["corpus BLEU of the best by sentence BLEU", _num(o["bleu"])],
                ["sentences with a better hypothesis in the n-best", _pct(o["better_in_nbest"])],
                ["mean rank of the oracle hypothesis", _num(o["mean_rank"])],
            ],
        )
    )
    for c in CLASSES:
        if c == MATCH or not s["examples"][c]:
            continue
        rows = []
        for line in s["examples"][c]:
            r = by_line[line]
            rows.append(
                [
                    str(line),
                    _num(r["bleu"]),
                    _num(r["ref_logprob"]),
                    _num(r["hyp_logprob"]),
                    _num(r["ref_score"], 3),
                    _num(r["hyp_score"], 3),
                    str(r["fell_off_step"] or "–"),
                    r["src"],
                    r["ref"],
                    r["hyp"],
                ]
            )
        out["examples"].append(
            (
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
    if s["sweep"]:
        out["sweep"].append(
            (
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
                        str(r["beam"]),
                        f"{r['alpha']:g}",
                        _num(r["bleu"]),
                        _num(r["chrf"]),
                        _num(r["mean_logprob"]),
                        _num(r["length_ratio"], 3),
                        _pct(r["empty_rate"]),
                        _pct(r["short_rate"]),
                        _pct(r["search_error_rate"]),
                        _pct(r["shares"]["objective"]),
                        _pct(r["shares"]["model"]),
                        _pct(r["shares"]["match"]),
                        _num(r["seconds"], 1),
                    ]
                    for r in s["sweep"]
                ],
            )
        )
    e = s["exact"]
    if e:
        out["exact"].append(
            (
                f"Exact search (mode of log P) on the first {e['sentences']} sentences; budget "
                f"{e['node_budget']:,} nodes / {e['time_budget_s']:g} s per sentence; rates "
                "among the searches that finished",
                ["measure", "value"],
                [
                    ["finished (mode proven)", f"{e['finished']} ({_pct(e['finished_rate'])})"],
                    ["beam output is the mode", _pct(e["beam_is_mode_rate"])],
                    ["mode in the beam's n-best", _pct(e["mode_in_nbest_rate"])],
                    ["mode is the empty translation", _pct(e["mode_empty_rate"])],
                    ["mode is the reference", _pct(e["reference_is_mode_rate"])],
                    ["mean nodes per sentence", _num(e["mean_nodes"], 1)],
                ],
            )
        )
    cal = s["calibration"]
    if cal:
        out["calibration"].append(
            (
                f"α on {cal['dev_src']}: best α = {cal['alpha']:g} (BLEU {cal['bleu']:.2f}, "
                f"search-error rate {_pct(cal['best']['search_error_rate'])})",
                ["α", "BLEU", "length ratio", "search err."],
                [
                    [
                        f"{r['alpha']:g}",
                        _num(r["bleu"]),
                        _num(r["length_ratio"], 3),
                        _pct(r["search_error_rate"]),
                    ]
                    for r in cal["rows"]
                ],
            )
        )
    out["timings"].append(
        ("Wall time", ["part", "seconds"], [[k, _num(v, 1)] for k, v in s["timings"].items()])
    )
    return out


SECTIONS = {
    "classes": "Classes",
    "fallout": "Where the reference fell off the beam",
    "oracle": "n-best oracle",
    "examples": "Examples",
    "sweep": "Beam width × α sweep",
    "exact": "Exact search",
    "calibration": "α calibration",
    "attention": "Attention",
    "timings": "Wall time",
}
NOTES = {
    "sweep": "No sweep: set analysis.sweep_beams and analysis.sweep_alphas.",
    "exact": "Exact search off: set analysis.exact_sentences.",
    "calibration": "No calibration: give data.dev_src and data.dev_ref.",
    "attention": "No sentences chosen.",
}


def figures(analysis: Analysis, out: Path) -> list[tuple[str, str, str]]:
    """Draw the PNGs into out: (section, file name, caption) of each."""
    figs = []
    if analysis.summary["sweep"]:
        sweep_figure(analysis.summary["sweep"], out / "sweep.png")
        figs.append(
            ("sweep", "sweep.png", "BLEU, search errors, length and empty output by beam width")
        )
    for k, amap in enumerate(analysis.attention):
        name = f"attention-line{amap.line}-{'hyp' if k % 2 == 0 else 'ref'}.png"
        title = f"line {amap.line}: {amap.note}"
        attention_heatmap(amap.weights, amap.src_tokens, amap.tgt_tokens, out / name, title)
        figs.append(("attention", name, f"Line {amap.line}, {amap.note}: {amap.output}"))
    return figs


def markdown(analysis: Analysis, figs: list[tuple[str, str, str]]) -> str:
    """The report as GitHub-flavoured Markdown; the PNGs lie beside it."""
    all_tables = tables(analysis)
    parts = [f"# Error analysis: {analysis.summary['run']}\n"]
    for key, title in SECTIONS.items():
        parts.append(f"## {title}\n")
        mine = [(name, caption) for section, name, caption in figs if section == key]
        parts += [f"{render.md_cell(c)}\n\n![{render.md_cell(c)}]({n})\n" for n, c in mine]
        parts += [render.md_table(*t) for t in all_tables[key]]
        if not all_tables[key] and not mine and key in NOTES:
            parts.append(NOTES[key] + "\n")
    return "\n".join(parts)


def html(analysis: Analysis, figs: list[tuple[str, str, str]], out: Path) -> str:
    """The report as one self-contained HTML page (CSS inline, images as data URIs)."""
    s, all_tables = analysis.summary, tables(analysis)
    nav = "".join(f'<a href="#{k}">{render.esc(v)}</a>' for k, v in SECTIONS.items())
    body = []
    for key, title in SECTIONS.items():
        parts = [f'<section id="{key}"><h2>{render.esc(title)}</h2>']
        for section, name, caption in figs:
            if section == key:
                parts.append(
                    f"<figure><figcaption>{render.esc(caption)}</figcaption>"
                    f"{render.img(out / name, caption)}</figure>"
                )
        parts += [render.html_table(*t) for t in all_tables[key]]
        if not all_tables[key] and key in NOTES and not any(f[0] == key for f in figs):
            parts.append(f'<p class="note">{render.esc(NOTES[key])}</p>')
        body.append("".join(parts) + "</section>")
    shares = " · ".join(f"{c['label']} {_pct(c['share'])}" for c in s["classes"].values())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>nmt error analysis: {render.esc(s['run'])}</title>"
        f"<style>{render.CSS}</style></head><body>"
        f"<header><h1>Error analysis: {render.esc(s['run'])}</h1>"
        f"<p>{render.esc(shares)} · {s['sentences']:,} sentences · "
        f"{render.esc(s['manifest']['created'])}</p></header><nav>{nav}</nav>"
        f"<main>{''.join(body)}</main></body></html>\n"
    )


def write(analysis: Analysis, out_dir: str | Path) -> dict[str, Path]:
    """sentences.jsonl, summary.json, the PNGs, report.md and report.html into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"jsonl": out / "sentences.jsonl", "summary": out / "summary.json"}
    with written["jsonl"].open("w", encoding="utf-8") as f:
        for rec in analysis.records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    text = json.dumps(analysis.summary, indent=2, ensure_ascii=False)
    written["summary"].write_text(text + "\n", encoding="utf-8")
    figs = figures(analysis, out)
    written["md"] = out / "report.md"
    written["md"].write_text(markdown(analysis, figs), encoding="utf-8")
    written["html"] = out / "report.html"
    written["html"].write_text(html(analysis, figs, out), encoding="utf-8")
    return written


def summary_text(summary: dict) -> str:
    """What nmt-analyze prints: class shares, BLEU, exact-search rates, wall times."""
    lines = [
        f"{summary['sentences']:,} sentences, BLEU {summary['scores']['bleu']['score']:.2f}, "
        f"chrF {summary['scores']['chrf']['score']:.2f}"
    ]
    for c in summary["classes"].values():
        lines.append(f"  {c['label']:<18} {c['count']:>6} {_pct(c['share']):>7}  {c['action']}")
    e = summary["exact"]
    if e:
        lines.append(
            f"exact search: {e['finished']}/{e['sentences']} finished; beam output is the mode "
            f"{_pct(e['beam_is_mode_rate'])}, mode empty {_pct(e['mode_empty_rate'])}"
        )
    lines.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings"].items()))
    return "\n".join(lines)
