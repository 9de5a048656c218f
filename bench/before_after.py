"""Two source trees of nmt side by side: training and decoding speed, alternated in one run.

    python bench/before_after.py before=DIR [after=.] run=RUN input=FILE [rounds=3]
        [threads=2] [sentences=2000] [work=bench/work] [beam=5] [batch=64]
        [after_kernels=auto] [json=bench/results/<date>-before-after.json]

For a change that must not cost speed (a refactor): `before` is a checkout of the old code
(e.g. `git worktree add /tmp/before HEAD~1`), `after` this one. Each round runs, for each
tree in turn (A B, then B A), bench/train_ablation.py's `current` variant (the trainer's
step on real Multi30k batches; needs bench/speed.py stages=prepare) and bench/beam_speed.py
(greedy and beam search of RUN on INPUT: the same weights for both trees), each in a process
of its own with the tree first on PYTHONPATH. `after_kernels` runs the after tree with other
kernels than auto (onednn: the products the code before nmt/kernels ran on every machine, to
tell a refactor's cost from a changed choice of kernels). The table gives the medians and
after ÷ before.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvargs import parse_kv
from speed_common import HERE, cpu_info, load, write_results

DEFAULTS = {
    "before": "",
    "after": str(HERE.parent),
    "run": "",
    "input": "",
    "rounds": "3",
    "threads": "2",
    "sentences": "2000",
    "work": str(HERE / "work"),
    "beam": "5",
    "batch": "64",
    "after_kernels": "auto",  # the after tree's `kernels` (onednn: the old code's products)
    "json": str(HERE / "results" / f"{time.strftime('%Y-%m-%d')}-before-after.json"),
}


def _run(tree: Path, script: str, args: list[str], threads: int) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(tree / "bench" / script), *args]
    return subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True).stdout


VARIANTS = {"auto": "current", "blas": "blas-matmul", "onednn": "onednn-matmul", "plain": "plain"}


def measure(tree: Path, kernels: str | None, a: dict) -> dict:
    """One training and one decoding measurement of `tree`, with `kernels` (None: a tree
    from before the kernels key, run as it is)."""
    variant = VARIANTS[kernels or "auto"]
    threads = int(a["threads"])
    train = _run(
        tree,
        "train_ablation.py",
        [
            f"variant={variant}",
            f"work={a['work']}",
            f"sentences={a['sentences']}",
            f"threads={threads}",
        ],
        threads,
    )
    out = {"train": json.loads(train.strip().splitlines()[-1])}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "decode.json"
        _run(
            tree,
            "beam_speed.py",
            [
                f"run={a['run']}",
                f"input={a['input']}",
                f"json={report}",
                f"beams={a['beam']}",
                f"batches={a['batch']}",
                f"threads={threads}",
                *([f"kernels={kernels}"] if kernels else []),
            ],
            threads,
        )
        rows = json.loads(report.read_text())["results"]
    out["decode"] = {r["strategy"]: r["sentences_per_s"] for r in rows}
    out["load"] = load()
    return out


def main(argv: list[str]) -> None:
    a = parse_kv(argv, DEFAULTS)
    if not (a["before"] and a["run"] and a["input"]):
        sys.exit("error: before=DIR run=RUN input=FILE are required (see the docstring)")
    trees = {"before": Path(a["before"]).resolve(), "after": Path(a["after"]).resolve()}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    print(f"cpu: {cpu_info()}; load {load()}", flush=True)
    for r in range(int(a["rounds"])):
        for name in list(trees) if r % 2 == 0 else list(trees)[::-1]:
            kernels = a["after_kernels"] if name == "after" else None
            runs[name].append(measure(trees[name], kernels, a))
            print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
    rows = {
        "train tokens/s": lambda m: m["train"]["tokens_per_s"],
        "train peak RSS MB": lambda m: m["train"]["peak_rss_mb"],
        "greedy sentences/s": lambda m: m["decode"]["greedy"],
        f"beam {a['beam']} sentences/s": lambda m: m["decode"][f"beam{a['beam']}"],
    }
    table = []
    print(f"\n{'':<22} {'before':>9} {'after':>9} {'after ÷ before':>15}")
    for label, get in rows.items():
        before, after = (statistics.median(get(m) for m in runs[n]) for n in trees)
        table.append({"row": label, "before": before, "after": after, "ratio": after / before})
        print(f"{label:<22} {before:9.1f} {after:9.1f} {after / before:15.3f}")
    write_results(a["json"], a, table, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
