"""Reading parallel text: encodings, compression, alignment, TSV, filtering."""

from __future__ import annotations

import gzip
import io
import lzma
import sys
from pathlib import Path

import pytest

from nmt.data.corpus import (
    FilterReport,
    filter_pairs,
    iter_parallel,
    iter_parallel_blocks,
    open_text,
    read_lines,
    read_parallel,
)
from nmt.data.stream import file_blocks
from nmt.errors import DataError


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_read_lines_strips_line_endings_only(tmp_path):
    path = write(tmp_path / "a.txt", b"  one \t\r\ntwo\rstill two\nthree")
    assert read_lines(path) == ["  one \t", "two\rstill two", "three"]


def test_read_lines_does_not_split_at_unicode_line_separators(tmp_path):
    path = write(tmp_path / "a.txt", "a\u2028b\x85c\nd\n".encode())
    assert read_lines(path) == ["a\u2028b\x85c", "d"]


def test_read_lines_keeps_empty_lines_and_drops_bom(tmp_path):
    path = write(tmp_path / "a.txt", b"\xef\xbb\xbffirst\n\nthird\n")
    assert read_lines(path) == ["first", "", "third"]
    assert read_lines(write(tmp_path / "empty.txt", b"")) == []


def test_gz_and_xz_read_the_same_as_plain(tmp_path):
    data = "Grüße\r\nzwei\n\ndrei\n".encode()
    plain = read_lines(write(tmp_path / "a.txt", data))
    assert plain == ["Grüße", "zwei", "", "drei"]
    assert read_lines(write(tmp_path / "a.txt.gz", gzip.compress(data))) == plain
    assert read_lines(write(tmp_path / "a.txt.xz", lzma.compress(data))) == plain
    with open_text(tmp_path / "a.txt.gz") as f:
        assert f.read() == data.decode()


def test_invalid_utf8_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "latin1.txt", b"ok\nfine\n" + "caf\xe9 ok\n".encode("latin1"))
    with pytest.raises(DataError) as e:
        read_lines(path)
    message = str(e.value)
    assert f"{path}, line 3: invalid UTF-8 (byte 0xe9 at column 4)" in message
    assert "iconv" in message


