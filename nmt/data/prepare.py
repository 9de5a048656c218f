"""Prepare a corpus once: read it streaming, train SentencePiece on a sample drawn across all
of it, encode it in a pool of worker processes, filter, and write a data directory
(nmt/data/prepared.py has the layout) that training maps instead of holding the corpus.

Two passes over the training files, neither holding them: the first checks every line (UTF-8,
alignment, TSV fields), counts the pairs, hashes their text and draws SentencePiece's sample;
the second encodes chunks of pairs in `workers` processes (a bounded number in flight), and
the main process writes their ids, in order, to the arrays. Everything goes to temporary
names first; the header is written last, so a directory without one is never taken for a
complete corpus, and a killed preparation is cleaned up and redone by the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nmt.data.corpus import (
    FilterReport,
    iter_parallel_blocks,
    parallel_origin,
    read_parallel,
    split_files,
    write_atomically,
)
from nmt.data.prepared import (
    FORMAT,
    HEADER,
    MAGIC,
    VALID,
    PreparedCorpus,
    copy_models,
    id_settings,
    read_header,
    token_dtype,
    train_files,
)
from nmt.data.stream import file_blocks, file_state
from nmt.data.tokenizer import Reservoir, Vocabularies, encode_chunk, start_encoder
from nmt.errors import ConfigError, DataError
from nmt.rundir import RunDir

log = logging.getLogger(__name__)

CHUNK_PAIRS = 20_000  # pairs a worker encodes at a time
LOG_NAME = "prepare.log"  # nmt-prepare's own log, beside what it writes


def _fingerprint(settings: dict, contents: dict[str, str]) -> str:
    blob = json.dumps(
        {"format": FORMAT, "settings": settings, "contents": contents}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Scan:
    """What the first pass over the training split found."""

    pairs: int
    sha256: str  # of every pair's text, "source\ttarget\n", in order
    samples: tuple[list[str], list[str]]  # SentencePiece's sample (joint: all in the first)


def _scan(cfg, bar: bool, sample: bool = True) -> Scan:
    """Read the training split once, checking every line, hashing and (for SentencePiece,
    unless `sample` is false) sampling as it goes."""
    joint = cfg.joint_vocab
    src_sample = Reservoir(cfg.spm_max_sentences)
    tgt_sample = src_sample if joint else Reservoir(cfg.spm_max_sentences)
    digest = hashlib.sha256()
    pairs = 0
    progress = tqdm(desc="reading", unit=" pairs", unit_scale=True, disable=not bar)
    with progress:
        for src, tgt in iter_parallel_blocks(*_spec(cfg), file_blocks):
            digest.update(
                "".join(map("{}\t{}\n".format, src, tgt)).encode("utf-8", "surrogatepass")
            )
            if sample and joint:  # in pair order, whatever the blocks' boundaries
                src_sample.extend(itertools.chain.from_iterable(zip(src, tgt, strict=True)))
            elif sample:
                src_sample.extend(src)
                tgt_sample.extend(tgt)
            pairs += len(src)
            progress.update(len(src))
    samples = (src_sample.lines, [] if joint else tgt_sample.lines)
    return Scan(pairs, digest.hexdigest(), samples)


def _chunks(cfg) -> Iterator[tuple[list[str], list[str]]]:
    src: list[str] = []
    tgt: list[str] = []
    for src_block, tgt_block in iter_parallel_blocks(*_spec(cfg), file_blocks):
        src.extend(src_block)
        tgt.extend(tgt_block)
        while len(src) >= CHUNK_PAIRS:
            yield src[:CHUNK_PAIRS], tgt[:CHUNK_PAIRS]
            del src[:CHUNK_PAIRS], tgt[:CHUNK_PAIRS]
    if src:
        yield src, tgt


def _spec(cfg) -> tuple[str, str, str, bool]:
    return cfg.train, cfg.src, cfg.tgt, cfg.tsv_header


class _Arrays:
    """The training arrays being written: each to NAME.tmp, renamed when all are complete."""

    def __init__(self, root: Path, dtype: str) -> None:
        self.root, self.dtype = root, dtype
        # open across add() calls: closed by finish() or abandon()
        self.files = {name: open(root / f"{name}.tmp", "wb") for name in train_files(dtype)}  # noqa: SIM115
        self.offsets = {"src": 0, "tgt": 0}
        self.pairs = 0
        self.digest = hashlib.sha256()  # of the kept pairs' text: the checkpoints' train_sha256
        for side in ("src", "tgt"):
            self.files[f"train.{side}.idx"].write(np.zeros(1, np.int64).tobytes())

    def add(self, kept: int, text: bytes, src_ids, tgt_ids, lengths) -> None:
        self.digest.update(text)
        for side, ids, column in (("src", src_ids, 0), ("tgt", tgt_ids, 1)):
            self.files[f"train.{side}.bin"].write(ids.tobytes())
            ends = self.offsets[side] + np.cumsum(lengths[:, column], dtype=np.int64)
            self.files[f"train.{side}.idx"].write(ends.tobytes())
            self.offsets[side] = int(ends[-1]) if len(ends) else self.offsets[side]
        self.files["train.len"].write(lengths.astype(np.int32).tobytes())
        self.pairs += kept

    def finish(self) -> dict[str, int]:
        """fsync and rename every file; their sizes."""
        sizes = {}
        for name, f in self.files.items():
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(self.root / f"{name}.tmp", self.root / name)
            sizes[name] = (self.root / name).stat().st_size
        return sizes

    def abandon(self) -> None:
        for name, f in self.files.items():
            f.close()
            (self.root / f"{name}.tmp").unlink(missing_ok=True)


def _encode(cfg, root: Path, vocabs: Vocabularies, workers: int, total: int, bar: bool):
    """The second pass: encode and filter chunk by chunk, write in order; (arrays, sizes,
    report)."""
    dtype = token_dtype(max(vocabs.src.vocab_size, vocabs.tgt.vocab_size)).name
    arrays = _Arrays(root, dtype)
    report = FilterReport(0, 0, 0, 0, cfg.max_tokens, cfg.max_ratio)
    models = (str(vocabs.src.model_path), str(vocabs.tgt.model_path))
    limits = (cfg.max_tokens, cfg.max_ratio, dtype)
    pool = None
    try:
        if workers > 1:
            # spawn, not fork: the parent may hold threads (torch's, tqdm's) whose locks a
            # forked child would inherit held
            pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=start_encoder,
                initargs=models,
            )
        else:
            start_encoder(*models)
        pending: deque = deque()

        def write_oldest() -> None:
            nonlocal report
            pairs, result = pending.popleft()
            kept, part, *arrays_of_chunk = _result(result) if pool else result
            arrays.add(kept, *arrays_of_chunk)
            report += part
            progress.update(pairs)

        bar_options = dict(total=total, desc="encoding", unit=" pairs", unit_scale=True)
        with tqdm(**bar_options, disable=not bar) as progress:
            for src, tgt in _chunks(cfg):
                if pool:
                    pending.append((len(src), pool.submit(encode_chunk, src, tgt, *limits)))
                else:
                    pending.append((len(src), encode_chunk(src, tgt, *limits)))
                while len(pending) > (2 * workers if pool else 0):  # a bounded number in flight
                    write_oldest()
            while pending:
                write_oldest()
        sizes = arrays.finish()
    except BaseException:
        arrays.abandon()
        raise
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    return arrays, sizes, report


def _result(future):
    """A worker's encoded chunk; a worker that could not start or died, as a DataError."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise DataError(
            "a worker process encoding the corpus could not start or died (out of memory, "
            'or a script that calls nmt without `if __name__ == "__main__":` around its '
            "entry, which every started process runs again); guard the script's entry, or "
            "prepare in this process with workers=1"
        ) from None


