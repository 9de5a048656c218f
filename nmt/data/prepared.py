"""A prepared corpus: the training pairs as flat token arrays on disk, read through mmap.

nmt-prepare (nmt/data/prepare.py) writes a data directory once; training maps it, so a corpus
of millions of pairs is paged from disk, not held as Python lists, and every torchrun rank on
a machine shares the same pages. The layout (format 1):

    prepared.json         the header, written last: magic, format, fingerprint, settings,
                          inputs, counts, filter report, file sizes (its presence = complete)
    train.src.bin         source ids of every kept pair, end to end (uint16 or int32)
    train.tgt.bin         target ids, likewise
    train.src.idx         (N + 1,) int64 offsets: pair i's source is bin[idx[i]:idx[i + 1]]
    train.tgt.idx         likewise for the target
    train.len             (N, 2) lengths (source, target) without EOS, for the batch sampler
    valid.json            the validation pairs as text (small; BLEU needs the references)
    spm.model             the SentencePiece model(s), under the names a run directory uses

Nothing here trusts the files: a missing or short file, another format, or a header that
does not parse is refused naming the file and the fix (`PreparedCorpus.open`).
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nmt import EOS_ID, PAD_ID
from nmt.data.batching import Batch
from nmt.errors import ConfigError, DataError
from nmt.rundir import RunDir

MAGIC = "nmt-prepared-corpus"
FORMAT = 1
HEADER = "prepared.json"
VALID = "valid.json"
SIDES = ("src", "tgt")
# DataConfig keys that change the ids (with the inputs' contents, the fingerprint)
ID_SETTINGS = (
    *("src", "tgt", "tsv_header", "vocab_size", "joint_vocab", "spm_model_type"),
    *("character_coverage", "byte_fallback", "spm_max_sentences", "max_tokens", "max_ratio"),
    "max_valid",
)


def id_settings(cfg) -> dict:
    """The data settings that change the ids, from a DataConfig (or its DictConfig)."""
    return {key: getattr(cfg, key) for key in ID_SETTINGS}


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else int32."""
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32)


def train_files(dtype: str) -> dict[str, tuple[str, int]]:
    """The training arrays' file names → (dtype, values per pair or 0 for a flat array)."""
    return {
        "train.src.bin": (dtype, 0),
        "train.tgt.bin": (dtype, 0),
        "train.src.idx": ("int64", 1),
        "train.tgt.idx": ("int64", 1),
        "train.len": ("int32", 2),
    }


def read_header(root: str | Path) -> dict:
    """prepared.json of a complete data directory, checked for magic and format."""
    root = Path(root)
    path = root / HEADER
    if not root.is_dir():
        raise DataError(
            f"{root}: no such data directory; write it with nmt-prepare data=… out={root}"
        )
    if not path.is_file():
        raise DataError(
            f"{path}: missing, so {root} holds no complete prepared corpus (a preparation "
            f"that stopped before its end leaves none); run nmt-prepare again with out={root}"
        )
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"{path}: not a readable header ({e}); it was truncated or edited: prepare the "
            "corpus again with nmt-prepare"
        ) from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise DataError(f"{path}: not written by nmt-prepare (no {MAGIC!r} magic in it)")
    if header.get("format") != FORMAT:
        raise DataError(
            f"{path}: a prepared corpus of format {header.get('format')!r}, but this nmt reads "
            f"format {FORMAT}; prepare it again with this version's nmt-prepare"
        )
    return header


def _map(path: Path, dtype: str, size: int, width: int) -> tuple[np.ndarray, mmap.mmap | None]:
    """The file as a read-only array (a copy-free view of an mmap), its length checked."""
    expected = size * np.dtype(dtype).itemsize * max(width, 1)
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise DataError(
            f"{path}: missing from the prepared corpus; prepare it again with nmt-prepare"
        ) from None
    if actual != expected:
        raise DataError(
            f"{path}: {actual:,} bytes, but its header says {expected:,}; the file is truncated "
            "or was replaced: prepare the corpus again with nmt-prepare"
        )
    if expected == 0:
        return np.zeros((0, width) if width > 1 else 0, dtype=dtype), None
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mmap, "MADV_RANDOM"):  # batches read scattered pairs: no read-ahead around them
        mm.madvise(mmap.MADV_RANDOM)
    array = np.frombuffer(mm, dtype=dtype)
    return (array.reshape(-1, width) if width > 1 else array), mm


