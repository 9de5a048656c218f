"""The torchrun exit abort (issue 20): the crash-and-resume test run many times in a row.

    python bench/exit_abort.py [runs=50] [tests="crashed or identical_parameters"]
        [label=current] [faulthandler=false] [stop_at_abort=false]
        [json=bench/results/<date>-exit-abort-<label>.json]

Each run is one `pytest tests/distributed/test_ddp.py -k TESTS` in a process of its own (three
torchrun jobs of two processes: the reference run, the injected crash, the resume). A run
counts as an abort when any torchrun process printed "terminate called without an active
exception" or torchrun reported a rank killed by SIGABRT/SIGSEGV (test_ddp's helper fails the
test on the first; the second is counted from pytest's output). `label` names what was run
(the commit's code, or a variant patched in by hand to compare with). faulthandler=true sets
PYTHONFAULTHANDLER=1 for every process, so an aborting one prints its Python threads' stacks;
each run keeps the 40 lines of output from the first abort line on; stop_at_abort=true ends
the series at the first run with an abort (to read its stacks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from kvargs import parse_kv
from speed_common import HERE, cpu_info, load, write_results

DEFAULTS = {
    "runs": "50",
    "tests": "crashed or identical_parameters",
    "label": "current",
    "faulthandler": "false",
    "stop_at_abort": "false",
    "json": "",
}
ABORT = re.compile(r"terminate called without an active exception|Signal 6|SIGABRT|SIGSEGV")


def one_run(tests: str, faulthandler: bool) -> dict:
    test_file = HERE.parent / "tests" / "distributed" / "test_ddp.py"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    env = dict(os.environ, **({"PYTHONFAULTHANDLER": "1"} if faulthandler else {}))
    start = time.monotonic()
    proc = subprocess.run(
        [*command, "-k", tests],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    output = proc.stdout + proc.stderr
    lines = output.strip().splitlines()
    hits = [i for i, line in enumerate(lines) if ABORT.search(line)]
    return {
        "rc": proc.returncode,
        "wall_s": round(time.monotonic() - start, 1),
        "aborts": len(ABORT.findall(output)),
        "summary": lines[-1] if lines else "",
        # what the aborting process printed, as pytest shows torchrun's stderr (a few lines)
        "abort_lines": sorted({lines[i].strip()[:200] for i in hits})[:5],
        "context": lines[hits[0] : hits[0] + 40] if hits else [],
        "load_end": load(),
    }


def main() -> None:
    args = parse_kv(sys.argv[1:], DEFAULTS)
    runs = []
    for i in range(int(args["runs"])):
        run = one_run(args["tests"], args["faulthandler"] == "true")
        runs.append(run)
        print(
            f"run {i + 1:3d}: rc {run['rc']}  aborts {run['aborts']}  {run['summary']}", flush=True
        )
        if run["aborts"] and args["stop_at_abort"] == "true":
            print("\n".join(run["context"]))
            break
    aborted = sum(r["aborts"] > 0 for r in runs)
    failed = sum(r["rc"] != 0 for r in runs)
    row = {
        "label": args["label"],
        "runs": len(runs),
        "failed": failed,
        "aborted": aborted,
        "other_failures": sum(r["rc"] != 0 and r["aborts"] == 0 for r in runs),
        "median_wall_s": sorted(r["wall_s"] for r in runs)[len(runs) // 2] if runs else 0,
    }
    cpu = cpu_info()
    print(f"\n{cpu['model']} ({cpu['cpus']} CPUs; {' '.join(cpu['flags'])})")
    print("| label | runs | failed | runs with an abort | other failures | median s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {row['label']} | {row['runs']} | {row['failed']} | {row['aborted']} "
        f"| {row['other_failures']} | {row['median_wall_s']} |"
    )
    default = HERE / "results" / f"{date.today()}-exit-abort-{args['label']}.json"
    write_results(Path(args["json"] or default), args, [row], {"runs": runs})


if __name__ == "__main__":
    main()