def test_nul_byte_names_line(tmp_path):
    path = write(tmp_path / "bin.txt", b"one\ntwo\nth\0ree\n")
    with pytest.raises(DataError, match=r"bin\.txt, line 3: contains a NUL byte"):
        read_lines(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        read_lines(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"nope\.txt\.gz: no such file"):
        read_lines(tmp_path / "nope.txt.gz")
    with pytest.raises(DataError, match="is a directory"):
        read_lines(tmp_path)


def test_corrupt_gzip_and_xz(tmp_path):
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_lines(write(tmp_path / "fake.txt.gz", b"plain text, not gzip\n"))
    truncated = gzip.compress(b"hello\n" * 1000)[:-20]
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_lines(write(tmp_path / "cut.txt.gz", truncated))
    with pytest.raises(DataError, match="not a valid xz file"):
        read_lines(write(tmp_path / "fake.txt.xz", b"plain text\n"))


def test_dash_reads_standard_input(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\r\nb\n")))
    assert read_lines("-") == ["a", "b"]


def test_lang_pattern_reads_two_aligned_files(tmp_path):
    write(tmp_path / "train.de", b"Hallo Welt\nzwei\n")
    write(tmp_path / "train.en.gz", b"")  # not the pattern's file: must not be read
    write(tmp_path / "train.en", b"hello world\ntwo\n")
    corpus = read_parallel(str(tmp_path / "train.{lang}"), "de", "en")
    assert corpus.src == ["Hallo Welt", "zwei"]
    assert corpus.tgt == ["hello world", "two"]
    assert len(corpus) == 2
    assert "train.de" in corpus.origin and "train.en" in corpus.origin


def test_unequal_line_counts_name_both_files_and_counts(tmp_path):
    write(tmp_path / "c.de", b"a\nb\nc\n")
    write(tmp_path / "c.en", b"a\nb\n")
    with pytest.raises(DataError) as e:
        read_parallel(str(tmp_path / "c.{lang}"), "de", "en")
    message = str(e.value)
    assert str(tmp_path / "c.de") in message and str(tmp_path / "c.en") in message
    assert "has 3 lines" in message and "has 2" in message
    assert "Nothing was trained" in message


@pytest.mark.parametrize("extra", ["de", "en", None])
def test_streamed_blocks_pair_the_lines_whatever_their_lengths(tmp_path, extra):
    # the sides' 64 KB chunks end at other lines (one side's lines are 10x longer), and a
    # surplus line on either side is found and counted as read_parallel counts it
    n = 20_000
    src = [f"kurz {i}" for i in range(n)] + (["mehr"] if extra == "de" else [])
    tgt = [f"a much longer target sentence {i} " * 3 for i in range(n)]
    tgt += ["more"] if extra == "en" else []
    write(tmp_path / "c.de", ("\n".join(src) + "\n").encode())
    write(tmp_path / "c.en", ("\n".join(tgt) + "\n").encode())
    spec = str(tmp_path / "c.{lang}")
    if extra:
        with pytest.raises(DataError) as streamed:
            list(iter_parallel(spec, "de", "en", False, file_blocks))
        with pytest.raises(DataError) as in_memory:
            read_parallel(spec, "de", "en")
        assert str(streamed.value) == str(in_memory.value)
        assert f"has {n:,}" in str(streamed.value) and f"has {n + 1:,}" in str(streamed.value)
        return
    blocks = list(iter_parallel_blocks(spec, "de", "en", False, file_blocks))
    assert len(blocks) > 3 and all(len(s) == len(t) for s, t in blocks)
    assert [p for s, t in blocks for p in zip(s, t, strict=True)] == list(
        zip(src, tgt, strict=True)
    )


def test_tsv_without_header_is_source_then_target(tmp_path):
    path = write(tmp_path / "c.tsv.gz", gzip.compress(b"Hallo\thello\n\tempty source\n"))
    corpus = read_parallel(str(path), "de", "en")
    assert corpus.src == ["Hallo", ""]
    assert corpus.tgt == ["hello", "empty source"]


def test_tsv_header_selects_columns_by_language(tmp_path):
    data = b"id\ten\tde\n1\thello\tHallo\n2\ttwo\tzwei\n"
    path = write(tmp_path / "c.tsv.xz", lzma.compress(data))
    corpus = read_parallel(str(path), "de", "en", tsv_header=True)
    assert corpus.src == ["Hallo", "zwei"]
    assert corpus.tgt == ["hello", "two"]
    reverse = read_parallel(str(path), "en", "de", tsv_header=True)
    assert reverse.src == ["hello", "two"]


def test_tsv_header_missing_column_lists_available(tmp_path):
    path = write(tmp_path / "c.tsv", b"id\ten\tde\n1\thello\tHallo\n")
    with pytest.raises(DataError) as e:
        read_parallel(str(path), "fr", "en", tsv_header=True)
    assert "no column named 'fr'" in str(e.value)
    assert "columns available: id, en, de" in str(e.value)


@pytest.mark.parametrize(
    ("data", "header", "line", "found"),
    [
        (b"a\tb\nc\td\te\n", False, 2, 3),
        (b"a\tb\nc\td\nno tab\n", False, 3, 1),
        (b"de\ten\na\tb\nc\n", True, 3, 1),
    ],
)
def test_tsv_wrong_field_count_names_line(tmp_path, data, header, line, found):
    path = write(tmp_path / "c.tsv", data)
    with pytest.raises(DataError) as e:
        read_parallel(str(path), "de", "en", tsv_header=header)
    assert f"{path}, line {line}: expected 2 tab-separated fields" in str(e.value)
    assert f"found {found}" in str(e.value)


def test_bad_spec_explains_both_forms(tmp_path):
    with pytest.raises(DataError) as e:
        read_parallel(str(tmp_path / "train.txt"), "de", "en")
    assert "{lang}" in str(e.value) and ".tsv" in str(e.value)


def test_filter_pairs_drops_each_pair_once_in_order():
    src = [[1, 2], [], [5] * 11, [5] * 11, [1], [1, 2, 3], [4] * 10]
    tgt = [[3], [1], [], [1], [1, 2, 3, 4], [1], [4] * 10]
    keep, report = filter_pairs(src, tgt, max_tokens=10, max_ratio=3.0)
    # [5]*11 / [] is empty (checked first), [5]*11 / [1] too long before its bad ratio
    assert keep == [0, 5, 6]
    assert (report.kept, report.empty, report.too_long, report.bad_ratio) == (3, 2, 1, 1)
    assert report.summary() == (
        "kept 3 of 7 pairs; dropped 2 empty, 1 longer than 10 tokens, 1 with length ratio above 3.0"
    )


def test_filter_report_summary_uses_thousands_separators():
    report = FilterReport(28_950, 3, 40, 7, max_tokens=100, max_ratio=3.0)
    assert report.summary() == (
        "kept 28,950 of 29,000 pairs; dropped 3 empty, 40 longer than 100 tokens, "
        "7 with length ratio above 3.0"
    )
    assert FilterReport(5, 0, 0, 0).summary() == "kept 5 of 5 pairs; dropped none"
