"""Translator: everything a trained run directory can do, loaded from that directory alone."""

from __future__ import annotations

import re
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
from nmt.train.checkpoint import load_checkpoint, load_model_state
from nmt.train.distributed import resolve_device

# Every character str.splitlines() ends a line at. A model can emit one (the byte piece
# <0x0A> decodes to "\n"), and one would shift every later line of the output file.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


def one_line(text: str) -> str:
    """text with each run of line-break characters replaced by one space."""
    return _LINE_BREAKS.sub(" ", text)


def load_run_config(run_dir: Path) -> DictConfig:
    """The run's resolved config.yaml, typed by TrainRunConfig."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunDirError(
            f"{run_dir}: no config.yaml; is this a run directory written by nmt-train?"
        )
    try:
        return OmegaConf.merge(OmegaConf.structured(TrainRunConfig), OmegaConf.load(path))
    except Exception as err:  # yaml and OmegaConf raise several types for a broken file
        raise RunDirError(
            f"{path}: not a config written by nmt-train ({str(err).splitlines()[0]}); "
            "restore it from the run's .hydra/*/config.yaml or train again"
        ) from None


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
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"{run_dir} is a file; run= takes the directory nmt-train wrote")
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
        path = checkpoint_path(run_dir, checkpoint)
        load_model_state(model, load_checkpoint(path)["model"], path)  # names what differs
        return cls(model.to(dev), vocabs, config, dev)

    def translate(
        self, lines: list[str], decode: DecodeConfig | None = None, progress: bool = False
    ) -> list[str]:
        """One detokenised translation per input line, itself one line; blank lines stay blank."""
        decode = decode or self.config.decode
        todo = [i for i, line in enumerate(lines) if line.strip()]
        src_ids = self.vocabs.src.encode([lines[i] for i in todo])
        with tqdm(total=len(todo), disable=not progress, unit="sent") as bar:
            hyp_ids = decode_ids(self.model, src_ids, decode, self.device, bar.update)
        out = [""] * len(lines)
        for i, hyp in zip(todo, self.vocabs.tgt.decode(hyp_ids), strict=True):
            out[i] = one_line(hyp)
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
                Hypothesis(one_line(text), score, logprob, tokens)
                for text, score, logprob, tokens in zip(
                    self.vocabs.tgt.decode(ids),
                    result.score.tolist(),
                    result.logprob.tolist(),
                    ids,
                    strict=True,
                )
            ]
        return out
