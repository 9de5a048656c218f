"""nmt.data.stream: lines read as they arrive under read_lines' rules, buffers written in
order, and a file output resumed from its last complete buffer or refused when it cannot be."""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import threading

import pytest

import nmt.data.stream as st
from nmt.data.corpus import read_lines
from nmt.errors import ConfigError, DataError

TEXT = "\ufeffalpha\r\n\nbravo\u2028charlie\x85\n \t\nlast without newline"


def upper(items: list, first: int) -> str:
    """A stand-in for translation: each line upper-cased, numbered over the whole input."""
    return "".join(f"{first + i} {x.upper()}\n" for i, x in enumerate(items))


def run(tmp_path, src, out, size=2, resume=False, settings=None, fail_at=None) -> int:
    """Stream src (a file) into out through `upper`; raise at buffer `fail_at` (a crash)."""
    calls = []

    def work(items, first):
        calls.append(first)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        return upper(items, first)

    with st.LineReader(src) as reader:
        source = st.Source(reader, [str(src)], reader.ready)
        output = st.open_output(str(out), resume, lambda: settings or {"size": size})
        return st.stream(source, output, size, work)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("".join(f"line {i}\n" for i in range(11)))
    return path


@pytest.mark.parametrize("chunk", [1, 3, st.CHUNK])
def test_reader_gives_what_read_lines_gives_at_any_chunk_size(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(st, "CHUNK", chunk)
    plain, packed = tmp_path / "a.txt", tmp_path / "a.txt.gz"
    plain.write_bytes(TEXT.encode())
    packed.write_bytes(gzip.compress(TEXT.encode()))
    for path in (plain, packed):
        with st.LineReader(path) as reader:
            assert list(reader) == read_lines(plain)
    assert st.count_lines(plain) == len(read_lines(plain)) == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"ok\nfine\ncaf\xe9\n", "x.txt, line 3: invalid UTF-8 (byte 0xe9 at column 4)"),
        (b"ok\n\nab\x00c\n", "x.txt, line 3: contains a NUL byte (column 3)"),
    ],
)
def test_a_bad_line_is_refused_naming_its_line_across_chunks(tmp_path, monkeypatch, data, message):
    monkeypatch.setattr(st, "CHUNK", 2)
    path = tmp_path / "x.txt"
    path.write_bytes(data)
    with pytest.raises(DataError, match=re.escape(message)):
        st.count_lines(path)


def test_a_pipe_buffer_ends_where_its_writer_paused(monkeypatch):
    read, write = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read, "rb", buffering=0))
    os.write(write, b"one\ntwo\npartial")
    got: list = []
    reader = st.LineReader("-")
    source = st.Source(reader, ["-"], reader.ready)
    worker = threading.Thread(target=lambda: got.append(source.take(1000)))
    worker.start()
    worker.join(timeout=10)
    try:
        assert not worker.is_alive(), "take() waited for more input than the pipe held"
        assert got == [["one", "two"]]
    finally:
        os.write(write, b" line\n")
        os.close(write)
    worker.join(timeout=10)
    assert source.take(1000) == ["partial line"] and source.take(1000) == []
    sys.stdin.close()


def test_a_file_output_appears_whole_and_leaves_nothing_beside_it(tmp_path, src):
    out = tmp_path / "out.txt"
    assert run(tmp_path, src, out) == 11
    assert out.read_text() == upper([f"line {i}" for i in range(11)], 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_resume_after_a_crash_ends_with_the_same_bytes(tmp_path, src):
    whole, out = tmp_path / "whole.txt", tmp_path / "out.txt"
    run(tmp_path, src, whole)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, src, out, fail_at=4)  # three buffers (6 lines) are done
    assert not out.exists()
    progress = json.loads(st.progress_path(out).read_text())
    assert (
        progress["lines"] == 6 and progress["bytes"] == (tmp_path / "out.txt.part").stat().st_size
    )
    with (tmp_path / "out.txt.part").open("ab") as f:
        f.write(b"half a buff")  # killed after writing text, before recording it
    assert run(tmp_path, src, out, resume=True) == 11
    assert out.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "out.txt.part").exists() and not st.progress_path(out).exists()


def test_an_interrupted_output_is_not_overwritten_without_resume(tmp_path, src):
    out = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, src, out, fail_at=2)
    with pytest.raises(ConfigError, match="holds 2 lines of an interrupted run: pass resume=true"):
        run(tmp_path, src, out)


def edit_keeping_size_and_mtime(path):
    st_ = path.stat()
    path.write_text(path.read_text().replace("line 1\n", "line X\n"))
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda src, kw: kw.update(settings={"size": 3}), "size was 2, now 3"),
        (lambda src, kw: src.write_text("line 0\n"), ".*in.txt changed"),
        (
            lambda src, kw: edit_keeping_size_and_mtime(src),
            "the first 4 lines of .*in.txt are not those done",
        ),
        (
            lambda src, kw: (src.parent / "out.txt.part").write_bytes(b"0 L"),
            ".*out.txt.part has 3 bytes, .*out.txt.progress says 36",
        ),
    ],
)
def test_resume_is_refused_when_anything_differs(tmp_path, src, change, message):
    out = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, src, out, fail_at=3)
    kw: dict = {}
    change(src, kw)
    with pytest.raises(ConfigError, match=f"cannot resume .*out.txt: {message}"):
        run(tmp_path, src, out, resume=True, **kw)


def test_resume_with_nothing_to_resume_starts_afresh(tmp_path, src):
    out = tmp_path / "out.txt"
    assert run(tmp_path, src, out, resume=True) == 11
    assert out.read_text().startswith("0 LINE 0\n")


def test_only_a_regular_file_can_be_resumed(tmp_path):
    with pytest.raises(ConfigError, match="output is standard output; give output=FILE"):
        st.open_output("-", True, dict)
    with pytest.raises(ConfigError, match="/dev/null, which is no regular file"):
        st.open_output("/dev/null", True, dict)
    assert st.count_lines("-") is None and st.count_lines("/dev/stdin") is None  # read once
    out = st.open_output("/dev/null", False, dict)  # written directly: nothing beside it
    assert out.name == "/dev/null" and not st.progress_path("/dev/null").exists()
    out.close()
