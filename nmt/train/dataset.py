"""Training data for one run: read and validate the corpus, train SentencePiece, encode, filter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nmt.config import DataConfig
from nmt.data.batching import Batch, make_batch
from nmt.data.corpus import filter_pairs, read_parallel
from nmt.data.tokenizer import Vocabularies
from nmt.errors import DataError
from nmt.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class EncodedSplit:
    """One split as subword ids (without EOS) beside its raw text."""

    src: list[list[int]]
    tgt: list[list[int]]
    src_text: list[str]
    tgt_text: list[str]

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, index: list[int]) -> Batch:
        """The pairs at `index` as one padded batch (on the CPU)."""
        return make_batch([self.src[i] for i in index], [self.tgt[i] for i in index], index)


def prepare_data(cfg: DataConfig, run_dir: Path) -> tuple[Vocabularies, EncodedSplit, EncodedSplit]:
    """Read train and valid splits, train (or reuse) the run's SentencePiece models, encode.

    Training pairs that are empty, too long or too unbalanced are dropped and counted;
    validation pairs are all kept (up to data.max_valid) so its BLEU is over the whole set.
    """
    train = read_parallel(cfg.train, cfg.src, cfg.tgt, cfg.tsv_header)
    valid = read_parallel(cfg.valid, cfg.src, cfg.tgt, cfg.tsv_header)
    log.info(
        "corpus: %s pairs from %s; %s validation pairs from %s",
        f"{len(train):,}",
        train.origin,
        f"{len(valid):,}",
        valid.origin,
    )
    if any(path.is_file() for path in RunDir(run_dir).spm_models):
        vocabs = Vocabularies.load(run_dir)
        log.info("SentencePiece: reusing the models in %s", run_dir)
    else:
        vocabs = Vocabularies.train(train.src, train.tgt, run_dir, cfg)
        log.info(
            "SentencePiece: %s vocabulary, source %d / target %d pieces",
            "joint" if vocabs.joint else "separate",
            vocabs.src.vocab_size,
            vocabs.tgt.vocab_size,
        )
    src_ids, tgt_ids = vocabs.src.encode(train.src), vocabs.tgt.encode(train.tgt)
    keep, report = filter_pairs(src_ids, tgt_ids, cfg.max_tokens, cfg.max_ratio)
    log.info("training pairs: %s", report.summary())
    if not keep:
        raise DataError(
            f"no training pairs left in {cfg.train} after filtering; check the files or raise "
            f"data.max_tokens ({cfg.max_tokens}) / data.max_ratio ({cfg.max_ratio})"
        )
    train_split = EncodedSplit(
        [src_ids[i] for i in keep],
        [tgt_ids[i] for i in keep],
        [train.src[i] for i in keep],
        [train.tgt[i] for i in keep],
    )
    n_valid = cfg.max_valid or len(valid)
    vsrc, vtgt = valid.src[:n_valid], valid.tgt[:n_valid]
    valid_split = EncodedSplit(vocabs.src.encode(vsrc), vocabs.tgt.encode(vtgt), vsrc, vtgt)
    return vocabs, train_split, valid_split
