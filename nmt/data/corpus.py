"""Read and validate parallel text: plain, .gz or .xz files, `{lang}` patterns and TSV.

Every problem a user can cause (a missing file, bad encoding, misaligned sides, a malformed
TSV line) becomes a `DataError` that names the file and the 1-based line number.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import lzma
import os
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

from nmt.errors import DataError

TSV_SUFFIXES = (".tsv", ".tsv.gz", ".tsv.xz")
SPEC_FORMS = (
    "a split is either a path prefix (data/train reads data/train.<src> and data/train.<tgt>, "
    "two files aligned line by line, each optionally .gz or .xz), a pattern with {lang} "
    "(data/{lang}.train.txt), or one TSV file ending in .tsv, .tsv.gz or .tsv.xz (source "
    "and target in two tab-separated columns)"
)
COMPRESSED = ("", ".gz", ".xz")


def display_path(path: str | Path) -> str:
    """A path as messages name it: - is standard input."""
    return "standard input" if str(path) == "-" else str(path)


def open_bytes(path: str | Path) -> BinaryIO:
    """Open a file for binary reading, decompressing .gz and .xz by their suffix."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a file; give the path of a text file")
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        if path.suffix == ".xz":
            return lzma.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path and the working directory") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path through a fsynced temporary file beside it, renamed over it: a
    kill at any moment leaves the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    mask = os.umask(0o22)
    os.umask(mask)
    try:
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the run's other files are not
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_text(path: str | Path) -> TextIO:
    """Open UTF-8 text for reading line by line; .gz and .xz are decompressed, - is stdin.

    Lines end at "\\n" only and keep their ending. Unlike `read_lines`, encoding errors
    surface lazily (as UnicodeDecodeError) while reading; use `read_lines` to validate.
    """
    if str(path) == "-":
        return open(sys.stdin.fileno(), encoding="utf-8", newline="\n", closefd=False)
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8", errors="strict", newline="\n")


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn a failure while reading path (a corrupt .gz/.xz, an I/O error) into a DataError."""
    kind = {".gz": "gzip", ".xz": "xz"}.get(Path(path).suffix)
    try:
        yield
    except (gzip.BadGzipFile, lzma.LZMAError, zlib.error, EOFError) as e:
        raise DataError(
            f"{path}: not a valid {kind} file ({e}); the file is corrupt or truncated, or "
            f"its name ends in {Path(path).suffix} but it is not compressed: re-download "
            "or rename it"
        ) from None
    except OSError as e:
        raise DataError(f"{display_path(path)}: could not be read ({e.strerror or e})") from None


def _read_bytes(path: str | Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    with open_bytes(path) as f, reading(path):
        return f.read()


def _locate(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a byte offset; the column counts bytes."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def decode_text(data: bytes, name: str, first_line: int = 1) -> str:
    """data as UTF-8 text, refused (a DataError naming line and column) if it holds a NUL
    byte or invalid UTF-8; first_line: the line number data starts at, for the message."""
    nul = data.find(b"\0")
    if nul >= 0:
        line, column = _locate(data, nul)
        raise DataError(
            f"{name}, line {line + first_line - 1}: contains a NUL byte (column {column}); this "
            "looks like a binary or UTF-16 file, not UTF-8 text: convert it, e.g. iconv -f "
            "utf-16 -t utf-8"
        )
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        line, column = _locate(data, e.start)
        raise DataError(
            f"{name}, line {line + first_line - 1}: invalid UTF-8 (byte 0x{data[e.start]:02x} "
            f"at column {column}); re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 file without their "\\n" or "\\r\\n" ending; - reads stdin.

    Lines are split at "\\n" only (never at U+2028 or a lone "\\r", which would shift one
    side of a parallel corpus against the other); other whitespace is kept. A UTF-8 byte
    order mark at the start of the file is dropped.
    """
    text = decode_text(_read_bytes(path), display_path(path))
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines[-1] == "":  # the final "\n" ends the last line; it does not start a new one
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@dataclass
class ParallelCorpus:
    """Aligned source and target sentences; `origin` names the files, for messages."""

    src: list[str]
    tgt: list[str]
    origin: str

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(
    spec: str, src_lang: str, tgt_lang: str, tsv_header: bool = False
) -> ParallelCorpus:
    """Read one split given as a path prefix, a `{lang}` pattern or a TSV (see `SPEC_FORMS`)."""
    pairs = iter_parallel(spec, src_lang, tgt_lang, tsv_header, lambda path: [read_lines(path)])
    src, tgt = [], []
    for s, t in pairs:
        src.append(s)
        tgt.append(t)
    return ParallelCorpus(src, tgt, origin=parallel_origin(spec, src_lang, tgt_lang, tsv_header))


