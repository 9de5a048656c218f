"""PNG figures for reports: training curves from metrics.csv rows and attention heatmaps.

Figures are built with matplotlib's object API on the Agg canvas, never through pyplot, so
no global backend or figure state is touched and nothing needs a display. matplotlib is
imported when a figure is drawn (about a second): loading a model for translation, which
imports AttentionMap, never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


@dataclass
class AttentionMap:
    """Attention of one translated sentence, ready to plot.

    weights: (T, S) one row per output token (EOS included when produced), one column per
    source token (EOS included), each row summing to 1.
    """

    line: int  # 1-based line of the source file
    weights: np.ndarray  # (T, S)
    src_tokens: list[str]
    tgt_tokens: list[str]
    source: str = ""  # the source sentence as text
    output: str = ""  # the model's translation as text
    note: str = ""  # how the output was produced, e.g. "greedy, checkpoint best"
    image: str = field(default="", compare=False)  # file name once saved


def _figure(**options) -> Figure:
    from matplotlib.figure import Figure

    return Figure(**options)


def _save(fig: Figure, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _series(rows: list[dict], split: str, key: str) -> tuple[list[int], list[float]]:
    points = [
        (r["update"], r[key])
        for r in rows
        if r["split"] == split and r[key] is not None and r["update"] is not None
    ]
    return [p[0] for p in points], [p[1] for p in points]


def training_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss, perplexity (log scale) and validation BLEU against updates, side by side.

    rows are `rundir.read_metrics_csv` rows: split "train" or "valid", update, loss, ppl, bleu.
    """
    fig = _figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, key, label in ((axes[0], "loss", "loss (nats/token)"), (axes[1], "ppl", "perplexity")):
        for split, style in (("train", "-"), ("valid", "o-")):
            x, y = _series(rows, split, key)
            if x:
                ax.plot(x, y, style, label=split, markersize=4, linewidth=1.4)
        ax.set_xlabel("update")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if any(v > 0 for v in _series(rows, "train", "ppl")[1] + _series(rows, "valid", "ppl")[1]):
        axes[1].set_yscale("log")
    x, y = _series(rows, "valid", "bleu")
    if x:
        axes[2].plot(x, y, "o-", color="tab:green", markersize=4, linewidth=1.4)
        best = int(np.argmax(y))
        axes[2].annotate(
            f"best {y[best]:.2f}",
            (x[best], y[best]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=9,
        )
    else:
        axes[2].text(
            0.5, 0.5, "no validation yet", ha="center", va="center", transform=axes[2].transAxes
        )
    axes[2].set_xlabel("update")
    axes[2].set_ylabel("validation BLEU")
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def attention_heatmap(
    weights, src_tokens: list[str], tgt_tokens: list[str], path: str | Path, title: str = ""
) -> Path:
    """Heatmap of weights (T, S): output tokens down, source tokens across, darker = more.

    weights may be a numpy array or a (CPU or GPU) tensor; the token lists label its axes
    and must match its shape.
    """
    matrix = np.asarray(
        weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float
    )
    if matrix.ndim != 2 or matrix.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"attention of shape {matrix.shape} does not match {len(tgt_tokens)} output and "
            f"{len(src_tokens)} source tokens"
        )
    rows, cols = matrix.shape
    fig = _figure(
        figsize=(min(2.5 + 0.38 * cols, 24), min(1.8 + 0.32 * rows, 24)), layout="constrained"
    )
    ax = fig.subplots()
    image = ax.imshow(
        matrix, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest"
    )
    ax.set_xticks(range(cols), labels=src_tokens, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(rows), labels=tgt_tokens, fontsize=9)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)
