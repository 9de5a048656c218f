"""Corpora of millions of pairs (issue 19): preparation speed and memory, start-up time, and
training memory and speed against corpus size, for the prepared (mapped) path and today's.

    python bench/scale.py [sizes=30000,300000,3000000] [updates=200] [baseline=REF]
        [multi30k=../shared/data/multi30k] [work=bench/work/scale]
        [json=bench/results/DATE-scale.json] [png=bench/results/DATE-scale.png]

The corpora are generated here (nothing is downloaded): pair i joins 1 or 2 random Multi30k
de-en training captions, the same ones on both sides, so every size has the same length
distribution (about 19 words a sentence) and no size repeats one sentence list. For each size:

- `nmt-prepare` with workers=1 and workers=2: pairs/s, its phases (read, SentencePiece,
  encode) and peak RSS;
- `nmt-train data=prepared` for `updates` updates: seconds from the process start to the first
  update (metrics.csv polled, train.log_every=1), peak RSS, median tokens/s after update 20;
- the baseline, the same training on the raw files by the nmt of git ref `baseline` (checked out
  into work/baseline; the in-memory reader this issue replaces), where it finishes.

Every run is a subprocess measured alone (wait4's ru_maxrss); nothing else may run meanwhile.
The model is smaller than the comparison model (256 units) so that 200 updates take minutes:
its memory is smaller too, which makes the corpus's share of the peak RSS larger, not smaller.
A benchmark, not a test: with the default sizes it takes about 40 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kvargs import parse_kv
from speed_common import cpu_info, load, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
DEFAULTS = {
    "sizes": "30000,300000,3000000",
    "updates": "200",
    "baseline": "61e57cd",
    "multi30k": str(ROOT.parent / "shared" / "data" / "multi30k"),
    "work": str(HERE / "work" / "scale"),
    "json": "",
    "png": "",
}
MODEL = [
    "model=gru",
    "model.emb_size=256",
    "model.hidden_size=256",
    "model.dec_hidden_size=256",
    "attention.size=256",
    "data.batch_tokens=4096",
    "optim.scheduler=none",
    "train.max_epochs=0",
    "train.valid_every=100000",  # no validation inside the measured updates
    "train.log_every=1",
    "train.save_every=0",
    "progress=false",
    "device=cpu",
    "seed=1",
]


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def generate(folder: Path, pairs: int, multi30k: Path) -> str:
    """folder/train.{de,en} of `pairs` recombined captions (written once), folder/val.*."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / "train"
    if not (folder / "done").is_file():
        de, en = _lines(multi30k / "train.de.gz"), _lines(multi30k / "train.en.gz")
        rng = random.Random(pairs)
        with (
            open(f"{prefix}.de", "w", encoding="utf-8") as fd,
            open(f"{prefix}.en", "w", encoding="utf-8") as fe,
        ):
            for start in range(0, pairs, 10_000):
                block_de, block_en = [], []
                for _ in range(min(10_000, pairs - start)):
                    picks = rng.choices(range(len(de)), k=1 + (rng.random() < 0.5))
                    block_de.append(" ".join(de[j] for j in picks) + "\n")
                    block_en.append(" ".join(en[j] for j in picks) + "\n")
                fd.write("".join(block_de))
                fe.write("".join(block_en))
        for lang in ("de", "en"):
            (folder / f"val.{lang}").write_text(
                "\n".join(_lines(multi30k / f"val.{lang}.gz")) + "\n"
            )
        (folder / "done").write_text("")
    return str(prefix)


def data_args(folder: Path) -> list[str]:
    return [
        "data=files",
        "data.src=de",
        "data.tgt=en",
        f"data.train={folder / 'train'}",
        f"data.valid={folder / 'val'}",
    ]


def measured(command: list[str], log: Path, env: dict | None = None, first: Path | None = None):
    """Run command alone: wall seconds, peak RSS (MB), and the seconds until `first` (a
    metrics.csv) holds a training row, polled every 20 ms."""
    start = time.perf_counter()
    first_s = None
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = status  # reaped here: Popen must not wait for it again
                break
            if first is not None and first_s is None:
                if first.is_file() and ",train," in first.read_text():
                    first_s = time.perf_counter() - start
                time.sleep(0.02)
            else:
                time.sleep(0.2)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{' '.join(command[:3])} … failed ({code}); see {log}")
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        **({"first_update_s": round(first_s, 2) if first_s else None} if first else {}),
        "load_end": load(),
    }


def rates(run: Path) -> float:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train" and int(r["update"]) > 20]
    return round(statistics.median(float(r["tokens_per_s"]) for r in rows), 1)


# `python -c BOOT TREE ARGS…`: nmt-train as the checkout TREE has it, not the editable install
# (whose import hook would find this checkout's nmt before PYTHONPATH's)
BOOT = (
    "import runpy, sys; tree = sys.argv.pop(1); "
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
    "sys.path.insert(0, tree); import nmt; assert nmt.__file__.startswith(tree), nmt.__file__; "
    "sys.argv[0] = 'nmt-train'; runpy.run_module('nmt.cli.train', run_name='__main__')"
)


def baseline_tree(work: Path, ref: str) -> Path:
    """The nmt of git ref `ref`, checked out as a worktree (removed by `main` at the end)."""
    tree = work / "baseline"
    if not tree.is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
            check=True,
            capture_output=True,
        )
    return tree


def remove_tree(tree: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
    )


