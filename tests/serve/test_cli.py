"""`nmt-serve` as a user runs it, in a subprocess on a loopback port: it serves what the Python
API gives, drains requests in flight on SIGTERM and exits 0, refuses a busy port in one line."""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.helpers import cli_command, cli_env, run_cli

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def started(command: list[str], timeout: float = 120) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start a server; yield (process, base URL) once it prints its address; always stop it."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env=cli_env(), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    try:
        deadline, seen = time.monotonic() + timeout, []
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no address within {timeout} s: {seen}") from None
            seen.append(line)
            if found := re.search(r"at (http://[^\s/]+)", line):
                break
        proc.lines = lines  # what it prints later, for the test
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def later_lines(proc) -> str:
    out = []
    while not proc.lines.empty():
        out.append(proc.lines.get())
    return "".join(out)


def test_nmt_serve_translates_as_the_api_and_exits_0_on_sigterm(serve_run, translator):
    run, pairs = serve_run
    command = cli_command("serve", f"run={run}", "port=0", "device=cpu", "decode=greedy")
    with started(command) as (proc, url):
        assert url.startswith("http://127.0.0.1:")  # loopback unless host= says otherwise
        sentences = [src for src, _ in pairs[:3]]
        got = httpx.post(url + "/translate", json={"sentences": sentences}, timeout=30)
        assert [t["text"] for t in got.json()["translations"]] == translator.translate_text(
            sentences, strategy="greedy", beam_size=1, alpha=0.0
        )
        page = httpx.get(url + "/").text
        assert 'id="translation"' in page and "/translate" in page
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        time.sleep(0.1)
        assert "stopped (SIGTERM)" in later_lines(proc)


def test_sigterm_drains_requests_in_flight_then_exits_0(serve_run):
    command = [sys.executable, "-m", "tests.serve.slow_server", str(serve_run[0]), "1.0"]
    with started(command) as (proc, url):
        answers: dict[int, httpx.Response | Exception] = {}

        def ask(i: int) -> None:
            try:
                answers[i] = httpx.post(
                    url + "/translate",
                    json={"sentences": ["alpha bravo"], "beam_size": 1 + i % 2},
                    timeout=30,
                )
            except Exception as err:  # the assertion below shows it
                answers[i] = err

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        threads[0].start()
        health = lambda: httpx.get(url + "/health", timeout=5).json()  # noqa: E731
        deadline = time.monotonic() + 30
        while health()["running"] == 0:  # the first request is in the model call
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for t in threads[1:]:
            t.start()
        while health()["queued"] < 3:  # the others wait for the next calls
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert proc.wait(60) == 0
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers.values()), (
        answers
    )
    assert len(answers) == 4


def test_busy_port_is_a_one_line_error_before_loading(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("serve", f"run={tmp_path}/none", f"port={port}")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot listen on host=127.0.0.1 port=")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_default_beam_over_the_cap_is_refused_at_start_up(serve_run):
    proc = run_cli("serve", f"run={serve_run[0]}", "port=0", "device=cpu", "serve.max_beam=4")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: decode.beam_size=5 is over serve.max_beam=4")


def test_limit_must_be_positive_naming_the_key(tmp_path):
    proc = run_cli("serve", f"run={tmp_path}", "serve.max_beam=0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: serve.max_beam=0 must be greater than 0"


def test_accepted_connections_send_without_nagles_delay():
    """asyncio turns Nagle's algorithm off only on sockets that say they are TCP; without it a
    response's second write waited ~40 ms for the client's delayed ACK (every POST 76 ms
    instead of 31 ms on a 19 ms translation)."""
    import asyncio

    from nmt.serve.server import bind

    sock = bind("127.0.0.1", 0)
    nodelay = []

    async def main() -> None:
        async def handle(reader, writer) -> None:
            raw = writer.get_extra_info("socket")
            nodelay.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(100):
            if nodelay:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()

    asyncio.run(main())
    assert nodelay and nodelay[0] != 0
