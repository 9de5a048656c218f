"""What every stage of bench/speed.py shares: paths, timed runs, the results files, and the
commands that train each toolkit."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
PEER = HERE / "peers" / "joeynmt"
ONMT = HERE / "peers" / "opennmt"  # the second peer, where its venv installs (setup.sh)
OURS_BIN = Path(sys.executable).parent
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}
OURS_MODEL = [
    "model=gru",
    "attention=bahdanau",
    "optim.scheduler=none",
    "optim.clip_norm=1.0",
    "optim.lr=0.001",
    "data.batch_tokens=4096",
]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# the CPU flags that decide which kernels pay: vector width, bf16 and int8 instructions
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """The processor the figures were measured on: model name, cores, and CPU_FLAGS present."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    return {
        "model": model.group(1).strip() if model else "unknown",
        "cpus": len(os.sched_getaffinity(0)),
        "flags": [f for f in CPU_FLAGS if f in have],
    }


def cpu_slug(info: dict) -> str:
    """A short file-name slug of the processor: its model name without trademarks, clock
    and "CPU", then its widest vector unit and AMX (intel-xeon-processor-avx512-amx)."""
    name = re.sub(r"\((r|tm)\)|@.*$|\bcpu\b", " ", info["model"].lower())
    words = re.findall(r"[a-z0-9]+", name)
    flags = set(info["flags"])
    words += ["avx512"] if "avx512f" in flags else ["avx2"] if "avx2" in flags else []
    words += ["amx"] if "amx_bf16" in flags else []
    return "-".join(words) or "unknown"


def env(threads: int) -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    e.pop("CUDA_VISIBLE_DEVICES", None)
    return e


def timed_run(cmd: list[str], log: Path, threads: int, limit_s: float = 0) -> dict:
    """Run cmd under /usr/bin/time -v (and `timeout -s INT` if limit_s): wall, peak RSS, load."""
    rss_file = log.with_suffix(".time")
    wrapped = ["/usr/bin/time", "-v", "-o", str(rss_file)]
    if limit_s:
        wrapped += ["timeout", "-s", "INT", "-k", "300", str(int(limit_s))]
    start, load_start = time.monotonic(), load()
    with open(log, "w") as out:
        rc = subprocess.run(
            wrapped + cmd, stdout=out, stderr=subprocess.STDOUT, env=env(threads)
        ).returncode
    text = rss_file.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {
        "rc": rc,
        "wall_s": round(time.monotonic() - start, 1),
        "peak_rss_mb": round(rss / 1024, 1),
        "load_start": load_start,
        "load_end": load(),
        "log": str(log),
    }