@dataclass
class PreparedCorpus:
    """The training pairs of a data directory, mapped; `batch(index)` collates some of them.

    Only the pages a batch touches are read, and `batch` hands them back to the page cache
    afterwards (madvise DONTNEED: the data stays cached, just not counted in this process),
    so resident memory does not grow with the corpus.
    """

    root: Path
    header: dict
    src: np.ndarray  # (total source tokens,) ids
    tgt: np.ndarray  # (total target tokens,) ids
    src_offsets: np.ndarray  # (N + 1,) int64
    tgt_offsets: np.ndarray  # (N + 1,) int64
    lengths: np.ndarray  # (N, 2) int32: source, target lengths without EOS
    _maps: list[mmap.mmap]

    @classmethod
    def open(cls, root: str | Path) -> PreparedCorpus:
        """Map a data directory written by nmt-prepare, refusing one that is incomplete."""
        root = Path(root)
        header = read_header(root)
        try:
            train = header["splits"]["train"]
            pairs, tokens = int(train["pairs"]), {s: int(train[f"{s}_tokens"]) for s in SIDES}
            dtype = str(header["dtype"])
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{root / HEADER}: lacks the training split's counts; prepare the corpus again"
            ) from None
        sizes = {
            "train.src.bin": tokens["src"],
            "train.tgt.bin": tokens["tgt"],
            "train.src.idx": pairs + 1,
            "train.tgt.idx": pairs + 1,
            "train.len": pairs,
        }
        arrays, maps = {}, []
        for name, (kind, width) in train_files(dtype).items():
            arrays[name], mm = _map(root / name, kind, sizes[name], width)
            maps += [mm] if mm is not None else []
        corpus = cls(
            root,
            header,
            arrays["train.src.bin"],
            arrays["train.tgt.bin"],
            arrays["train.src.idx"],
            arrays["train.tgt.idx"],
            arrays["train.len"],
            maps,
        )
        for side, offsets, flat in (
            ("src", corpus.src_offsets, corpus.src),
            ("tgt", corpus.tgt_offsets, corpus.tgt),
        ):
            if pairs and (offsets[0] != 0 or offsets[-1] != len(flat)):
                raise DataError(
                    f"{root / f'train.{side}.idx'}: its offsets do not span train.{side}.bin; "
                    "the directory mixes files of two preparations: prepare it again"
                )
        return corpus

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: np.ndarray | list[int]) -> Batch:
        """The pairs at `index` (B,) as one padded batch on the CPU, each side + [EOS]."""
        rows = np.asarray(index, dtype=np.int64)
        src, src_len = _gather(self.src, self.src_offsets, rows)
        tgt, tgt_len = _gather(self.tgt, self.tgt_offsets, rows)
        self.release()
        return Batch(src, src_len, tgt, tgt_len, torch.from_numpy(rows))

    def release(self) -> None:
        """Drop this process's mapping of the pages read so far (they stay in the page cache)."""
        for mm in self._maps:
            if hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED)

    def describe(self) -> str:
        """One line for the log: pairs, where, from what, what the filters dropped."""
        h = self.header
        return (
            f"{len(self):,} training pairs in {self.root}, prepared from "
            f"{h['inputs']['train']['origin']} ({h['filter']['summary']})"
        )


def _gather(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray):
    """(B, L) long: the sequences at rows + [EOS], padded with PAD_ID; (B,) lengths with EOS."""
    start = offsets[rows]  # (B,)
    length = offsets[rows + 1] - start  # (B,)
    width = int(length.max(initial=0)) + 1
    column = np.arange(width)  # (L,)
    inside = column[None, :] < length[:, None]  # (B, L)
    where = np.where(inside, start[:, None] + column[None, :], 0)  # (B, L)
    ids = np.where(inside, flat[where] if len(flat) else 0, PAD_ID).astype(np.int64)
    ids[np.arange(len(rows)), length] = EOS_ID
    return torch.from_numpy(ids), torch.from_numpy(length + 1)


def check_settings(header: dict, cfg, root: Path) -> None:
    """Refuse a prepared corpus whose id settings differ from the config's, naming each key."""
    recorded = header["settings"]
    differ = [
        f"data.{key}={value!r} (prepared with {recorded.get(key)!r})"
        for key, value in id_settings(cfg).items()
        if recorded.get(key) != value
    ]
    if differ:
        raise ConfigError(
            f"{root / HEADER}: the corpus was prepared with other data settings than this run's: "
            f"{'; '.join(differ)}. Use data=prepared data.prepared={root} to take its settings, "
            "give the same values, or prepare again with these settings into another out="
        )


def copy_models(root: Path, run_dir: Path) -> None:
    """The prepared corpus's SentencePiece models into the run directory (which translation
    loads), where it has none yet."""
    source, target = RunDir(root), RunDir(run_dir)
    for src_path, dst_path in zip(source.spm_models, target.spm_models, strict=True):
        # a model the run has is its own: checked against its checkpoint and the header
        if not src_path.is_file() or dst_path.is_file():
            continue
        tmp = dst_path.with_name(f".{dst_path.name}.tmp")
        shutil.copyfile(src_path, tmp)
        os.replace(tmp, dst_path)
