"""Translation's faults: nmt-translate output=FILE killed (SIGKILL) at random moments and
resumed ends byte-identical to a run never stopped; a batch that runs out of memory in the
search is split in halves and retried with the same result, down to one sentence, and then
refused naming decode.batch_size and decode.beam_size (CPU)."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nmt.search.decode as decode_module
from nmt.data.stream import progress_path
from nmt.errors import DecodeMemoryError
from nmt.translator import Translator
from tests.helpers import cli_env, toy_pairs

# A parent that has imported nmt-translate (and composed a config once) forks every run: a
# run then costs its own work, not the ~3 s of importing torch again, so 20 kills take
# seconds. The child runs the real command line (nmt.cli.translate.main) and is SIGKILLed.
ZYGOTE = r"""
import json, os, sys
import nmt.cli.translate
import nmt.translator
from hydra import compose, initialize_config_dir
from nmt.resources import conf_dir
with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
    compose(config_name="translate", overrides=["run=x"])
print("ready", flush=True)
for line in sys.stdin:
    argv, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.argv = ["nmt-translate", *argv]
        code = 0
        try:
            nmt.cli.translate.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    sys.stdin.readline()  # reaped only when asked: till then the pid is never reused
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""
KILLS = 20
LINES = 2000
SETTINGS = ("threads=1", "device=cpu", "decode.buffer_size=50")


class Zygote:
    """Runs nmt-translate command lines forked from one warm process."""

    def __init__(self, cwd: Path) -> None:
        self.log = cwd / "zygote.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ZYGOTE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=cli_env(),
                cwd=cwd,
            )
        assert self._line(120) == "ready"

    def _line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        assert line, f"the zygote did not answer: {self.log.read_text()[-2000:]}"
        return line

    def start(self, args: list[str], log: Path) -> int:
        """Fork a run of `nmt-translate args`; its pid."""
        self.proc.stdin.write(json.dumps([args, str(log)]) + "\n")
        self.proc.stdin.flush()
        return int(self._line(30))

    def wait(self) -> int:
        """The last run's exit code (-9: killed by SIGKILL), once it has ended."""
        self.proc.stdin.write("reap\n")
        self.proc.stdin.flush()
        return int(self._line(300))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def done_lines(out: Path) -> int:
    path = progress_path(out)
    return json.loads(path.read_text())["lines"] if path.is_file() else 0


def running(pid: int) -> bool:
    """Whether our (unreaped) child still runs: it is a zombie once it has ended (Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigkill_at_random_moments_then_resume_is_byte_identical(trained_run, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join(s + "\n" for s, _ in toy_pairs(LINES, seed=3)))
    args = [f"run={trained_run}", f"input={src}", *SETTINGS]
    zygote = Zygote(tmp_path)
    try:
        reference = tmp_path / "reference.txt"
        began = time.perf_counter()
        zygote.start([*args, f"output={reference}"], tmp_path / "reference.log")
        while not Path(f"{reference}.part").exists() and time.perf_counter() - began < 60:
            time.sleep(0.005)
        loading = time.perf_counter() - began  # config, model, input checked
        assert zygote.wait() == 0, (tmp_path / "reference.log").read_text()
        working = time.perf_counter() - began - loading
        out, rng, outcomes = tmp_path / "out.txt", random.Random(20), []
        for kill in range(KILLS):
            before = done_lines(out)
            pid = zygote.start([*args, f"output={out}", "resume=true"], tmp_path / f"{kill}.log")
            if kill % 4 == 0:  # while it loads the model and checks its input
                time.sleep(rng.uniform(0.0, loading))
            else:  # once it has written a buffer, at a random moment of what remains
                while done_lines(out) <= before and running(pid):
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.5 * working * (1 - done_lines(out) / LINES)))
            os.kill(pid, signal.SIGKILL)  # our child; a zombie (no-op) if it has ended
            code = zygote.wait()
            after = done_lines(out)
            if code == 0:
                outcomes.append("after the end")
            elif after > before:
                outcomes.append("mid-run")
            else:
                outcomes.append("before its first buffer")
            assert code in (0, -signal.SIGKILL), (tmp_path / f"{kill}.log").read_text()
        zygote.start([*args, f"output={out}", "resume=true"], tmp_path / "last.log")
        assert zygote.wait() == 0, (tmp_path / "last.log").read_text()
    finally:
        zygote.close()
    assert out.read_bytes() == reference.read_bytes()
    assert not Path(f"{out}.part").exists() and not progress_path(out).exists()
    counts = {k: outcomes.count(k) for k in dict.fromkeys(outcomes)}
    assert counts.get("mid-run", 0) >= KILLS // 2, counts
    print(f"{KILLS} kills of nmt-translate output=FILE ({LINES} lines): {counts}")


@pytest.fixture(scope="module")
def translator(trained_run) -> Translator:
    torch.set_num_threads(1)
    return Translator.load(trained_run, device="cpu", threads=1, kernels="plain")


def failing_above(rows: int, error: Exception):
    """search_batch that runs out of memory on batches of more than `rows` sentences."""
    real, sizes = decode_module.search_batch, []

    def search(model, src, src_len, cfg, nbest=1):
        sizes.append(src.size(0))
        if src.size(0) > rows:
            raise error
        return real(model, src, src_len, cfg, nbest)

    return search, sizes


CPU_OOM = RuntimeError(
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 73014444032 bytes. Error code 12 (Cannot allocate memory)"
)
CUDA_OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.mark.parametrize("error", [CPU_OOM, CUDA_OOM], ids=["cpu", "cuda"])
def test_out_of_memory_splits_the_batch_with_the_same_results(translator, monkeypatch, error):
    lines = [s for s, _ in toy_pairs(20, seed=4)]
    options = {"strategy": "beam", "beam_size": 3, "nbest": 2, "batch_size": 8}
    whole = translator.translate(lines, **options)
    whole_text = translator.translate_text(lines, batch_size=8)
    search, sizes = failing_above(3, error)
    monkeypatch.setattr(decode_module, "search_batch", search)
    split = translator.translate(lines, **options)
    assert sorted(set(sizes)) == [2, 4, 8]  # 8 sentences, then 4, then 2 fit
    for a, b in zip(whole, split, strict=True):
        assert [h.ids for h in a.nbest] == [h.ids for h in b.nbest]
        assert [h.score for h in a.nbest] == pytest.approx([h.score for h in b.nbest], abs=1e-5)
    assert translator.translate_text(lines, batch_size=8) == whole_text


def test_out_of_memory_for_one_sentence_names_batch_and_beam_size(translator, monkeypatch):
    search, sizes = failing_above(0, CPU_OOM)
    monkeypatch.setattr(decode_module, "search_batch", search)
    with pytest.raises(DecodeMemoryError) as err:
        translator.translate_text(["alpha bravo", "charlie"], beam_size=4, batch_size=2)
    assert sizes == [2, 1]
    message = str(err.value)
    assert "decode.beam_size=4" in message and "decode.batch_size=2" in message
    assert "\n" not in message


def test_other_errors_of_the_search_are_not_taken_for_memory(translator, monkeypatch):
    search, sizes = failing_above(0, RuntimeError("shape mismatch"))
    monkeypatch.setattr(decode_module, "search_batch", search)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        translator.translate_text(["alpha bravo", "charlie"])
    assert sizes == [2]
