"""Load on nmt-serve from a bounded loopback client, against nmt-translate on the same sentences.

    python bench/serve_load.py run=DIR input=FILE [limit=512] [concurrency=1,8,32]
        [requests=512] [per_request=1] [beam_size=1] [alpha=0.0] [threads=auto] [device=cpu]
        [max_wait_ms=5] [max_batch=64] [continuous=true] [spin=] [json=bench/results/DATE-serve-load.json]

A benchmark, not a test; run it on a quiet machine. It measures, on the first `limit`
non-blank lines of `input`:

- the CLI: `nmt-translate` on all of them as a subprocess (wall time, model load included),
  and its code path (Translator.translate_text, the model loaded, decode.batch_size 64) in
  this process: batched sentences/s (all of them at once: sorted by length into batches of
  64), in batches of C sentences in arrival order for each concurrency C (the most a server
  can reach that gets C one-sentence requests at a time and batches them perfectly), and
  each sentence alone (per-sentence latency);
- the server: `nmt-serve` started as a subprocess on a free loopback port; at each
  concurrency C, `requests` POST /translate requests of `per_request` sentences each, C at a
  time (an httpx.AsyncClient with C connections, a semaphore of C), after a warm-up:
  sentences/s, p50/p99 latency per request, model calls made (/health);
- the server's peak RSS (VmHWM) idle after the warm-up and after all the load.

continuous=true|false sets serve.continuous (greedy requests join the rows decoding between
steps, or are batched whole); continuous=true,false runs a server of each, one after the
other, in the same run (the goals are the first one's). spin=N[,M] runs each server also with
GOMP_SPINCOUNT=N (how long OpenMP's idle workers spin; empty: as nmt-serve sets it).

Goals (issue 21): server at C=32 >= 0.8 x the batched CLI's sentences/s; p99 at C=1 <= 2 x
a single CLI translation (its p99, model loaded); peak RSS under load <= 1.3 x idle. Also
reported: the server at C ÷ the CLI in batches of C (what the server loses to HTTP, JSON and
imperfect batching), and per level the CPU time a request costs the client (this process),
the server's main thread (its event loop) and its other threads (the model), with the cores
busy on average. The table goes to stdout, everything to the JSON. The client shares the
machine with the server: at high concurrency it takes some of the CPU the server would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from kvargs import parse_kv
from speed_common import cpu_info

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DEFAULTS = {
    "run": "",
    "input": "",
    "limit": "512",
    "concurrency": "1,8,32",
    "requests": "512",  # per concurrency level: 16 rounds of 32
    "per_request": "1",  # sentences per request
    "beam_size": "1",
    "alpha": "0.0",
    "threads": "auto",
    "device": "cpu",
    "max_wait_ms": "5",
    "max_batch": "64",
    "continuous": "true",
    "spin": "",
    "json": "",
}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def decode_overrides(args: dict) -> list[str]:
    beam = int(args["beam_size"])
    strategy = "beam" if beam > 1 else "greedy"
    return [f"decode={strategy}", f"decode.beam_size={beam}", f"decode.alpha={args['alpha']}"]


def cli_subprocess(args: dict, lines: list[str], work: Path) -> dict:
    """nmt-translate on every line, as a user runs it: wall time with start-up."""
    src, out = work / "input.txt", work / "output.txt"
    src.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    command = [
        str(BIN / "nmt-translate"),
        f"run={args['run']}",
        f"input={src}",
        f"output={out}",
        f"device={args['device']}",
        f"threads={args['threads']}",
        *decode_overrides(args),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=3600)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "sentences_per_s": round(len(lines) / seconds, 2)}


def cli_in_process(args: dict, lines: list[str], sizes: list[int]) -> dict:
    """nmt-translate's code path with the model loaded: batched, in arrival-order batches of
    each size in sizes, then each sentence alone."""
    from nmt.translator import Translator

    translator = Translator.load(args["run"], device=args["device"], threads=args["threads"])
    beam = int(args["beam_size"])
    options = {"beam_size": beam, "alpha": float(args["alpha"]), "batch_size": 64}
    options["strategy"] = "beam" if beam > 1 else "greedy"
    translator.translate_text(lines[:8], **options)  # warm-up
    start = time.perf_counter()
    translator.translate_text(lines, **options)
    batched = time.perf_counter() - start
    in_batches = {}
    for size in sizes:
        start = time.perf_counter()
        for i in range(0, len(lines), size):
            translator.translate_text(lines[i : i + size], **options)
        in_batches[str(size)] = round(len(lines) / (time.perf_counter() - start), 2)
    alone = []
    for line in lines:
        start = time.perf_counter()
        translator.translate_text([line], **options)
        alone.append(time.perf_counter() - start)
    return {
        "batched_seconds": round(batched, 3),
        "batched_sentences_per_s": round(len(lines) / batched, 2),
        "in_batches_of_sentences_per_s": in_batches,
        "single_p50_ms": round(1000 * percentile(alone, 50), 2),
        "single_p99_ms": round(1000 * percentile(alone, 99), 2),
    }


def rss_kb(pid: int, field: str) -> int:
    """VmRSS or VmHWM (peak) of a process, in kB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


