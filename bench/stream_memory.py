"""Peak memory of nmt-translate on a large generated input against a small one (issue 20).

    python bench/stream_memory.py [lines=1000000] [small=1000] [run=DIR] [threads=auto]
        [device=cpu] [buffer_size=] [json=bench/results/DATE-stream-memory.json]

nmt-translate streams its input (nmt/data/stream.py): decode.buffer_size lines are read,
translated and written at a time, so its peak RSS should not grow with the input. This runs
`nmt-translate input=FILE output=FILE` (greedy, decode.buffer_size at its default unless
given) as a subprocess on a generated file of `small` lines and on one of `lines` lines and
reads each one's peak RSS from the kernel (wait4's ru_maxrss); goal: large / small <= 1.2.
Without run=, a tiny toy run is trained first with nmt-train (about 10 s): a tiny model is
the point, the memory that can grow is that of the text, not of the weights. The inputs are
short sentences of a 12-word vocabulary (2-6 words, 1 line in 50 blank). A benchmark, not a
test: with the default 1M lines it takes minutes.
"""

from __future__ import annotations

import datetime
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvargs import parse_kv
from speed_common import write_results

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DEFAULTS = {
    "lines": "1000000",
    "small": "1000",
    "run": "",
    "threads": "auto",
    "device": "cpu",
    "buffer_size": "",  # "" = the default of conf/decode/greedy.yaml
    "json": "",
}
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]


def write_input(path: Path, n: int, seed: int = 0) -> int:
    """n generated lines at path; returns its size in bytes. Written in blocks, not held."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            block = []
            for _ in range(min(10_000, n - start)):
                words = [] if rng.random() < 0.02 else rng.sample(WORDS, rng.randint(2, 6))
                block.append(" ".join(words) + "\n")
            f.write("".join(block))
    return path.stat().st_size


def toy_run(folder: Path) -> Path:
    """A tiny run directory trained by nmt-train on toy pairs (target: words reversed)."""
    rng = random.Random(1)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    pairs = [rng.sample(WORDS, rng.randint(2, 5)) for _ in range(200)]
    (data / "train.xx").write_text("".join(" ".join(p) + "\n" for p in pairs))
    (data / "train.yy").write_text("".join(" ".join(w[::-1] for w in p) + "\n" for p in pairs))
    run = folder / "run"
    prefix = data / "train"
    command = [
        str(BIN / "nmt-train"),
        "data=files",
        "data.src=xx",
        "data.tgt=yy",
        f"data.train={prefix}",
        f"data.valid={prefix}",
        "data.vocab_size=300",
        "data.batch_tokens=400",
        "model.emb_size=32",
        "model.hidden_size=32",
        "model.dec_hidden_size=64",
        "attention.size=32",
        "train.max_updates=60",
        "train.valid_every=60",
        "train.max_epochs=0",
        "progress=false",
        "device=cpu",
        f"hydra.run.dir={run}",
    ]
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"nmt-train failed: {proc.stderr[-2000:]}")
    return run


def translate(args: dict, run: Path, src: Path, out: Path) -> dict:
    """Run nmt-translate on src; its peak RSS (MB) from wait4, wall seconds, output lines."""
    command = [
        str(BIN / "nmt-translate"),
        f"run={run}",
        f"input={src}",
        f"output={out}",
        f"threads={args['threads']}",
        f"device={args['device']}",
    ]
    if args["buffer_size"]:
        command.append(f"decode.buffer_size={args['buffer_size']}")
    start = time.perf_counter()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"nmt-translate failed: {proc.stderr.read().decode()[-2000:]}")
    with out.open("rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "seconds": round(seconds, 1),
        "output_lines": lines,
    }


def main(argv: list[str]) -> None:
    args = parse_kv(argv, DEFAULTS)
    with tempfile.TemporaryDirectory(prefix="stream-memory-") as tmp:
        work = Path(tmp)
        run = Path(args["run"]) if args["run"] else toy_run(work)
        rows = []
        for label, n in (("small", int(args["small"])), ("large", int(args["lines"]))):
            src = work / f"{label}.txt"
            size = write_input(src, n, seed=n)
            result = translate(args, run, src, work / f"{label}.hyp")
            assert result["output_lines"] == n, (result, n)
            rows.append({"input": label, "lines": n, "input_mb": round(size / 2**20, 1), **result})
            print(
                f"{label:>5}: {n:>9,} lines ({rows[-1]['input_mb']} MB), peak RSS "
                f"{result['peak_rss_mb']} MB, {result['seconds']} s"
            )
    ratio = round(rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3)
    print(f"peak RSS large / small: {ratio} (goal <= 1.2)")
    if args["json"]:
        stamp = datetime.date.today().isoformat()
        path = args["json"].replace("DATE", stamp)
        write_results(path, args, rows, {}, {"rss_ratio": ratio})


if __name__ == "__main__":
    main(sys.argv[1:])
