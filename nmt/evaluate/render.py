"""Render report data (report.json's dict) as Markdown and as one self-contained HTML page.

Both show the same sections in the same order (`SECTIONS`); the HTML embeds its images as
base64 data URIs and its CSS inline, so the single file can be mailed or archived.
"""

from __future__ import annotations

import base64
import html as _html
import json
import re
from pathlib import Path

from nmt.evaluate.metrics import LOWER_IS_BETTER

SECTIONS = {
    "summary": "Summary",
    "significance": "Significance",
    "length": "Length",
    "sentences": "Worst sentences",
    "training": "Training curves",
    "attention": "Attention",
    "manifest": "Manifest",
}
MANIFEST = "Code, package versions and sha256 of every input"


def _name(data: dict, metric: str) -> str:
    """sacrebleu's name of a metric as configured: BLEU, chrF2, chrF2++, TER."""
    return data["scores"][metric]["name"]


def _title(data: dict) -> str:
    """'Evaluation report: base.txt', or 'base.txt vs new.txt' for several systems."""
    return "Evaluation report: " + " vs ".join(sy["name"] for sy in data["systems"])


def _num(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _score(entry: dict) -> str:
    """'31.20' or '31.20 [29.81, 32.57]' when a 95% CI was computed."""
    text = _num(entry["score"])
    if entry.get("ci"):
        text += f" [{_num(entry['ci']['low'])}, {_num(entry['ci']['high'])}]"
    return text


def _p(cell: dict) -> str:
    if cell["p_value"] is None:
        return "baseline"
    return f"{cell['delta']:+.2f}, p = {cell['p_value']:.4f}{' *' if cell['significant'] else ''}"


# -- shared table contents ---------------------------------------------------------------------


def _tables(data: dict) -> dict[str, list]:
    """Each section's tables as (caption, header, rows) with plain-text cells."""
    s = data["settings"]
    metrics = s["metrics"]
    heads = [_name(data, m) for m in metrics]
    out: dict[str, list] = {name: [] for name in SECTIONS}
    ci = " (95% CI)" if s["confidence"] else ""
    out["summary"].append(
        (
            f"{data['sentences']:,} sentences against {data['ref']}",
            ["system", *[h + ci for h in heads], "length ratio"],
            [
                [
                    sy["name"] + (" (baseline)" if i == 0 and len(data["systems"]) > 1 else ""),
                    *[_score(sy["scores"][m]) for m in metrics],
                    _num(sy["length"]["ratio"], 3),
                ]
                for i, sy in enumerate(data["systems"])
            ],
        )
    )
    out["summary"].append(
        (
            "Settings",
            ["setting", "value"],
            [
                ["BLEU tokenisation", s["tokenize"]],
                ["case", "lowercased" if s["lowercase"] else "case-sensitive"],
                [
                    "chrF word n-grams",
                    f"{s['chrf_word_order']} ({'chrF++' if s['chrf_word_order'] == 2 else 'chrF'})",
                ],
                [
                    "confidence intervals",
                    f"bootstrap, n = {s['n_bootstrap']}" if s["confidence"] else "off",
                ],
                [
                    "significance",
                    s["significance"] if len(data["systems"]) > 1 else "one system: none",
                ],
                ["seed", str(s["seed"])],
                *[[f"signature {_name(data, m)}", data["scores"][m]["signature"]] for m in metrics],
            ],
        )
    )
    for test in data["significance"].values():
        out["significance"].append(
            (
                f"{test['name']} against the baseline (n = {test['n']}, seed = {test['seed']}; "
                f"* p < {test['alpha']})",
                ["system", *heads],
                [
                    [
                        r["system"]
                        + (" (identical to baseline)" if r["identical_to_baseline"] else ""),
                        *[f"{r[m]['score']:.2f} ({_p(r[m])})" for m in metrics],
                    ]
                    for r in test["systems"]
                ],
            )
        )
    order = " (highest first)" if metrics[0] in LOWER_IS_BETTER else " (lowest first)"
    for sy in data["systems"]:
        ln = sy["length"]
        out["length"].append(
            (
                f"{sy['name']}: output {ln['hyp_len']:,} / reference {ln['ref_len']:,} BLEU tokens, "
                f"ratio {ln['ratio']:.3f}, brevity penalty {ln['bp']:.3f}; by {s['bucket_by']}",
                ["length", "sentences", *heads, "length ratio"],
                [
                    [
                        b["label"],
                        str(b["sentences"]),
                        *[_num(b["scores"].get(m)) for m in metrics],
                        _num(b["length_ratio"], 3),
                    ]
                    for b in sy["buckets"]
                    if b["sentences"]  # empty ranges stay in report.json only
                ],
            )
        )
        by_line = {seg["line"]: seg for seg in sy["segments"]}
        cols = ["line", *heads] + (["source"] if data["src"] else []) + ["reference", "output"]
        rows = []
        for line in sy["worst"][: s["worst"]]:
            seg = by_line[line]
            rows.append(
                [
                    str(line),
                    *[_num(seg["scores"][m]) for m in metrics],
                    *([seg["src"]] if data["src"] else []),
                    seg["ref"],
                    seg["hyp"],
                ]
            )
        out["sentences"].append(
            (f"{sy['name']}: the {len(rows)} worst by sentence {heads[0]}{order}", cols, rows)
        )
    if data["training"]:
        out["training"].append(
            (
                f"Validations of {data['training']['run']}",
                ["update", "loss", "perplexity", "BLEU"],
                [
                    [str(v["update"]), _num(v["loss"], 3), _num(v["ppl"]), _num(v["bleu"])]
                    for v in data["training"]["validations"]
                ],
            )
        )
    return out


def _manifest_rows(m: dict) -> list[list[str]]:
    git = m["git"]
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[git["dirty"]]
    rows = [["created", m["created"]], ["git commit", git["commit"] + dirty]]
    rows += [[f"version {k}", v] for k, v in m["versions"].items()]
    rows += [[f"sha256 {k}", v] for k, v in m["data"].items()]
    if m["run"]:
        rows += [[f"sha256 {k}", v] for k, v in m["run"]["spm_models"].items()]
        rows += [[f"sha256 {k}", v] for k, v in m["run"]["checkpoint"].items()]
        rows.append(["decode", json.dumps(m["run"]["decode"])])
    return rows


def _empty_note(name: str, data: dict) -> str:
    return {
        "significance": "One system: give systems=[BASELINE,OTHER,…] to compare systems."
        if len(data["systems"]) < 2
        else "significance=none: no paired test was run.",
        "training": "No run directory: give run=DIR to plot its metrics.csv.",
        "attention": "No sentences chosen: give attention_lines=[LINE,…] with run=DIR and src=FILE.",
    }.get(name, "")


# -- Markdown ----------------------------------------------------------------------------------


def md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [
        f"**{md_cell(caption)}**",
        "",
        "| " + " | ".join(map(md_cell, header)) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(map(md_cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(data: dict) -> str:
    """The report as GitHub-flavoured Markdown; images are the PNGs beside the file."""
    tables = _tables(data)
    parts = [f"# {_title(data)}\n"]
    for name, title in SECTIONS.items():
        parts.append(f"## {title}\n")
        if name == "manifest":
            parts.append(md_table(MANIFEST, ["item", "value"], _manifest_rows(data["manifest"])))
            parts.append(
                "Configuration:\n\n```json\n"
                + json.dumps(data["manifest"]["config"], indent=2, ensure_ascii=False)
                + "\n```\n"
            )
            continue
        if name == "training" and data["training"] and data["training"]["curves"]:
            parts.append(f"![training curves]({data['training']['curves']})\n")
        if name == "attention":
            for a in data["attention"]:
                parts.append(
                    f"**Line {a['line']}** ({md_cell(a['note'])}): {md_cell(a['source'])}"
                    f" → {md_cell(a['output'])}\n"
                )
                if a["image"]:
                    parts.append(f"![attention, line {a['line']}]({a['image']})\n")
        parts += [md_table(*t) for t in tables[name]]
        if not tables[name] and not (name == "attention" and data["attention"]):
            parts.append(_empty_note(name, data) + "\n")
    return "\n".join(parts)


# -- HTML --------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
margin:0;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1d9;font-size:13px}
nav{background:#fff;border-bottom:1px solid #d0d7de;padding:8px 32px;position:sticky;top:0}
nav a{margin-right:18px;color:#0969da;text-decoration:none;font-size:14px}
main{max-width:1200px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;margin:20px 0;padding:4px 20px 16px}
h2{font-size:18px;border-bottom:1px solid #d8dee4;padding-bottom:6px}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13.5px;width:100%}
caption{text-align:left;font-weight:600;padding:4px 0 6px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.sig{color:#1a7f37;font-weight:600}td.mono,pre{font-family:ui-monospace,Menlo,monospace;
font-size:12px;word-break:break-all}
pre{background:#f6f8fa;padding:10px;border-radius:6px;white-space:pre-wrap}
img{max-width:100%;border:1px solid #d8dee4;border-radius:4px}
p.note{color:#57606a;font-style:italic}figure{margin:12px 0 24px}
figcaption{font-size:13px;color:#57606a;margin-bottom:6px}
"""


def esc(text) -> str:
    return _html.escape(str(text), quote=True)


_NUMBER = re.compile(
    r"[+-]?[\d,]*\.?\d+( \[[-\d.]+, [-\d.]+\]| \([+-][\d.]+, p = [\d.]+( \*)?\))?|–"
)


def _is_number(text: str) -> bool:
    """Numeric cells (scores, counts, a score with its CI or p-value) are right-aligned."""
    return _NUMBER.fullmatch(text) is not None


def html_table(caption: str, header: list[str], rows: list[list[str]], mono: bool = False) -> str:
    out = [f"<table><caption>{esc(caption)}</caption><thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in header] + ["</tr></thead><tbody>"]
    for row in rows:
        cells = []
        for cell in row:
            numeric = header[0] not in ("setting", "item") and _is_number(cell)
            cls = "num" if numeric else ("mono" if mono else "")
            if cell.endswith(" *)"):
                cls += " sig"
            cells.append(
                f'<td class="{cls.strip()}">{esc(cell)}</td>'
                if cls.strip()
                else f"<td>{esc(cell)}</td>"
            )
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</tbody></table>"


def img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return f'<p class="note">{esc(alt)}: image missing</p>'
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'


def html(data: dict, images: dict[str, Path] | None = None) -> str:
    """The report as one HTML page; images maps the file names in data to PNG paths."""
    images = images or {}
    tables = _tables(data)
    nav = "".join(f'<a href="#{k}">{esc(v)}</a>' for k, v in SECTIONS.items())
    body = []
    for name, title in SECTIONS.items():
        parts = [f'<section id="{name}"><h2>{esc(title)}</h2>']
        if name == "training" and data["training"] and data["training"]["curves"]:
            curves = data["training"]["curves"]
            parts.append(f"<figure>{img(images.get(curves), 'training curves')}</figure>")
        if name == "attention":
            for a in data["attention"]:
                parts.append(
                    f"<figure><figcaption>Line {a['line']} ({esc(a['note'])}):<br>"
                    f"<b>source</b> {esc(a['source'])}<br><b>output</b> {esc(a['output'])}"
                    f"</figcaption>{img(images.get(a['image']), 'attention, line ' + str(a['line']))}"
                    "</figure>"
                )
        if name == "manifest":
            parts.append(
                html_table(MANIFEST, ["item", "value"], _manifest_rows(data["manifest"]), mono=True)
            )
            config = json.dumps(data["manifest"]["config"], indent=2, ensure_ascii=False)
            parts.append(
                f"<details><summary>configuration</summary><pre>{esc(config)}</pre></details>"
            )
            if data["manifest"]["run"]:
                run_cfg = json.dumps(data["manifest"]["run"]["config"], indent=2)
                parts.append(
                    "<details><summary>run configuration</summary>"
                    f"<pre>{esc(run_cfg)}</pre></details>"
                )
        parts += [html_table(*t) for t in tables[name]]
        if not tables[name] and not (name == "attention" and data["attention"]):
            parts.append(f'<p class="note">{esc(_empty_note(name, data))}</p>')
        body.append("".join(parts) + "</section>")
    first = data["systems"][0]
    headline = " · ".join(
        f"{_name(data, m)} {_score(first['scores'][m])}" for m in data["settings"]["metrics"]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>nmt evaluation: {esc(data['hyp'])}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(_title(data))}</h1>"
        f"<p>{esc(headline)} · {data['sentences']:,} sentences · "
        f"{esc(data['manifest']['created'])}</p></header><nav>{nav}</nav>"
        f"<main>{''.join(body)}</main></body></html>\n"
    )