class Server:
    """nmt-serve in a subprocess on a free loopback port; stopped by SIGTERM on exit."""

    def __init__(self, args: dict, continuous: str, spin: str) -> None:
        self.env = {**os.environ, **({"GOMP_SPINCOUNT": spin} if spin else {})}
        self.command = [
            str(BIN / "nmt-serve"),
            f"run={args['run']}",
            "port=0",
            f"device={args['device']}",
            f"threads={args['threads']}",
            f"serve.max_wait_ms={args['max_wait_ms']}",
            f"serve.max_batch={args['max_batch']}",
            f"serve.continuous={continuous}",
            f"serve.max_sentences={max(int(args['per_request']), 64)}",
            *decode_overrides(args),
        ]

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.command, stderr=subprocess.PIPE, text=True, env=self.env)
        found, seen, deadline = None, [], time.monotonic() + 300
        while found is None:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                sys.exit(f"error: nmt-serve did not start: {''.join(seen)[-2000:]}")
            seen.append(line)
            found = re.search(r"at (http://[^\s/]+)", line)
        self.url = found.group(1)
        # drain stderr so the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cpu_s(pid: int, tid: int | None = None) -> float:
    """CPU seconds (user + system) a process, or one of its threads, has used."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> dict[str, float]:
    """The server's CPU seconds: its main thread (the event loop: HTTP, JSON, validation)
    and the rest (the model thread and torch's threads), and each thread's by thread id."""
    total, loop = cpu_s(pid), cpu_s(pid, pid)
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            threads[int(task.name)] = cpu_s(pid, int(task.name))
    return {"loop": loop, "model": total - loop, "threads": threads}


async def load_level(url: str, bodies: list[dict], concurrency: int, pid: int) -> dict:
    """Send bodies, concurrency at a time; per-request latencies, the wall time, and the CPU
    time per request of the client (this process) and of the server's loop and model."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(body: dict) -> None:
            async with gate:
                start = time.perf_counter()
                response = await client.post("/translate", json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        await asyncio.gather(*(one(b) for b in bodies[: 2 * concurrency]))  # warm-up
        latencies.clear()
        calls_before = (await client.get("/health")).json()["batches"]
        cpu_before, client_before = server_cpu(pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        seconds = time.perf_counter() - start
        client_cpu = time.process_time() - client_before
        after = server_cpu(pid)
        cpu = {k: after[k] - cpu_before[k] for k in ("loop", "model")}
        # the busiest threads other than the loop: the model thread, then torch's workers
        # (one model thread and no busy worker: decoding ran on 1 thread)
        busiest = sorted(
            (
                after["threads"][t] - cpu_before["threads"].get(t, 0.0)
                for t in after["threads"]
                if t != pid
            ),
            reverse=True,
        )[:3]
        health = (await client.get("/health")).json()
    sentences = sum(len(b["sentences"]) for b in bodies)
    return {
        "concurrency": concurrency,
        "requests": len(bodies),
        "sentences": sentences,
        "seconds": round(seconds, 3),
        "sentences_per_s": round(sentences / seconds, 2),
        "p50_ms": round(1000 * percentile(latencies, 50), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "model_calls": health["batches"] - calls_before,
        "largest_batch": health["largest_batch"],
        "cpu_ms_per_request": {
            "client": round(1000 * client_cpu / len(bodies), 2),
            "server_loop": round(1000 * cpu["loop"] / len(bodies), 2),
            "server_model": round(1000 * cpu["model"] / len(bodies), 2),
            "busiest_model_threads": [round(1000 * t / len(bodies), 2) for t in busiest],
        },
        "cpu_use": round((client_cpu + cpu["loop"] + cpu["model"]) / seconds, 2),  # cores busy
    }


def serve_load(args: dict, lines: list[str], continuous: str, spin: str) -> dict:
    per, n = int(args["per_request"]), int(args["requests"])
    bodies = [
        {"sentences": [lines[(i * per + j) % len(lines)] for j in range(per)]} for i in range(n)
    ]
    with Server(args, continuous, spin) as server:
        pid = server.proc.pid
        asyncio.run(load_level(server.url, bodies[:4], 1, pid))  # first requests: lazy set-up
        idle = {
            "rss_kb": rss_kb(server.proc.pid, "VmRSS"),
            "hwm_kb": rss_kb(server.proc.pid, "VmHWM"),
        }
        levels = [
            asyncio.run(load_level(server.url, bodies, int(c), pid))
            for c in args["concurrency"].split(",")
        ]
        loaded = {
            "rss_kb": rss_kb(server.proc.pid, "VmRSS"),
            "hwm_kb": rss_kb(server.proc.pid, "VmHWM"),
        }
    label = f"continuous={continuous}" + (f" GOMP_SPINCOUNT={spin}" if spin else "")
    return {
        "continuous": continuous,
        "spin": spin,
        "label": label,
        "idle": idle,
        "under_load": loaded,
        "levels": levels,
    }


def table(report: dict) -> str:
    cli, server = report["cli"], report["server"]
    rows = [
        "| client | sentences/s | p50 ms | p99 ms | model calls | CPU ms a request: client / loop / model (its busiest threads) | cores busy |",
        "|---|---:|---:|---:|---:|---|---:|",
        f"| nmt-translate (subprocess, load included) | {cli['subprocess']['sentences_per_s']} | | | |",
        f"| CLI code path, batched, model loaded | {cli['in_process']['batched_sentences_per_s']} | | | |",
        *(
            f"| CLI code path, batches of {size} in arrival order | {rate} | | | |"
            for size, rate in cli["in_process"]["in_batches_of_sentences_per_s"].items()
        ),
        f"| CLI code path, one sentence at a time | | {cli['in_process']['single_p50_ms']} "
        f"| {cli['in_process']['single_p99_ms']} | |",
    ]
    for level, label, cpu in [
        (level, srv["label"], level["cpu_ms_per_request"])
        for srv in [server, *report["other_servers"]]
        for level in srv["levels"]
    ]:
        rows.append(
            f"| nmt-serve {label}, concurrency {level['concurrency']} | {level['sentences_per_s']} "
            f"| {level['p50_ms']} | {level['p99_ms']} | {level['model_calls']} "
            f"| {' / '.join(str(cpu[k]) for k in ('client', 'server_loop', 'server_model'))} "
            f"({' + '.join(str(t) for t in cpu['busiest_model_threads'])}) "
            f"| {level['cpu_use']} |"
        )
    goals = report["goals"]
    rows.append("")
    rows.append(
        f"server C=max / batched CLI: {goals['throughput_ratio']} (goal >= 0.8); "
        f"p99 C=1 / single CLI p99: {goals['latency_ratio']} (goal <= 2); "
        f"peak RSS loaded / idle: {goals['rss_ratio']} (goal <= 1.3)"
    )
    rows.append(
        "server at C / CLI in batches of C: "
        + ", ".join(f"C={c}: {r}" for c, r in goals["server_over_batches_of_c"].items())
    )
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    args = parse_kv(argv, DEFAULTS)
    for key in ("run", "input"):
        if not args[key]:
            sys.exit(f"error: {key}=... is required (see the docstring of {__file__})")
    sys.path.insert(0, str(HERE.parent))
    from nmt.data.corpus import read_lines

    lines = [x for x in read_lines(args["input"]) if x.strip()][: int(args["limit"])]
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        cli = {"subprocess": cli_subprocess(args, lines, Path(work))}
    per = int(args["per_request"])
    sizes = [int(c) * per for c in args["concurrency"].split(",")]
    cli["in_process"] = cli_in_process(args, lines, sizes)
    server, *others = [
        serve_load(args, lines, c, spin)
        for c in args["continuous"].split(",")
        for spin in args["spin"].split(",")
    ]
    levels = server["levels"]
    ceiling = cli["in_process"]["in_batches_of_sentences_per_s"]
    one = next((x for x in levels if x["concurrency"] == 1), levels[0])
    goals = {
        "throughput_ratio": round(
            levels[-1]["sentences_per_s"] / cli["in_process"]["batched_sentences_per_s"], 3
        ),
        "latency_ratio": round(one["p99_ms"] / cli["in_process"]["single_p99_ms"], 3),
        "rss_ratio": round(server["under_load"]["hwm_kb"] / server["idle"]["hwm_kb"], 3),
        "server_over_batches_of_c": {
            str(x["concurrency"]): round(
                x["sentences_per_s"] / ceiling[str(x["concurrency"] * per)], 3
            )
            for x in levels
        },
    }
    report = {
        "date": datetime.date.today().isoformat(),
        "run": str(Path(args["run"]).resolve()),
        "input": str(Path(args["input"]).resolve()),
        "sentences": len(lines),
        "args": args,
        "cpu": cpu_info(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "cli": cli,
        "server": server,
        "other_servers": others,
        "goals": goals,
    }
    print(
        f"cpu: {report['cpu']['model']}, {report['cpu']['cpus']} CPUs, flags {' '.join(report['cpu']['flags'])}"
    )
    print(table(report))
    out = Path(args["json"] or HERE / "results" / f"{report['date']}-serve-load.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"json: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
