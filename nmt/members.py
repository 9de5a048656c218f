"""A trained run's model as Translator.load reads it: SentencePiece models, checkpoint, weights.

Opening a run reads its vocabularies and finds its checkpoint; `build` makes the model on a
device with the kernels chosen for it. Several runs decode as one (nmt.search.ensemble) only
with the same SentencePiece models, checked before any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.data.tokenizer import Vocabularies
from nmt.errors import ConfigError
from nmt.kernels import select
from nmt.model import Seq2Seq
from nmt.rundir import RunDir, sha256
from nmt.train.checkpoint import load_checkpoint, load_model_state


@dataclass
class RunModel:
    """One run's vocabularies and checkpoint as Translator.load reads them, then its model
    (`build`): several of them decode as an ensemble when their vocabularies are the same."""

    run: RunDir
    checkpoint: Path
    vocabs: Vocabularies
    model: Seq2Seq | None = None

    @classmethod
    def open(cls, run: str | Path, which: str) -> RunModel:
        """The run's SentencePiece models and the path of checkpoint `which` (no model yet)."""
        run_dir = RunDir.open(run)
        return cls(run_dir, run_dir.checkpoint(which), Vocabularies.load(run_dir.root))

    def build(self, dev: torch.device, kernels: str, tuner) -> Seq2Seq:
        """The model of the run's config with the checkpoint's weights, on `dev`."""
        config = self.run.config
        src, tgt = self.vocabs.src.vocab_size, self.vocabs.tgt.vocab_size
        model = Seq2Seq.build(config.model, config.attention, src, tgt)
        # names what differs
        load_model_state(model, load_checkpoint(self.checkpoint)["model"], self.checkpoint)
        chosen = select(kernels, dev, model.decoder.output, encoder=model.encoder.rnn)[0]
        chosen.tuner = tuner if dev.type == "cpu" else None
        self.model = model.use(chosen).to(dev)
        return self.model

    def check_same_vocabularies(self, other: RunModel) -> None:
        """Refuse to ensemble `other` with this model unless both read and write the same
        pieces: the same SentencePiece model(s) on each side."""
        for side, attr in (("source", "src"), ("target", "tgt")):
            ours, theirs = (getattr(m.vocabs, attr).model_path for m in (self, other))
            if sha256(ours) != sha256(theirs):
                raise ConfigError(
                    f"run={other.run.root} cannot join an ensemble with run={self.run.root}: its "
                    f"{side} SentencePiece model {theirs} differs from {ours} (an ensemble "
                    "averages the models' distributions over one vocabulary and reads one "
                    "encoding of the source). Ensemble runs trained on the same data directory: "
                    "nmt-prepare once, then nmt-train data.prepared=DIR for each model"
                )
