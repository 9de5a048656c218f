"""Translator: everything a trained run directory can do, loaded from that directory alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt.config import DecodeConfig, TrainRunConfig
from nmt.data.tokenizer import Vocabularies
from nmt.errors import RunDirError
from nmt.model import Seq2Seq
from nmt.search.decode import decode_ids, decode_nbest
from nmt.train.checkpoint import load_checkpoint
from nmt.train.trainer import resolve_device


def load_run_config(run_dir: Path) -> DictConfig:
    """The run's resolved config.yaml, typed by TrainRunConfig."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunDirError(
            f"{run_dir}: no config.yaml; is this a run directory written by nmt-train?"
        )
    return OmegaConf.merge(OmegaConf.structured(TrainRunConfig), OmegaConf.load(path))


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """best | last | a path, resolved to an existing checkpoint file."""
    if checkpoint not in ("best", "last"):
        return Path(checkpoint)
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise RunDirError(
            f"{path}: not found; training may not have reached its first "
            "validation (see train.valid_every), or pass checkpoint=PATH"
        )
    return path


@dataclass
class Hypothesis:
    """One entry of an n-best list."""

    text: str  # detokenised translation
    score: float  # the objective search ranked by (nmt.search.Scorer)
    logprob: float  # log P(y|x), EOS included where produced
    tokens: list[int]  # target ids, without EOS


def format_nbest(nbest: list[list[Hypothesis]]) -> str:
    """`sent_id ||| hypothesis ||| score ||| logprob` lines, sent_id 0-based, best first."""
    return "".join(
        f"{i} ||| {h.text} ||| {h.score:.6f} ||| {h.logprob:.6f}\n"
        for i, hyps in enumerate(nbest)
        for h in hyps
    )


class Translator:
    """A trained model with its vocabularies, ready to translate text."""

    def __init__(
        self, model: Seq2Seq, vocabs: Vocabularies, config: DictConfig, device: torch.device
    ) -> None:
        self.model = model.eval()
        self.vocabs = vocabs
        self.config = config
        self.device = device

    @classmethod
    def from_run(
        cls, run: str | Path, checkpoint: str = "best", device: str = "auto", threads: int = 0
    ) -> Translator:
        """Load config, SentencePiece models and a checkpoint from a run directory."""
        run_dir = Path(run)
        if not run_dir.is_dir():
            raise RunDirError(f"{run_dir}: no such run directory")
        if threads:
            torch.set_num_threads(threads)
        config = load_run_config(run_dir)
        vocabs = Vocabularies.load(run_dir)
        dev = resolve_device(device)
        model = Seq2Seq.build(
            config.model, config.attention, vocabs.src.vocab_size, vocabs.tgt.vocab_size
        )
        state = load_checkpoint(checkpoint_path(run_dir, checkpoint))
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError) as err:
            raise RunDirError(
                f"{run_dir}: the checkpoint does not fit the model that "
                f"config.yaml describes: {str(err).splitlines()[0]}"
            ) from err
        return cls(model.to(dev), vocabs, config, dev)

    def translate(
        self, lines: list[str], decode: DecodeConfig | None = None, progress: bool = False
    ) -> list[str]:
        """One detokenised translation per input line; blank lines stay blank."""
        decode = decode or self.config.decode
        todo = [i for i, line in enumerate(lines) if line.strip()]
        src_ids = self.vocabs.src.encode([lines[i] for i in todo])
        with tqdm(total=len(todo), disable=not progress, unit="sent") as bar:
            hyp_ids = decode_ids(self.model, src_ids, decode, self.device, bar.update)
        out = [""] * len(lines)
        for i, hyp in zip(todo, self.vocabs.tgt.decode(hyp_ids), strict=True):
            out[i] = hyp
        return out

    def translate_nbest(
        self, lines: list[str], decode: DecodeConfig | None = None, progress: bool = False
    ) -> list[list[Hypothesis]]:
        """The decode.nbest best translations of each line, best first; [] for a blank line."""
        decode = decode or self.config.decode
        todo = [i for i, line in enumerate(lines) if line.strip()]
        src_ids = self.vocabs.src.encode([lines[i] for i in todo])
        with tqdm(total=len(todo), disable=not progress, unit="sent") as bar:
            results = decode_nbest(self.model, src_ids, decode, self.device, bar.update)
        out: list[list[Hypothesis]] = [[] for _ in lines]
        for i, result in zip(todo, results, strict=True):
            ids = result.token_lists()
            out[i] = [
                Hypothesis(text, score, logprob, tokens)
                for text, score, logprob, tokens in zip(
                    self.vocabs.tgt.decode(ids),
                    result.score.tolist(),
                    result.logprob.tolist(),
                    ids,
                    strict=True,
                )
            ]
        return out
