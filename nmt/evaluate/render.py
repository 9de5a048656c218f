"""The one rendering stack of every report: a `Page` of sections, each a list of blocks
(`Table`, `Figure`, `Code`, `Note`), written as GitHub-flavoured Markdown and as one
self-contained HTML page.

Both formats show the same sections in the same order; the HTML embeds its images as base64
data URIs and its CSS inline, so the single file can be mailed or archived. A report only
says what is on its page (nmt/evaluate/sections.py for nmt-evaluate, nmt/analysis/report.py
for nmt-analyze); how a table, a figure or a note looks is decided here, once.
"""

from __future__ import annotations

import base64
import html as _html
import re
from dataclasses import dataclass, field
from pathlib import Path


def num(value: float | None, digits: int = 2) -> str:
    """A number for a table cell, "–" for a missing one."""
    return "–" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    """A share as a percentage for a table cell, "–" for a missing one."""
    return "–" if value is None else f"{100 * value:.1f}%"


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (and on one line)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def esc(text) -> str:
    """Text safe inside HTML, attribute values included."""
    return _html.escape(str(text), quote=True)


# -- the blocks a section is made of -----------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A captioned table of plain-text cells."""

    caption: str
    header: list[str]
    rows: list[list[str]]
    mono: bool = False  # HTML: monospace text cells (hashes, commits)


@dataclass(frozen=True)
class Caption:
    """A figure's caption, written in each format's markup."""

    markdown: str
    html: str

    @classmethod
    def text(cls, text: str) -> Caption:
        """The same plain text in both formats, escaped for each."""
        return cls(md_cell(text), esc(text))


@dataclass(frozen=True)
class Figure:
    """A PNG beside the report: linked from the Markdown, embedded in the HTML."""

    image: str | None  # file name in the report's folder (None: not drawn)
    alt: str
    caption: Caption | None = None


@dataclass(frozen=True)
class Code:
    """JSON text: a fenced block in Markdown, a collapsed <details> in HTML."""

    label: str  # lower case; Markdown capitalises its first letter
    text: str
    markdown: bool = True  # False: on the HTML page only


@dataclass(frozen=True)
class Note:
    """A line saying why a section is empty, or what to set to fill it."""

    text: str
    markdown: bool = True  # False: on the HTML page only


Block = Table | Figure | Code | Note


@dataclass
class Section:
    """One section: its anchor (HTML id), its heading and its blocks in order."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Page:
    """A whole report: the page title, the heading, the line under it, the sections."""

    title: str  # HTML <title>
    heading: str  # the # heading / <h1>
    subtitle: str  # HTML only: the header's line of key numbers
    sections: list[Section]


# -- Markdown ----------------------------------------------------------------------------------


def md_table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [
        f"**{md_cell(caption)}**",
        "",
        "| " + " | ".join(map(md_cell, header)) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(map(md_cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_block(block: Block) -> list[str]:
    """The block's paragraphs (each ends in a newline; the page puts a blank line between)."""
    if isinstance(block, Table):
        return [md_table(block.caption, block.header, block.rows)]
    if isinstance(block, Figure):
        parts = [block.caption.markdown + "\n"] if block.caption else []
        if block.image:
            parts.append(f"![{md_cell(block.alt)}]({block.image})\n")
        return parts
    if not block.markdown:
        return []
    if isinstance(block, Code):
        label = block.label[:1].upper() + block.label[1:]
        return [f"{label}:\n\n```json\n{block.text}\n```\n"]
    return [block.text + "\n"]


def markdown(page: Page) -> str:
    """The page as GitHub-flavoured Markdown; images are the PNGs beside the file."""
    parts = [f"# {page.heading}\n"]
    for section in page.sections:
        parts.append(f"## {section.title}\n")
        for block in section.blocks:
            parts += _md_block(block)
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
    """The PNG at path as an <img> with a data URI, or a note that it is missing."""
    if path is None or not Path(path).is_file():
        return f'<p class="note">{esc(alt)}: image missing</p>'
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'


def _html_block(block: Block, folder: Path) -> str:
    if isinstance(block, Table):
        return html_table(block.caption, block.header, block.rows, block.mono)
    if isinstance(block, Figure):
        caption = f"<figcaption>{block.caption.html}</figcaption>" if block.caption else ""
        image = img(folder / block.image if block.image else None, block.alt)
        return f"<figure>{caption}{image}</figure>"
    if isinstance(block, Code):
        return (
            f"<details><summary>{esc(block.label)}</summary><pre>{esc(block.text)}</pre></details>"
        )
    return f'<p class="note">{esc(block.text)}</p>'


def html(page: Page, folder: Path) -> str:
    """The page as one HTML file; folder holds the PNGs its figures name, embedded here."""
    nav = "".join(f'<a href="#{s.key}">{esc(s.title)}</a>' for s in page.sections)
    body = "".join(
        f'<section id="{s.key}"><h2>{esc(s.title)}</h2>'
        + "".join(_html_block(b, Path(folder)) for b in s.blocks)
        + "</section>"
        for s in page.sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(page.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(page.heading)}</h1><p>{esc(page.subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
