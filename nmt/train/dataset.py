"""Training data for one run: a prepared corpus, mapped (nmt/data/prepared.py), and the
validation pairs, small enough to hold, encoded by the run's SentencePiece models.

There is one path: `data.prepared=DIR` maps a directory nmt-prepare wrote; otherwise the
corpus files are prepared into RUN/data first (reused when the run resumes).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from nmt.config import DataConfig
from nmt.data.batching import Batch, make_batch
from nmt.data.prepare import OtherCorpusError, prepare
from nmt.data.prepared import VALID, PreparedCorpus, check_settings, copy_models
from nmt.data.tokenizer import Vocabularies
from nmt.errors import RunDirError
from nmt.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class EncodedSplit:
    """One small split (validation) as subword ids (without EOS) beside its raw text."""

    src: list[list[int]]
    tgt: list[list[int]]
    src_text: list[str]
    tgt_text: list[str]

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, index: list[int]) -> Batch:
        """The pairs at `index` as one padded batch (on the CPU)."""
        return make_batch([self.src[i] for i in index], [self.tgt[i] for i in index], index)


def load_data(
    cfg: DataConfig, run_dir: Path, workers: int, writes: bool
) -> tuple[Vocabularies, PreparedCorpus, EncodedSplit]:
    """The run's vocabularies, training pairs (mapped) and validation pairs.

    `writes`: this process writes the run directory (rank 0), so it prepares the corpus
    (in `workers` processes) and copies the SentencePiece models into the run directory;
    the other ranks, started after it, map what it wrote.
    """
    if cfg.prepared:
        root = Path(cfg.prepared)
        train = PreparedCorpus.open(root)
        check_settings(train.header, cfg, root)
    elif writes:
        try:
            # a run that has its models (resumed) encodes with them, not new ones
            models = run_dir if RunDir(run_dir).spm_hashes() else None
            train = prepare(cfg, run_dir / "data", workers, progress=False, models=models)
        except OtherCorpusError as e:  # the run's own data/: the files changed since
            raise RunDirError(
                f"cannot resume {run_dir}: the training data (data.train={cfg.train}) differs "
                f"from the data the run was trained on (prepared fingerprint {e.recorded[:12]}…, "
                f"now {e.now[:12]}…); restore the original files, or start a new run in another "
                "hydra.run.dir"
            ) from None
    else:
        train = PreparedCorpus.open(run_dir / "data")
    if writes:
        copy_models(train.root, run_dir)
    log.info("corpus: %s", train.describe())
    vocabs = Vocabularies.load(run_dir)
    text = json.loads((train.root / VALID).read_text(encoding="utf-8"))
    vsrc, vtgt = text["src"], text["tgt"]
    valid = EncodedSplit(vocabs.src.encode(vsrc), vocabs.tgt.encode(vtgt), vsrc, vtgt)
    log.info(
        "SentencePiece: %s vocabulary, source %d / target %d pieces; %s validation pairs",
        "joint" if vocabs.joint else "separate",
        vocabs.src.vocab_size,
        vocabs.tgt.vocab_size,
        f"{len(valid):,}",
    )
    return vocabs, train, valid
