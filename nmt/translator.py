"""Translator: everything a trained run directory can do, loaded from that directory alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from nmt.config import DecodeConfig, validate_decode
from nmt.data.tokenizer import Vocabularies
from nmt.kernels import select
from nmt.model import Seq2Seq
from nmt.rundir import RunDir
from nmt.search.decode import decode_ids, decode_nbest
from nmt.train.checkpoint import load_checkpoint, load_model_state
from nmt.train.distributed import resolve_device

# Every character str.splitlines() ends a line at. A model can emit one (the byte piece
# <0x0A> decodes to "\n"), and one would shift every later line of the output file.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


def one_line(text: str) -> str:
    """text with each run of line-break characters replaced by one space."""
    return _LINE_BREAKS.sub(" ", text)


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
    """A trained model with its vocabularies, ready to translate text.

    run and checkpoint say where it was loaded from (None for a model built in memory).
    """

    def __init__(
        self,
        model: Seq2Seq,
        vocabs: Vocabularies,
        config: DictConfig,
        device: torch.device,
        run: RunDir | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        self.model = model.eval()
        self.vocabs = vocabs
        self.config = config
        self.device = device
        self.run = run
        self.checkpoint = checkpoint

    @classmethod
    def from_run(
        cls,
        run: str | Path,
        checkpoint: str = "best",
        device: str = "auto",
        threads: int = 0,
        kernels: str = "auto",
    ) -> Translator:
        """Load config, SentencePiece models and a checkpoint (best | last | PATH) from a run
        directory; kernels: how the model computes (nmt.kernels.select)."""
        run_dir = RunDir.open(run)
        if threads:
            torch.set_num_threads(threads)
        config = run_dir.config
        vocabs = Vocabularies.load(run_dir.root)
        dev = resolve_device(device)
        model = Seq2Seq.build(
            config.model, config.attention, vocabs.src.vocab_size, vocabs.tgt.vocab_size
        )
        path = run_dir.checkpoint(checkpoint)
        load_model_state(model, load_checkpoint(path)["model"], path)  # names what differs
        model.use(select(kernels, dev, model.decoder.output)[0])
        return cls(model.to(dev), vocabs, config, dev, run_dir, path)

    def translate(
        self, lines: list[str], decode: DecodeConfig | None = None, progress: bool = False
    ) -> list[str]:
        """One detokenised translation per input line, itself one line; blank lines stay blank."""
        decode = decode or self.config.decode
        validate_decode(decode)  # a ConfigError naming the key; search trusts it
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
        validate_decode(decode)  # a ConfigError naming the key; search trusts it
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
