"""Training and decoding speed idle and beside busy processes, per thread setting (issue 23).

    python bench/under_load.py [task=train|decode] [work=bench/work] [sentences=1000]
        [rounds=2] [busy=1] [settings=t2,t1,t2-passive,t2-spin0]
        [run=DIR] [checkpoint=best] [input=FILE] [limit=300] [beams=5]
        [json=bench/results/<date>-under-load[-decode].json]

task=train runs bench/train_ablation.py's `current` variant (the trainer's step on real
Multi30k batches; needs bench/speed.py stages=prepare): target tokens/s. task=decode runs
bench/beam_speed.py on a trained run (greedy and beam `beams`, batch 64, the first `limit`
lines of `input`): sentences/s. Each setting runs in a process of its own, idle and then
beside `busy` processes that spin a core each (`while True: pass`), rounds alternating the
order. Settings: tN = N torch threads, tauto = threads=auto (decoding: the count tuned batch
by batch, nmt/kernels/threads.py); -passive adds OMP_WAIT_POLICY=PASSIVE (OpenMP threads
sleep at once instead of spinning after a parallel region); -spinN adds GOMP_SPINCOUNT=N
(N a count, k for thousands: spin0, spin1k, spin10k; libgomp, which torch's CPU wheels use,
spins 300,000 times by default).
The table gives the median of each figure idle and loaded and loaded ÷ idle.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from kvargs import parse_kv
from speed_common import HERE, busy, cpu_info, load, write_results

DEFAULTS = {
    "task": "train",
    "work": str(HERE / "work"),
    "sentences": "1000",
    "rounds": "2",
    "busy": "1",
    "settings": "t2,t1,t2-passive,t2-spin0",
    "run": "",
    "checkpoint": "best",  # decode: best | last | PATH (beam_speed.py's)
    "input": os.path.join(
        os.environ.get("NMT_MULTI30K", "../shared/data/multi30k"), "test_2016_flickr.de.gz"
    ),
    "limit": "300",
    "beams": "5",
    "json": "",
}


def extra_env(name: str) -> dict[str, str]:
    """The environment a setting's suffix adds: passive, or spinN / spinNk."""
    if name == "passive":
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    spin = re.fullmatch(r"spin(\d+)(k?)", name)
    if spin is None:
        sys.exit(f"error: setting suffix -{name}: expected -passive or -spinN (e.g. -spin1k)")
    return {"GOMP_SPINCOUNT": str(int(spin[1]) * (1000 if spin[2] else 1))}


def environment(setting: str) -> tuple[str, dict[str, str]]:
    """A setting's thread count (a number or auto) and the environment it runs in."""
    threads, *extra = setting.removeprefix("t").split("-")
    env = dict(os.environ)
    if threads != "auto":
        env["OMP_NUM_THREADS"] = threads
    for name in extra:
        env.update(extra_env(name))
    return threads, env


def train(setting: str, a: dict) -> dict[str, float]:
    """Target tokens/s of one train_ablation `current` run under this setting."""
    threads, env = environment(setting)
    cmd = [sys.executable, str(HERE / "train_ablation.py"), "variant=current"]
    cmd += [f"work={a['work']}", f"sentences={a['sentences']}", f"threads={threads}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return {"train tok/s": json.loads(out.strip().splitlines()[-1])["tokens_per_s"]}


def decode(setting: str, a: dict) -> dict[str, float]:
    """Greedy and beam sentences/s of one beam_speed run under this setting."""
    threads, env = environment(setting)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "speed.json")
        cmd = [sys.executable, str(HERE / "beam_speed.py"), f"run={a['run']}"]
        cmd += [f"input={a['input']}", f"json={out}", f"beams={a['beams']}", "batches=64"]
        cmd += [f"limit={a['limit']}", f"threads={threads}", f"checkpoint={a['checkpoint']}"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        with open(out) as f:
            rows = json.load(f)["results"]
    return {f"{r['strategy']} sent/s": r["sentences_per_s"] for r in rows}


def main(argv: list[str]) -> None:
    a = parse_kv(argv, DEFAULTS)
    if a["task"] not in ("train", "decode") or (a["task"] == "decode" and not a["run"]):
        sys.exit("error: task=train, or task=decode with run=DIR (a trained run directory)")
    name = "under-load" if a["task"] == "train" else "under-load-decode"
    a["json"] = a["json"] or str(HERE / "results" / f"{time.strftime('%Y-%m-%d')}-{name}.json")
    measure = train if a["task"] == "train" else decode
    settings = a["settings"].split(",")
    runs: dict[str, dict[str, list[dict]]] = {s: {"idle": [], "loaded": []} for s in settings}
    print(f"cpu: {cpu_info()}; load {load()}", flush=True)
    for r in range(int(a["rounds"])):
        for state in ("idle", "loaded") if r % 2 == 0 else ("loaded", "idle"):
            with busy(int(a["busy"]) if state == "loaded" else 0):
                for setting in settings:
                    runs[setting][state].append(measure(setting, a))
                    print(
                        f"round {r + 1} {state} {setting}: {runs[setting][state][-1]}", flush=True
                    )
    table = []
    print(f"\n{'setting':<14} {'figure':<16} {'idle':>8} {'loaded':>8} {'loaded ÷ idle':>13}")
    for setting, r in runs.items():
        for figure in r["idle"][0]:
            idle = statistics.median(x[figure] for x in r["idle"])
            loaded = statistics.median(x[figure] for x in r["loaded"])
            row = {"setting": setting, "figure": figure, "idle": idle, "loaded": loaded}
            table.append({**row, "ratio": loaded / idle})
            print(f"{setting:<14} {figure:<16} {idle:8.1f} {loaded:8.1f} {loaded / idle:13.2f}")
    write_results(a["json"], a, table, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