def split_files(spec: str, src_lang: str, tgt_lang: str) -> list[str]:
    """The files one split is read from: one TSV, or the source and the target file; each
    refused (DataError) if it is missing, a directory or unreadable."""
    if spec.endswith(TSV_SUFFIXES):
        files = [spec]
    else:
        files = [_side_path(spec, src_lang), _side_path(spec, tgt_lang)]
    for path in files:
        if path != "-":
            open_bytes(path).close()
    return files


def parallel_origin(spec: str, src_lang: str, tgt_lang: str, tsv_header: bool = False) -> str:
    """The files of a split as messages name them."""
    files = split_files(spec, src_lang, tgt_lang)
    if len(files) == 2:
        return " + ".join(files)
    return f"{spec} (columns {src_lang}, {tgt_lang})" if tsv_header else spec


def iter_parallel(
    spec: str,
    src_lang: str,
    tgt_lang: str,
    tsv_header: bool,
    blocks: Callable[[str], Iterable[list[str]]],
) -> Iterator[tuple[str, str]]:
    """The (source, target) pairs of one split, in order; `blocks(path)` gives a file's lines
    in lists (`[read_lines(path)]`, or stream.file_blocks to hold one chunk at a time).
    Misaligned sides and malformed TSV lines raise DataError naming the file and line."""
    for src, tgt in iter_parallel_blocks(spec, src_lang, tgt_lang, tsv_header, blocks):
        yield from zip(src, tgt, strict=True)


def iter_parallel_blocks(
    spec: str,
    src_lang: str,
    tgt_lang: str,
    tsv_header: bool,
    blocks: Callable[[str], Iterable[list[str]]],
) -> Iterator[tuple[list[str], list[str]]]:
    """iter_parallel's pairs as aligned lists (source lines, their target lines), as many as
    a block of the source file holds: a loop over pairs costs a step a block, not a pair."""
    files = split_files(spec, src_lang, tgt_lang)
    if len(files) == 1:
        pairs = _tsv_pairs(
            itertools.chain.from_iterable(blocks(spec)), spec, src_lang, tgt_lang, tsv_header
        )
        while chunk := list(itertools.islice(pairs, 10_000)):
            yield [s for s, _ in chunk], [t for _, t in chunk]
        return
    src_path, tgt_path = files
    src, tgt = iter(blocks(src_path)), iter(blocks(tgt_path))
    waiting: list[str] = []  # target lines read beyond the source's so far
    n = 0
    for block in src:
        while len(waiting) < len(block):
            more = next(tgt, None)
            if more is None:
                rest = len(block) + sum(len(b) for b in src)
                _misaligned(src_path, n + rest, tgt_path, n + len(waiting))
            waiting.extend(more)
        yield block, waiting[: len(block)]
        n += len(block)
        del waiting[: len(block)]
    rest = len(waiting) + sum(len(b) for b in tgt)
    if rest:
        _misaligned(src_path, n, tgt_path, n + rest)


def _misaligned(src_path: str, src_lines: int, tgt_path: str, tgt_lines: int) -> NoReturn:
    raise DataError(
        f"{src_path} has {src_lines:,} lines but {tgt_path} has {tgt_lines:,}: the two "
        "sides of a parallel corpus must have the same number of lines, line i of one "
        "translating line i of the other. Nothing was trained; fix the files (e.g. "
        "re-extract them together) and run again"
    )


def _side_path(spec: str, lang: str) -> str:
    """One side's file: the {lang} pattern filled in, or the first of prefix.lang[.gz|.xz]."""
    if "{lang}" in spec:
        return spec.replace("{lang}", lang)
    candidates = [f"{spec}.{lang}{ext}" for ext in COMPRESSED]
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    raise DataError(
        f"{spec}: no {lang} side found (looked for {', '.join(candidates)}); {SPEC_FORMS}"
    )


