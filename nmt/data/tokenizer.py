"""SentencePiece subword models: train, load, encode, decode; one per side or one joint.

Every model nmt trains reserves the same special ids (nmt.PAD_ID … nmt.EOS_ID), so the
model code can rely on them without opening a file.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sentencepiece as spm

from nmt import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.data.corpus import FilterReport, filter_pairs, write_atomically
from nmt.errors import ConfigError, DataError
from nmt.rundir import RunDir

if TYPE_CHECKING:  # annotations only: the data layer need not import Hydra
    from nmt.config import DataConfig

# Every character str.splitlines() ends a line at. A model can emit one (the byte piece
# <0x0A> decodes to "\n"), and one would shift every later line of the output file.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")
_TOO_LARGE = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def one_line(text: str) -> str:
    """text with each run of line-break characters replaced by one space: a translation as
    nmt writes it, one line per input line."""
    return _LINE_BREAKS.sub(" ", text)


class Reservoir:
    """A uniform sample of up to k of the non-blank lines added one by one (all when k <= 0),
    reproducible for a seed: what SentencePiece trains on, drawn across a whole corpus
    without holding it.

    Li's algorithm L (ACM TOMS 20(4), 1994): once the sample is full, the number of lines to
    pass over before the next replacement is drawn at once, so most lines cost a comparison,
    not a random number (with the blocks, the first pass over 3M pairs: 10.1 s → 8.7 s)."""

    def __init__(self, k: int, seed: int = 0) -> None:
        self.k, self.rng, self.seen, self.lines = k, random.Random(seed), 0, []
        self._w = 1.0  # the running maximum of k uniform keys, as in Li's paper
        self._next = 0  # the value of `seen` at which the next line replaces one

    def add(self, line: str) -> None:
        self.extend((line,))

    def extend(self, lines: Iterable[str]) -> None:
        """add() each line in turn (the same sample), a step a replacement, not a line."""
        kept = [line for line in lines if line and not line.isspace()]
        base, taken = self.seen, 0  # kept[i] is line number base + i + 1 of those seen
        if self.k <= 0 or len(self.lines) < self.k:
            taken = len(kept) if self.k <= 0 else min(len(kept), self.k - len(self.lines))
            self.lines.extend(kept[:taken])
            self.seen = base + taken
            if len(self.lines) == self.k and taken:  # just filled: the first skip
                self._draw()
        if self.k > 0:
            while self._next <= base + len(kept) and len(self.lines) == self.k:
                self.seen = self._next
                self.lines[self.rng.randrange(self.k)] = kept[self._next - base - 1]
                self._draw()
        self.seen = base + len(kept)

    def _draw(self) -> None:
        """Shrink the key maximum and skip ahead to the next replacement."""
        # 1 - random() lies in (0, 1]: no log(0); a maximum of 1.0 gives log1p(-1) = -inf
        # and a skip of 0, never an error
        self._w *= math.exp(math.log(1.0 - self.rng.random()) / self.k)
        skip = math.floor(math.log(1.0 - self.rng.random()) / math.log1p(-self._w))
        self._next = self.seen + skip + 1


def _sample(sentences: Iterable[str], k: int, seed: int) -> list[str]:
    """Up to k sentences that are not blank (all when k <= 0); a uniform sample if more.

    SentencePiece's own sampling (input_sentence_size) is not reproducible across processes
    even after set_random_generator_seed, so we sample with a local seeded generator.
    """
    reservoir = Reservoir(k, seed)
    for line in sentences:
        reservoir.add(line)
    return reservoir.lines


def _translate_error(e: RuntimeError, vocab_size: int, byte_fallback: bool) -> ConfigError:
    """Turn SentencePiece's trainer message into one that names the config key."""
    message = str(e)
    if m := _TOO_SMALL.search(message):
        need = int(m.group(2))
        parts = "4 special tokens, " + ("256 byte-fallback pieces, " if byte_fallback else "")
        chars = need - 4 - (256 if byte_fallback else 0)
        return ConfigError(
            f"data.vocab_size={vocab_size} is too small for this corpus: SentencePiece needs "
            f"at least {need} pieces ({parts}{chars} distinct characters). Set data.vocab_size "
            f"to {need} or more (a few thousand for real corpora), or lower "
            "data.character_coverage"
        )
    if m := _TOO_LARGE.search(message):
        return ConfigError(
            f"data.vocab_size={vocab_size} is too large for this corpus: it supports at most "
            f"{m.group(2)} pieces. Set data.vocab_size to {m.group(2)} or less, or add data"
        )
    return ConfigError(
        f"SentencePiece could not train a model with data.vocab_size={vocab_size}: {message}"
    )


