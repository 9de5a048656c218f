"""Training speed idle and beside busy processes, per thread setting (issue 23: measure first).

    python bench/under_load.py [work=bench/work] [sentences=1000] [rounds=2] [busy=1]
        [settings=t2,t1,t2-passive,t2-spin0] [json=bench/results/<date>-under-load.json]

Each setting runs bench/train_ablation.py's `current` variant (the trainer's step on real
Multi30k batches; needs bench/speed.py stages=prepare) in a process of its own, idle and then
beside `busy` processes that spin a core each (`while True: pass`), rounds alternating the
order. Settings: tN = N torch threads; -passive adds OMP_WAIT_POLICY=PASSIVE (OpenMP threads
sleep at once instead of spinning after a parallel region); -spin0, -spin10k add
GOMP_SPINCOUNT=0 or 10000 (libgomp, which torch's CPU wheels use, spins 300,000 times by default).
The table gives median tokens/s idle and loaded and loaded ÷ idle.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from kvargs import parse_kv
from speed_common import HERE, cpu_info, load, write_results

DEFAULTS = {
    "work": str(HERE / "work"),
    "sentences": "1000",
    "rounds": "2",
    "busy": "1",
    "settings": "t2,t1,t2-passive,t2-spin0",
    "json": str(HERE / "results" / f"{time.strftime('%Y-%m-%d')}-under-load.json"),
}
EXTRA_ENV = {
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin0": {"GOMP_SPINCOUNT": "0"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
}


def train(setting: str, a: dict) -> float:
    """tokens/s of one train_ablation `current` run under this setting."""
    threads, *extra = setting.removeprefix("t").split("-")
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    for name in extra:
        env.update(EXTRA_ENV[name])
    cmd = [sys.executable, str(HERE / "train_ablation.py"), "variant=current"]
    cmd += [f"work={a['work']}", f"sentences={a['sentences']}", f"threads={threads}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["tokens_per_s"]


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv: list[str]) -> None:
    a = parse_kv(argv, DEFAULTS)
    settings = a["settings"].split(",")
    runs: dict[str, dict[str, list[float]]] = {s: {"idle": [], "loaded": []} for s in settings}
    print(f"cpu: {cpu_info()}; load {load()}", flush=True)
    for r in range(int(a["rounds"])):
        for state in ("idle", "loaded") if r % 2 == 0 else ("loaded", "idle"):
            spinners = busy(int(a["busy"])) if state == "loaded" else []
            try:
                for setting in settings:
                    runs[setting][state].append(train(setting, a))
                    print(
                        f"round {r + 1} {state} {setting}: {runs[setting][state][-1]}", flush=True
                    )
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
    table = []
    print(f"\n{'setting':<12} {'idle tok/s':>10} {'loaded tok/s':>12} {'loaded ÷ idle':>13}")
    for setting, r in runs.items():
        idle, loaded = statistics.median(r["idle"]), statistics.median(r["loaded"])
        table.append({"setting": setting, "idle": idle, "loaded": loaded, "ratio": loaded / idle})
        print(f"{setting:<12} {idle:10.0f} {loaded:12.0f} {loaded / idle:13.2f}")
    write_results(a["json"], a, table, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