def _tsv_pairs(
    lines: Iterable[str], path: str, src_lang: str, tgt_lang: str, header: bool
) -> Iterator[tuple[str, str]]:
    lines = iter(lines)
    if header:
        first = next(lines, None)
        if first is None:
            raise DataError(
                f"{path} is empty, but data.tsv_header=true expects a first line naming the columns"
            )
        columns = first.split("\t")
        for lang in (src_lang, tgt_lang):
            if columns.count(lang) != 1:
                problem = "no column" if lang not in columns else "more than one column"
                raise DataError(
                    f"{path}, line 1: {problem} named {lang!r} in the header; columns "
                    f"available: {', '.join(columns)}. Set data.src and data.tgt to column "
                    "names, or data.tsv_header=false if the first line is a sentence pair"
                )
        src_col, tgt_col, expected = columns.index(src_lang), columns.index(tgt_lang), len(columns)
        first_line, what = 2, "as many as the header line has"
    else:
        src_col, tgt_col, expected = 0, 1, 2
        first_line, what = 1, "source, target"
    for number, line in enumerate(lines, start=first_line):
        fields = line.split("\t")
        if len(fields) != expected:
            if len(fields) > expected:
                hint = "a tab inside a sentence splits it: replace tabs in the text by spaces"
                if not header:
                    hint += ", or set data.tsv_header=true to pick columns by a header line"
            else:
                hint = "each line needs a tab between the source and the target sentence"
            raise DataError(
                f"{path}, line {number}: expected {expected} tab-separated fields ({what}), "
                f"found {len(fields)}; {hint}"
            )
        yield fields[src_col], fields[tgt_col]


@dataclass
class FilterReport:
    """How many sentence pairs `filter_pairs` kept and why it dropped the others."""

    kept: int
    empty: int
    too_long: int
    bad_ratio: int
    max_tokens: int = 0  # the limits applied, for `summary`
    max_ratio: float = 0.0

    @property
    def total(self) -> int:
        return self.kept + self.empty + self.too_long + self.bad_ratio

    def __add__(self, other: FilterReport) -> FilterReport:
        """The counts of two parts of one corpus filtered with the same limits."""
        return FilterReport(
            self.kept + other.kept,
            self.empty + other.empty,
            self.too_long + other.too_long,
            self.bad_ratio + other.bad_ratio,
            self.max_tokens,
            self.max_ratio,
        )

    def summary(self) -> str:
        """One line for the log, e.g. 'kept 980 of 1,000 pairs; dropped 3 empty, …'."""
        reasons = []
        if self.empty:
            reasons.append(f"{self.empty:,} empty")
        if self.too_long:
            reasons.append(f"{self.too_long:,} longer than {self.max_tokens:,} tokens")
        if self.bad_ratio:
            reasons.append(f"{self.bad_ratio:,} with length ratio above {float(self.max_ratio)}")
        dropped = ", ".join(reasons) if reasons else "none"
        return f"kept {self.kept:,} of {self.total:,} pairs; dropped {dropped}"


def filter_pairs(
    src_ids: list[list[int]], tgt_ids: list[list[int]], max_tokens: int, max_ratio: float
) -> tuple[list[int], FilterReport]:
    """Indices of the pairs worth training on, and a report of the ones dropped.

    Checked in order, each pair counted once: empty (either side has no tokens), too long
    (either side has more than `max_tokens`), bad ratio (longer / shorter > `max_ratio`).
    Lengths are subword counts without EOS.
    """
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"{len(src_ids)} source but {len(tgt_ids)} target sequences")
    keep: list[int] = []
    empty = too_long = bad_ratio = 0
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True)):
        short, long = sorted((len(s), len(t)))
        if short == 0:
            empty += 1
        elif long > max_tokens:
            too_long += 1
        elif long / short > max_ratio:
            bad_ratio += 1
        else:
            keep.append(i)
    report = FilterReport(len(keep), empty, too_long, bad_ratio, max_tokens, max_ratio)
    return keep, report
