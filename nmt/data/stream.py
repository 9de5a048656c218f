"""Streaming that loses nothing: input taken a buffer at a time as it arrives, output written
buffer by buffer, and an output file resumable from its last complete buffer.

`LineReader` gives the lines of a file or of standard input under read_lines' rules without
waiting for the end of a pipe; `Source` hands them out in buffers and fingerprints what it
handed out; `open_output` picks where the text goes: standard output (or any path that is no
regular file) is written and flushed buffer by buffer; a file is written as NAME.part beside
it, NAME.progress recording what the part holds (lines, bytes, the input consumed, the
settings), and renamed to NAME when complete. `stream` runs the loop; nmt-translate and
nmt-analyze's sentences.jsonl both go through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from nmt.data.corpus import decode_text, display_path, open_bytes, reading
from nmt.errors import ConfigError

CHUNK = 1 << 16  # bytes read at a time
Item = str | tuple[str, ...]  # a line, or aligned lines of several files (source, reference)


class LineReader:
    """The lines of a UTF-8 file (plain, .gz, .xz) or of standard input (-) as they arrive,
    each without its ending, under read_lines' rules: split at "\\n" only, "\\r\\n" and a
    leading byte order mark dropped, a NUL byte or invalid UTF-8 refused naming the line.
    Holds one chunk of input and the lines decoded from it, never the whole input."""

    def __init__(self, path: str | Path) -> None:
        self.path, self.name = str(path), display_path(path)
        self._file = None if self.path == "-" else open_bytes(path)
        self._fd = sys.stdin.fileno() if self._file is None else None
        self._lines: deque[str] = deque()
        self._pending: list[bytes] = []  # read after the last complete line
        self._decoded = 0  # lines decoded so far, for the line numbers of errors
        self._eof = False

    def __enter__(self) -> LineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self._lines:
            if self._eof:
                raise StopIteration
            self._fill()
        return self._lines.popleft()

    def blocks(self) -> Iterator[list[str]]:
        """The lines still to come, a list for each chunk of input (never an empty one)."""
        while self._lines or not self._eof:
            if self._lines:
                block, self._lines = self._lines, deque()
                yield list(block)
            else:
                self._fill()

    def ready(self) -> bool:
        """Whether the next line (or the end) can be had without waiting for more input: a
        file never waits; a pipe or terminal has a line only once its writer sent one."""
        if self._lines or self._eof or self._fd is None:
            return True
        if select.select([self._fd], [], [], 0)[0]:
            self._fill()  # input is waiting: this read does not block
        return bool(self._lines) or self._eof

    def _fill(self) -> None:
        """Read one chunk (from a pipe: what is there, at least a byte) and decode the lines
        it completes."""
        with reading(self.path):
            data = os.read(self._fd, CHUNK) if self._fd is not None else self._file.read(CHUNK)
        if not data:
            self._eof = True
            rest, self._pending = b"".join(self._pending), []
            if rest:  # a last line without "\n"
                self._add(rest + b"\n")
            return
        end = data.rfind(b"\n") + 1
        if not end:
            self._pending.append(data)
            return
        complete = b"".join([*self._pending, data[:end]])
        self._pending = [data[end:]] if end < len(data) else []
        self._add(complete)

    def _add(self, data: bytes) -> None:
        """Decode complete lines (data ends with "\\n") and queue them."""
        text = decode_text(data, self.name, self._decoded + 1)
        if not self._decoded and text.startswith("\ufeff"):
            text = text[1:]
        lines = text.split("\n")[:-1]
        self._decoded += len(lines)
        self._lines.extend(line[:-1] if line.endswith("\r") else line for line in lines)


def file_blocks(path: str | Path) -> Iterator[list[str]]:
    """A file's lines in lists (LineReader.blocks), the file closed at the end."""
    with LineReader(path) as reader:
        yield from reader.blocks()


def _special(path: str) -> bool:
    """Standard input or output, a pipe or a device: read or written once, as it comes."""
    if path == "-" or os.path.abspath(path).startswith(("/dev/std", "/dev/fd/", "/proc/")):
        return True  # a process's own streams: /dev/stdout may name a file it must not rename
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def count_lines(path: str | Path) -> int | None:
    """The lines of an input file, each checked as LineReader checks it, so that a bad line
    is refused before any work is done on the file (read once, a chunk at a time); None for
    standard input, a pipe or a device, which can be read only once."""
    if _special(str(path)):
        return None
    with LineReader(path) as reader:
        return sum(len(block) for block in reader.blocks())


