"""bench/speed.py's growth curves as text lines and as work/growth.png."""

from __future__ import annotations

from pathlib import Path

# one line per row of each growth table: (table, format over the row's keys)
GROWTH_LINES = [
    (
        "beam",
        "  beam {beam_size:>2}: {ms_per_sentence:7.2f} ms/sent, "
        "{relative_to_greedy:5.2f}x greedy  (load {load[0]})",
    ),
    ("batch", "  {strategy:>6} batch {batch_size:>3}: {sentences_per_s:7.1f} sent/s"),
    (
        "source_length",
        "  {strategy:>6} source ~{mean_src_tokens:>5} tok: {ms_per_sentence:7.2f} ms/sent",
    ),
    (
        "train_length",
        "  train, target {tgt_tokens:>5} tok: {ms_per_token:.4f} ms/token "
        "({tokens_per_s:.0f} tok/s, load {load[0]})",
    ),
]


def print_growth(gr: dict) -> None:
    print("\ncost growth (ours, batch 64 unless stated):")
    for table, line in GROWTH_LINES:
        for r in gr[table]:
            print(line.format(**r))
    for r in gr.get("joey_beam", []):
        print(f"  JoeyNMT beam {r['beam_size']:>2}: {1000 / r['sentences_per_s']:7.2f} ms/sent")


def plot(gr: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    beam = sorted((r["beam_size"], r["ms_per_sentence"]) for r in gr["beam"])
    ax[0, 0].plot(*zip(*beam, strict=True), "o-", label="ours")
    ax[0, 0].plot([k for k, _ in beam], [beam[0][1] * k for k, _ in beam], ":", label="linear")
    if gr.get("joey_beam"):
        jb = [(r["beam_size"], 1000 / r["sentences_per_s"]) for r in gr["joey_beam"]]
        ax[0, 0].plot(*zip(*jb, strict=True), "s-", label="JoeyNMT")
    ax[0, 0].set(xlabel="beam width", ylabel="ms / sentence", title="decode vs beam width")
    ax[0, 0].legend()
    for strategy in ("greedy", "beam5"):
        pts = [
            (r["batch_size"], r["sentences_per_s"])
            for r in gr["batch"]
            if r["strategy"] == strategy
        ]
        ax[0, 1].plot(*zip(*pts, strict=True), "o-", label=strategy)
        pts = [
            (r["mean_src_tokens"], r["ms_per_sentence"])
            for r in gr["source_length"]
            if r["strategy"] == strategy
        ]
        ax[1, 0].plot(*zip(*pts, strict=True), "o-", label=strategy)
    ax[0, 1].set(
        xscale="log",
        xlabel="batch size (sentences)",
        ylabel="sentences / s",
        title="decode vs batch size",
    )
    ax[1, 0].set(
        xlabel="mean source length (tokens)",
        ylabel="ms / sentence",
        title="decode vs source length (batch 64)",
    )
    labels = [r["tgt_tokens"] for r in gr["train_length"]]
    ax[1, 1].bar(labels, [r["ms_per_token"] for r in gr["train_length"]])
    ax[1, 1].set(
        xlabel="target length band (tokens)",
        ylabel="ms / target token",
        title="training cost vs sentence length (4096-token batches)",
    )
    for a_ in (ax[0, 1], ax[1, 0]):
        a_.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
