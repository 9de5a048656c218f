"""nmt-translate streams: a line written into its standard input comes out translated while
the input is still open, and n-best lists resumed after a crash are numbered over the whole
input and end with the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import re
import select
import subprocess

import pytest
from tqdm import tqdm

from nmt.cli.translate import translation
from nmt.data.stream import LineReader, Source, open_output, stream
from nmt.translator import Translator
from tests.helpers import cli_command, cli_env, toy_pairs


def read_lines(proc: subprocess.Popen, n: int, timeout: float = 120) -> list[str]:
    """The next n lines of proc's stdout, as they come (each read waits at most timeout)."""
    data = b""
    while data.count(b"\n") < n:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, f"no translation came out while the input was open; got {data!r}"
        chunk = os.read(proc.stdout.fileno(), 1 << 16)
        assert chunk, f"nmt-translate ended; got {data!r}"
        data += chunk
    return data.decode().splitlines(keepends=True)


def test_a_line_into_a_pipe_gets_its_translation_before_the_pipe_closes(trained_run, tmp_path):
    expected = Translator.load(trained_run, device="cpu").translate_text(["alpha bravo", "golf"])
    stderr = tmp_path / "stderr"
    proc = subprocess.Popen(
        cli_command("translate", f"run={trained_run}", "threads=1", "device=cpu"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr.open("wb"),
        env=cli_env(),
    )
    try:
        proc.stdin.write(b"alpha bravo\n")
        proc.stdin.flush()
        assert read_lines(proc, 1) == [expected[0] + "\n"], stderr.read_text()
        proc.stdin.write(b"\ngolf\n")  # a blank line stays blank
        proc.stdin.flush()
        assert read_lines(proc, 2) == ["\n", expected[1] + "\n"], stderr.read_text()
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, stderr.read_text()
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def translator(trained_run) -> Translator:
    return Translator.load(trained_run, device="cpu", threads=1, kernels="plain")


def translate_file(translator, src, out, decode, resume=False, crash_at=None) -> None:
    """nmt-translate's loop (nmt.cli.translate) on src, raising at buffer crash_at."""
    work, calls = translation(translator, decode, tqdm(disable=True)), []

    def crashing(lines, first):
        calls.append(first)
        if len(calls) == crash_at:
            raise KeyboardInterrupt
        return work(lines, first)

    with LineReader(src) as reader:
        source = Source(reader, [str(src)], reader.ready)
        output = open_output(str(out), resume, lambda: {"decode": str(decode)})
        stream(source, output, decode.buffer_size, crashing)


def test_nbest_lists_resume_numbered_over_the_whole_input(translator, tmp_path):
    src = tmp_path / "in.txt"
    lines = [s for s, _ in toy_pairs(13, seed=6)]
    lines[4] = ""  # a blank line has no hypotheses
    src.write_text("".join(x + "\n" for x in lines))
    decode = translator.decode_config(beam_size=3, nbest=2, buffer_size=5)
    whole, out = tmp_path / "whole.txt", tmp_path / "out.txt"
    translate_file(translator, src, whole, decode)
    with pytest.raises(KeyboardInterrupt):
        translate_file(translator, src, out, decode, crash_at=3)  # 2 buffers written
    translate_file(translator, src, out, decode, resume=True)
    assert out.read_bytes() == whole.read_bytes()
    ids = [int(re.match(r"(\d+) \|\|\| ", line)[1]) for line in whole.read_text().splitlines()]
    assert ids == [i for i in range(13) if i != 4 for _ in range(2)]