def main(argv: list[str]) -> None:
    args = parse_kv(argv, DEFAULTS)
    work = Path(args["work"])
    work.mkdir(parents=True, exist_ok=True)
    updates = int(args["updates"])
    tree = baseline_tree(work, args["baseline"]) if args["baseline"] else None
    try:
        rows, runs = measure(args, work, updates, tree)
    finally:
        if tree is not None:
            remove_tree(tree)
    report(args, rows, runs)


def measure(args: dict, work: Path, updates: int, tree: Path | None) -> tuple[list, dict]:
    """Every size's preparations and trainings: the table's rows and the raw runs."""
    rows, runs = [], {}
    for size in [int(s) for s in args["sizes"].split(",")]:
        folder = work / f"corpus-{size}"
        generate(folder, size, Path(args["multi30k"]))
        row = {
            "pairs": size,
            "input_mb": round(
                sum((folder / f"train.{lang}").stat().st_size for lang in ("de", "en")) / 2**20, 1
            ),
        }
        for workers in (1, 2):
            out = work / f"prepared-{size}-w{workers}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            command = [
                str(BIN / "nmt-prepare"),
                *data_args(folder),
                f"out={out}",
                f"workers={workers}",
                "progress=false",
            ]
            result = measured(command, work / f"prepare-{size}-w{workers}.log")
            header = json.loads((out / "prepared.json").read_text())
            result.update(timings=header["timings"], seconds=header["seconds"])
            runs[f"prepare-{size}-w{workers}"] = result
            row[f"prepare_w{workers}_pairs_per_s"] = round(size / header["seconds"])
            row[f"prepare_w{workers}_s"] = header["seconds"]
            row[f"prepare_w{workers}_rss_mb"] = result["peak_rss_mb"]
            print(
                f"{size:>9,} prepare workers={workers}: {header['seconds']} s "
                f"{header['timings']}, peak RSS {result['peak_rss_mb']} MB",
                flush=True,
            )
        row["prepare_speedup"] = round(row["prepare_w1_s"] / row["prepare_w2_s"], 2)
        prepared = work / f"prepared-{size}-w2"
        variants = [
            ("mapped", [str(BIN / "nmt-train"), "data=prepared", f"data.prepared={prepared}"], None)
        ]
        if tree is not None:
            command = [sys.executable, "-c", BOOT, str(tree), *data_args(folder)]
            variants.append(("baseline", command, None))
        for name, command, env in variants:
            run = work / f"run-{name}-{size}"
            subprocess.run(["rm", "-rf", str(run)], check=True)
            full = [*command, *MODEL, f"train.max_updates={updates}", f"hydra.run.dir={run}"]
            result = measured(full, work / f"train-{name}-{size}.log", env, run / "metrics.csv")
            result["tokens_per_s"] = rates(run)
            runs[f"train-{name}-{size}"] = result
            for key in ("first_update_s", "peak_rss_mb", "tokens_per_s", "wall_s"):
                row[f"{name}_{key}"] = result[key]
            print(
                f"{size:>9,} train {name}: first update {result['first_update_s']} s, "
                f"peak RSS {result['peak_rss_mb']} MB, {result['tokens_per_s']} tok/s",
                flush=True,
            )
        rows.append(row)
    return rows, runs


def report(args: dict, rows: list[dict], runs: dict) -> None:
    """Ratios against the first size, the Markdown table, the JSON and the PNG."""
    base = rows[0]
    for row in rows:
        for name in ("mapped", "baseline"):
            if f"{name}_peak_rss_mb" in row:
                row[f"{name}_rss_ratio"] = round(
                    row[f"{name}_peak_rss_mb"] / base[f"{name}_peak_rss_mb"], 3
                )
        if "baseline_tokens_per_s" in row:
            row["tokens_per_s_ratio"] = round(
                row["mapped_tokens_per_s"] / row["baseline_tokens_per_s"], 3
            )
    print(
        "\n| pairs | prepare 1 worker pairs/s | 2 workers pairs/s | speed-up | prepare RSS MB | "
        "first update s (mapped / today) | peak RSS MB (mapped / today) | RSS ÷ RSS at first size "
        "(mapped / today) | tokens/s (mapped / today) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['pairs']:,} | {r['prepare_w1_pairs_per_s']:,} | {r['prepare_w2_pairs_per_s']:,} | "
            f"{r['prepare_speedup']} | {r['prepare_w2_rss_mb']} | {r['mapped_first_update_s']} / "
            f"{r.get('baseline_first_update_s')} | {r['mapped_peak_rss_mb']} / "
            f"{r.get('baseline_peak_rss_mb')} | {r['mapped_rss_ratio']} / {r.get('baseline_rss_ratio')} | "
            f"{r['mapped_tokens_per_s']} / {r.get('baseline_tokens_per_s')} |"
        )
    stamp = datetime.date.today().isoformat()
    if args["json"]:
        write_results(
            args["json"].replace("DATE", stamp),
            args,
            rows,
            runs,
            {"model": MODEL, "cpu": cpu_info()},
        )
    if args["png"]:
        plot(rows, args["png"].replace("DATE", stamp))


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [r["pairs"] for r in rows]
    ax.plot(sizes, [r["mapped_peak_rss_mb"] for r in rows], "o-", label="prepared, mapped")
    if all("baseline_peak_rss_mb" in r for r in rows):
        ax.plot(sizes, [r["baseline_peak_rss_mb"] for r in rows], "s--", label="in memory (before)")
    ax.set_xscale("log")
    ax.set_xlabel("training pairs")
    ax.set_ylabel("peak RSS of nmt-train (MB)")
    ax.set_title("nmt-train peak memory against corpus size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