def file_state(path: str) -> dict:
    """What a resume compares of an input: its path, size and modification time (of a pipe:
    its name; what it gives again is checked by its sha256)."""
    if _special(path):
        return {"path": path}
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Source:
    """Items (lines, or tuples of aligned lines) handed out in buffers, with the fingerprint
    a resume checks: the input files' size and mtime, the items consumed and their sha256."""

    def __init__(
        self,
        items: Iterable[Item],
        files: Sequence[str],
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._items, self._ready, self.files = iter(items), ready, [str(f) for f in files]
        self.count = 0
        self._sha = hashlib.sha256()

    def take(self, n: int, wait: bool = False) -> list[Item]:
        """Up to n items: fewer at the end of the input or, unless wait, as soon as no more
        input is ready (a line typed into a pipe is translated without waiting for more)."""
        out: list[Item] = []
        while len(out) < n and (wait or not out or self._ready()):
            item = next(self._items, None)
            if item is None:
                break
            out.append(item)
            for text in (item,) if isinstance(item, str) else item:
                self._sha.update(text.encode("utf-8") + b"\n")
        self.count += len(out)
        return out

    def fingerprint(self) -> dict:
        return {
            "files": [file_state(f) for f in self.files],
            "lines": self.count,
            "sha256": self._sha.hexdigest(),
        }


class Output(Protocol):
    """Where a stream's text goes (open_output)."""

    name: str  # for messages: the path, or "standard output"

    def start(self, source: Source) -> int:
        """Items already done (a resume skips them in source), 0 for a fresh start."""

    def write(self, text: str, source: Source) -> None:
        """Append one buffer's text; source says what has been consumed with it."""

    def finish(self, source: Source, keep_progress: bool = False) -> None:
        """Everything is written: make the output whole under its name."""

    def close(self) -> None:
        """Release the file (after finish, or when the stream failed)."""


class _Direct:
    """Standard output, or a path that is no regular file (a pipe, /dev/full): each buffer
    written and flushed as it comes; there is nothing to rename or to resume."""

    def __init__(self, path: str) -> None:
        self.name = "standard output" if path == "-" else path
        self._f = sys.stdout if path == "-" else open(path, "w", encoding="utf-8")  # noqa: SIM115

    def start(self, source: Source) -> int:
        return 0

    def write(self, text: str, source: Source) -> None:
        self._f.write(text)
        self._f.flush()

    def finish(self, source: Source, keep_progress: bool = False) -> None:
        self._f.flush()

    def close(self) -> None:
        if self._f is not sys.stdout:
            self._f.close()


def progress_path(path: str | Path) -> Path:
    """NAME.progress: what NAME.part holds while NAME is being written."""
    return Path(f"{path}.progress")


def done(path: str | Path) -> None:
    """Forget the progress kept beside a finished output (stream(..., keep_progress=True))."""
    progress_path(path).unlink(missing_ok=True)


def _flat(d: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _replace_text(path: Path, text: str) -> None:
    """Replace a small file so that it is the old one or the whole new one, even on a crash."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Resumable:
    """A regular file written as NAME.part with NAME.progress beside it, renamed at the end."""

    def __init__(self, path: str, resume: bool, settings: Callable[[], dict]) -> None:
        self.name = path
        real = Path(os.path.realpath(path))  # a symlink's target is what gets written
        self.path, self.part = real, real.with_name(real.name + ".part")
        self.progress = progress_path(real)
        self._resume, self._settings = resume, settings
        self._f = None
        self._size = 0
        self._complete = False

    def _fail(self, why: str) -> ConfigError:
        return ConfigError(
            f"cannot resume {self.path}: {why}; rerun as before, or delete {self.progress} to "
            "start again"
        )

    def _saved(self) -> dict | None:
        """The progress of an interrupted run, None when there is nothing to continue."""
        if not self.progress.is_file():
            return None
        try:
            saved = json.loads(self.progress.read_text(encoding="utf-8"))
            complete, lines = bool(saved["complete"]), int(saved["lines"])
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                f"{self.progress}: not a progress file written by nmt ({err}); delete it and "
                f"{self.part} to start again"
            ) from None
        if not (self.path if complete else self.part).is_file():
            return None  # the output was renamed, or the part removed: start afresh
        if not self._resume:
            raise ConfigError(
                f"{self.part if not complete else self.path} holds {lines:,} lines of an "
                f"interrupted run: pass resume=true to continue it, or delete {self.progress} "
                "to start again"
            )
        return saved

    def start(self, source: Source) -> int:
        self.settings = json.loads(json.dumps(self._settings()))  # as the file will hold them
        saved = self._saved()
        if saved is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.part, "wb")  # noqa: SIM115
            return 0
        self._check(saved, source)
        self._complete, self._size = saved["complete"], saved["bytes"]
        held = self.path if self._complete else self.part
        have = held.stat().st_size
        if have < self._size or (self._complete and have != self._size):
            raise self._fail(f"{held} has {have:,} bytes, {self.progress} says {self._size:,}")
        if not self._complete:
            self._f = open(self.part, "r+b")  # noqa: SIM115
            self._f.truncate(self._size)  # a kill between writing text and progress
            self._f.seek(self._size)
        return source.count

    def _check(self, saved: dict, source: Source) -> None:
        """Refuse to continue unless the settings and the input consumed are those of the
        interrupted run; skips the items it did in source."""
        old, new = dict(_flat(saved["settings"])), dict(_flat(self.settings))
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                raise self._fail(f"{key} was {old.get(key)!r}, now {new.get(key)!r}")
        was, now = saved["input"], source.fingerprint()
        for before, after in zip(was["files"], now["files"], strict=True):
            if before["path"] != after["path"]:
                raise self._fail(f"the input was {before['path']}, now {after['path']}")
            if before != after:
                raise self._fail(f"{after['path']} changed (size or modification time)")
        source.take(was["lines"], wait=True)
        name = " and ".join(f["path"] for f in now["files"])
        if source.count < was["lines"]:
            raise self._fail(f"{name} has {source.count:,} lines, {was['lines']:,} were done")
        if source.fingerprint()["sha256"] != was["sha256"]:
            raise self._fail(f"the first {was['lines']:,} lines of {name} are not those done")

    def _record(self, source: Source) -> None:
        state = {
            "complete": self._complete,
            "lines": source.count,
            "bytes": self._size,
            "input": source.fingerprint(),
            "settings": self.settings,
        }
        _replace_text(self.progress, json.dumps(state, indent=1) + "\n")

    def write(self, text: str, source: Source) -> None:
        data = text.encode("utf-8")
        self._f.write(data)
        self._f.flush()
        os.fsync(self._f.fileno())  # the text is on disk before the progress says so
        self._size += len(data)
        self._record(source)

    def finish(self, source: Source, keep_progress: bool = False) -> None:
        if not self._complete:
            self.close()
            os.replace(self.part, self.path)
            self._complete = True
        if keep_progress:
            self._record(source)
        else:
            self.progress.unlink(missing_ok=True)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def open_output(path: str, resume: bool, settings: Callable[[], dict]) -> Output:
    """Where a stream writes: "-" (standard output), a pipe or a device is written directly;
    a file (existing or not) resumably. settings() gives what a resume must
    find unchanged (decode settings, the model's hashes), as JSON values; it is called only
    for a file."""
    if _special(path) and not os.path.isdir(path):
        if resume:
            where = "standard output" if path == "-" else f"{path}, which is no regular file"
            raise ConfigError(
                f"resume=true continues an output file of an interrupted run, but the output "
                f"is {where}; give output=FILE"
            )
        return _Direct(path)
    return _Resumable(path, resume, settings)


def stream(
    source: Source,
    out: Output,
    size: int,
    work: Callable[[list[Item], int], str],
    keep_progress: bool = False,
) -> int:
    """Take source in buffers of `size` items, write work(items, first) for each (first: the
    0-based position of items[0] in the whole input) to out, in order; return the items done.

    A resumed output skips the buffers it holds; it then ends with the same bytes as a run
    that was never interrupted, the buffers being the same (a file's are; those of a pipe end
    where its writer paused). keep_progress leaves the progress beside the finished output
    (for work that goes on after it; `done` removes it)."""
    try:
        first = out.start(source)
        while items := source.take(size):
            out.write(work(items, first), source)
            first += len(items)
        out.finish(source, keep_progress)
    finally:
        out.close()
    return first