@contextmanager
def busy(n: int) -> Iterator[None]:
    """n processes that each keep a core busy (`while True: pass`), as another job would,
    for the duration of the block; killed at its end."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def write_results(
    path: str | Path, args: dict, table: list[dict], runs: dict, extra: dict | None = None
) -> None:
    """A benchmark's table and raw runs as JSON at path, with the CPU and load they ran on
    (and `extra`'s keys: versions, threads, ...)."""
    report = {"args": args, "cpu": cpu_info(), "load_at_end": load(), **(extra or {})}
    report.update(table=table, runs=runs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {path}")


def save(work: Path, stage: str, result: dict) -> None:
    (work / "results").mkdir(parents=True, exist_ok=True)
    (work / "results" / f"{stage}.json").write_text(json.dumps(result, indent=2) + "\n")


def read(work: Path, stage: str) -> dict:
    path = work / "results" / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# -- the two toolkits' commands ------------------------------------------------------------


def ours_train(work: Path, run: Path, threads: int, extra: list[str]) -> list[str]:
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    shutil.copy(work / "spm.model", run / "spm.model")  # reused: the same pieces as JoeyNMT
    data = work / "data"
    return [
        str(OURS_BIN / "nmt-train"),
        "data=files",
        "data.src=de",
        "data.tgt=en",
        f"data.train={data / 'train'}",
        f"data.valid={data / 'val'}",
        *OURS_MODEL,
        f"threads={threads}",
        "device=cpu",
        "progress=false",
        f"hydra.run.dir={run}",
        *extra,
    ]


def joey_config(work: Path, model_dir: Path, **values) -> Path:
    """A config from config.yaml.in for a model directory."""
    fill = dict(
        model_dir=model_dir,
        use_cuda="false",
        data=work / "data",
        test=work / "data" / "src-only" / "test",
        vocab=work / "vocab.txt",
        spm=work / "spm.model",
        beam_size=1,
        beam_alpha=1.0,
        updates=10**9,
        validation_freq=10**9,
        logging_freq=10,
    )
    fill.update(values)
    # JoeyNMT wants validation_freq divisible by logging_freq
    fill["validation_freq"] -= fill["validation_freq"] % fill["logging_freq"]
    text = Template((PEER / "config.yaml.in").read_text()).substitute(fill)
    path = model_dir.parent / f"{model_dir.name}.yaml"
    path.write_text(text)
    return path


def peer_versions() -> dict:
    """Each peer's toolkit and torch versions, asked of its own venv (none: not made)."""
    out = {}
    for name, folder, module in (("joeynmt", PEER, "joeynmt"), ("opennmt-py", ONMT, "onmt")):
        python = folder / ".venv" / "bin" / "python"
        code = f"import {module}, torch; print({module}.__version__, torch.__version__)"
        if python.exists():
            proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
            last = proc.stdout.split()[-2:] if proc.returncode == 0 else []
            out[name] = dict(zip(("version", "torch"), last, strict=False))
    return out


def joey_python() -> str:
    return str(PEER / ".venv" / "bin" / "python")


def joey_train(config: Path, model_dir: Path) -> list[str]:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    return [joey_python(), "-m", "joeynmt", "train", str(config), "--skip-test"]


def ours_rates(run: Path, warmup: int) -> list[float]:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    return [float(r["tokens_per_s"]) for r in rows if int(r["update"]) > warmup]


JOEY_LOG = re.compile(r"Step:\s+(\d+),.*Tokens per Sec:\s+(\d+)")


def joey_rates(model_dir: Path, warmup: int) -> list[float]:
    steps = JOEY_LOG.findall((model_dir / "train.log").read_text())
    return [float(rate) for step, rate in steps if int(step) > warmup]


def onmt_config(work: Path, model_dir: Path, **values) -> Path:
    """An OpenNMT-py config from peers/opennmt/config.yaml.in for a model directory."""
    fill = dict(
        model_dir=model_dir,
        data=work / "data",
        vocab=work / "vocab.txt",
        spm=work / "spm.model",
        gpu_ranks="[]",
        updates=10**9,
        validation_freq=10**9,
        logging_freq=10,
        save_every=10**9,
    )
    fill.update(values)
    text = Template((ONMT / "config.yaml.in").read_text()).substitute(fill)
    path = model_dir.parent / f"{model_dir.name}.yaml"
    path.write_text(text)
    return path


def onmt_python() -> str:
    return str(ONMT / ".venv" / "bin" / "python")


def onmt_train(config: Path, model_dir: Path) -> list[str]:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    return [onmt_python(), "-m", "onmt.bin.train", "-config", str(config)]


# "Step 10/   70; acc: ...; 1234/1345 tok/s;": source, then target (non-padding) tokens/s
ONMT_LOG = re.compile(r"Step\s+(\d+)(?:/\s*\d+)?;.*?(\d+)/\s*(\d+) tok/s")


def onmt_rates(log: Path, warmup: int) -> list[float]:
    """Target tokens/s of each OpenNMT-py report after `warmup` updates, from its log."""
    steps = ONMT_LOG.findall(log.read_text())
    return [float(tgt) for step, _, tgt in steps if int(step) > warmup]