class Tokenizer:
    """A SentencePiece model: text ↔ subword ids, without BOS/EOS (batching adds EOS)."""

    def __init__(self, processor: spm.SentencePieceProcessor, model_path: Path) -> None:
        self.sp = processor
        self.model_path = Path(model_path)
        self._specials = {PAD_ID, BOS_ID, EOS_ID}

    @classmethod
    def train(
        cls,
        sentences: Iterable[str],
        model_path: str | Path,
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        byte_fallback: bool = True,
        max_sentences: int = 1_000_000,
        seed_sentencepiece_size: int | None = None,
        seed: int = 0,
        threads: int | None = None,
    ) -> Tokenizer:
        """Train a model on the sentences that are not blank, write it to `model_path`, load it.

        With byte fallback any Unicode text encodes without <unk>. The vocabulary may come out
        smaller than `vocab_size` on a small corpus (hard_vocab_limit=False); too small a
        `vocab_size` raises ConfigError naming data.vocab_size and the minimum that works.
        Beyond `max_sentences` lines (0 = no limit) a sample drawn with `seed` is used.
        SentencePiece trains on `threads` threads (default: up to 4 of the machine's CPUs).
        """
        model_path = Path(model_path)
        sample = _sample(sentences, max_sentences, seed)
        if not sample:
            raise DataError(
                f"no non-empty sentences to train the SentencePiece model {model_path} on; "
                "check that the training corpus is not empty"
            )
        options = dict(
            model_type=model_type,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            byte_fallback=byte_fallback,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary, not a failure
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_piece="<pad>",
            unk_piece="<unk>",
            bos_piece="<s>",
            eos_piece="</s>",
            input_sentence_size=0,  # `sample` is already at most max_sentences long
            num_threads=threads or min(4, os.cpu_count() or 1),
            minloglevel=2,  # errors only: no trainer chatter on stderr
        )
        if seed_sentencepiece_size is not None:
            options["seed_sentencepiece_size"] = seed_sentencepiece_size
        writer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sample), model_writer=writer, **options
            )
        except RuntimeError as e:
            raise _translate_error(e, vocab_size, byte_fallback) from None
        write_atomically(model_path, writer.getvalue())
        return cls.load(model_path)

    @classmethod
    def load(cls, model_path: str | Path) -> Tokenizer:
        """Load a model file written by `train`."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise DataError(
                f"{model_path}: no such SentencePiece model; it is written by nmt-train into "
                "the run directory"
            )
        processor = spm.SentencePieceProcessor()
        try:
            processor.load(str(model_path))
        except (OSError, RuntimeError) as e:
            raise DataError(
                f"{model_path}: not a valid SentencePiece model ({e}); it may be truncated: "
                "restore the run's own copy (its checkpoints work only with it)"
            ) from None
        return cls(processor, model_path)

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials and byte pieces included."""
        return self.sp.get_piece_size()

    def encode(self, lines: list[str]) -> list[list[int]]:
        """Subword ids of each line, without BOS or EOS."""
        return self.sp.encode(list(lines), out_type=int)

    def decode(self, ids: Iterable[Iterable[int]]) -> list[str]:
        """Detokenised text of each id sequence; PAD/BOS/EOS and out-of-range ids are skipped."""
        size, specials = self.vocab_size, self._specials
        clean = [[i for i in seq if 0 <= i < size and i not in specials] for seq in ids]
        return self.sp.decode(clean) if clean else []

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The subword strings of ids, e.g. ['▁hello', '▁wor', 'ld'], for attention plots."""
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.model_path)!r}, vocab_size={self.vocab_size})"


@dataclass
class Vocabularies:
    """The source and target tokenizers; with a joint vocabulary they are the same object."""

    src: Tokenizer
    tgt: Tokenizer
    joint: bool

    @classmethod
    def train(
        cls,
        src_lines: Iterable[str],
        tgt_lines: Iterable[str],
        out_dir: str | Path,
        cfg: DataConfig,
        seed: int = 0,
        threads: int | None = None,
    ) -> Vocabularies:
        """Train spm.model on both sides (cfg.joint_vocab) or spm.src.model + spm.tgt.model
        (the names are RunDir's)."""
        run = RunDir(out_dir)
        options = dict(
            vocab_size=cfg.vocab_size,
            model_type=cfg.spm_model_type,
            character_coverage=cfg.character_coverage,
            byte_fallback=cfg.byte_fallback,
            max_sentences=cfg.spm_max_sentences,
            seed=seed,
            threads=threads,
        )
        if cfg.joint_vocab:
            both = itertools.chain(src_lines, tgt_lines)
            tokenizer = Tokenizer.train(both, run.spm_joint, **options)
            return cls(tokenizer, tokenizer, joint=True)
        src = Tokenizer.train(src_lines, run.spm_src, **options)
        tgt = Tokenizer.train(tgt_lines, run.spm_tgt, **options)
        return cls(src, tgt, joint=False)

    @classmethod
    def load(cls, out_dir: str | Path) -> Vocabularies:
        """Load whichever layout `train` wrote into `out_dir`."""
        run = RunDir(out_dir)
        if run.spm_joint.is_file():
            tokenizer = Tokenizer.load(run.spm_joint)
            return cls(tokenizer, tokenizer, joint=True)
        if run.spm_src.is_file() and run.spm_tgt.is_file():
            return cls(Tokenizer.load(run.spm_src), Tokenizer.load(run.spm_tgt), False)
        raise DataError(
            f"no {run.spm_joint.name} or {run.spm_src.name}/{run.spm_tgt.name} in {run.root}: "
            "is this a run directory written by nmt-train?"
        )


# -- encoding in worker processes (nmt/data/prepare.py) ---------------------------------

_WORKER: dict[str, spm.SentencePieceProcessor] = {}


def start_encoder(src_model: str, tgt_model: str) -> None:
    """Pool initializer: load the models once per worker process."""
    for side, path in (("src", src_model), ("tgt", tgt_model)):
        processor = spm.SentencePieceProcessor()
        processor.load(path)
        _WORKER[side] = processor


def encode_chunk(
    src: list[str], tgt: list[str], max_tokens: int, max_ratio: float, dtype: str
) -> tuple[int, FilterReport, bytes, np.ndarray, np.ndarray, np.ndarray]:
    """A chunk of pairs encoded (on one thread) by the models `start_encoder` loaded and
    filtered as `filter_pairs` does: (pairs kept, report, the kept pairs' text as
    "source\ttarget\n" lines in UTF-8 for their sha256, source ids and target ids of the
    kept pairs end to end, (kept, 2) int32 lengths)."""
    src_ids = _WORKER["src"].encode(src, out_type=int, num_threads=1)
    tgt_ids = _WORKER["tgt"].encode(tgt, out_type=int, num_threads=1)
    keep, report = filter_pairs(src_ids, tgt_ids, max_tokens, max_ratio)
    text = "".join(f"{src[i]}\t{tgt[i]}\n" for i in keep).encode("utf-8", "surrogatepass")
    lengths = np.array([(len(src_ids[i]), len(tgt_ids[i])) for i in keep], np.int32)

    def flat(ids: list[list[int]]) -> np.ndarray:
        return np.fromiter(itertools.chain.from_iterable(ids[i] for i in keep), dtype=dtype)

    return len(keep), report, text, flat(src_ids), flat(tgt_ids), lengths.reshape(-1, 2)