def _ours(name: str) -> bool:
    """Whether a file name is one nmt-prepare writes (or its temporary)."""
    names = {
        HEADER,
        VALID,
        LOG_NAME,
        *train_files("uint16"),
        *(p.name for p in RunDir(".").spm_models),
    }
    return name in names or name.endswith(".tmp")


def _clear_incomplete(root: Path) -> None:
    """Remove what a stopped preparation left in root; refuse a folder holding other files."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ConfigError(f"{root} is a file; give nmt-prepare a directory to write (out=DIR)")
    others = sorted(p.name for p in root.iterdir() if not _ours(p.name))
    if others:
        shown = ", ".join(others[:4]) + (", …" if len(others) > 4 else "")
        raise ConfigError(
            f"{root} holds files nmt-prepare did not write ({shown}); give out= a new or empty "
            "directory, so that nothing of yours is overwritten"
        )
    for path in root.iterdir():
        if path.name != LOG_NAME:
            path.unlink()


def _reusable(
    root: Path, settings: dict, files: dict[str, list[str]], models: Path | None
) -> dict | None:
    """The header of a complete preparation in root, if it was made from the same files
    (path, size, modification time) with the same settings (and the SentencePiece models in
    `models`, if given); None if there is none."""
    if not (root / HEADER).is_file():
        return None
    header = read_header(root)
    same_files = all(
        split in files and [file_state(f) for f in files[split]] == header["inputs"][split]["files"]
        for split in ("train", "valid")
    )
    same_models = models is None or header["spm"] == RunDir(models).spm_hashes()
    return header if same_files and same_models and header["settings"] == settings else None


class OtherCorpusError(ConfigError):
    """The directory holds a preparation of other inputs or settings."""

    def __init__(self, message: str, recorded: str, now: str) -> None:
        super().__init__(message)
        self.recorded, self.now = recorded, now


def _refuse_other(root: Path, header: dict, fingerprint: str) -> None:
    if header["fingerprint"] != fingerprint:
        raise OtherCorpusError(
            f"{root} holds another prepared corpus (from {header['inputs']['train']['origin']}, "
            f"fingerprint {header['fingerprint'][:12]}…, this one {fingerprint[:12]}…): give "
            "out= another directory, or delete that one to prepare this corpus there",
            header["fingerprint"],
            fingerprint,
        )


def prepare(
    cfg, out: str | Path, workers: int = 1, progress: bool = True, models: Path | None = None
) -> PreparedCorpus:
    """Prepare the corpus `cfg` (a DataConfig) describes into `out`, or reuse a preparation
    of the same inputs with the same settings; the mapped result. `models`: a directory
    whose SentencePiece models encode the corpus (a run's own, on resume) instead of new
    ones trained on it."""
    root = Path(out)
    settings = id_settings(cfg)
    files = {"train": split_files(cfg.train, cfg.src, cfg.tgt)}
    with contextlib.suppress(DataError):  # a valid split that cannot be read: said below
        files["valid"] = split_files(cfg.valid, cfg.src, cfg.tgt)
    if (header := _reusable(root, settings, files, models)) is not None:
        log.info("prepared corpus: reusing %s (%s)", root, header["filter"]["summary"])
        return PreparedCorpus.open(root)
    start = time.perf_counter()
    scan = _scan(cfg, progress, sample=models is None)  # training's errors before valid's
    valid = read_parallel(cfg.valid, cfg.src, cfg.tgt, cfg.tsv_header)
    files["valid"] = split_files(cfg.valid, cfg.src, cfg.tgt)
    n_valid = cfg.max_valid or len(valid)
    valid_text = {"src": valid.src[:n_valid], "tgt": valid.tgt[:n_valid]}
    valid_json = json.dumps(valid_text, ensure_ascii=False).encode()
    valid_sha = hashlib.sha256(valid_json).hexdigest()
    timings = {"read_s": time.perf_counter() - start}
    fingerprint = _fingerprint(settings, {"train": scan.sha256, "valid": valid_sha})
    if (root / HEADER).is_file():  # the files were touched: reuse what has the same contents
        header = read_header(root)
        _refuse_other(root, header, fingerprint)
        log.info("prepared corpus: reusing %s (same contents)", root)
        return PreparedCorpus.open(root)
    _clear_incomplete(root)
    root.mkdir(parents=True, exist_ok=True)
    origin = parallel_origin(cfg.train, cfg.src, cfg.tgt, cfg.tsv_header)
    log.info("corpus: %s pairs from %s", f"{scan.pairs:,}", origin)
    if models is not None:
        copy_models(models, root)
        vocabs = Vocabularies.load(root)
        log.info("SentencePiece: the models of %s", models)
    else:
        # on `workers` threads: its model depends on the count (the header records it), so
        # the same inputs, settings and workers give the same bytes
        vocabs = Vocabularies.train(*scan.samples, root, cfg, threads=workers)
        log.info(
            "SentencePiece: %s vocabulary, source %d / target %d pieces (trained on %s lines)",
            "joint" if vocabs.joint else "separate",
            vocabs.src.vocab_size,
            vocabs.tgt.vocab_size,
            f"{sum(len(s) for s in scan.samples):,}",
        )
    timings["sentencepiece_s"] = time.perf_counter() - start - sum(timings.values())
    del scan.samples[0][:], scan.samples[1][:]
    encoders = max(1, min(workers, -(-scan.pairs // CHUNK_PAIRS)))  # no more than chunks
    arrays, sizes, report = _encode(cfg, root, vocabs, encoders, scan.pairs, progress)
    timings["encode_s"] = time.perf_counter() - start - sum(timings.values())
    log.info("training pairs: %s", report.summary())
    if not arrays.pairs:
        raise DataError(
            f"no training pairs left in {cfg.train} after filtering; check the files or raise "
            f"data.max_tokens ({cfg.max_tokens}) / data.max_ratio ({cfg.max_ratio})"
        )
    write_atomically(root / VALID, valid_json)
    header = {
        "magic": MAGIC,
        "format": FORMAT,
        "fingerprint": fingerprint,
        "name": cfg.name,
        "settings": settings,
        "dtype": arrays.dtype,
        "inputs": {
            "train": {
                "origin": origin,
                "files": [file_state(f) for f in files["train"]],
                "pairs": scan.pairs,
                "sha256": scan.sha256,
            },
            "valid": {
                "origin": parallel_origin(cfg.valid, cfg.src, cfg.tgt, cfg.tsv_header),
                "files": [file_state(f) for f in files["valid"]],
                "pairs": n_valid,
                "sha256": valid_sha,
            },
        },
        "splits": {
            "train": {
                "pairs": arrays.pairs,
                "src_tokens": arrays.offsets["src"],
                "tgt_tokens": arrays.offsets["tgt"],
            }
        },
        "filter": {**report.__dict__, "summary": report.summary()},
        "train_sha256": arrays.digest.hexdigest(),
        "spm": RunDir(root).spm_hashes(),
        "files": sizes,
        "workers": workers,  # also SentencePiece's threads
        "encoders": encoders,  # processes that encoded (at most one a chunk)
        "seconds": round(time.perf_counter() - start, 2),
        "timings": {key: round(value, 2) for key, value in timings.items()},
    }
    write_atomically(root / HEADER, (json.dumps(header, indent=1) + "\n").encode())
    log.info("prepared corpus: %s in %.1f s", root, header["seconds"])
    return PreparedCorpus.open(root)
