"""Greedy requests decoded continuously: sentences join the model's rows between steps.

The micro-batcher (batching.py) hands a greedy request's sentences to a `TranslationStream`,
which encodes them and adds them to the rows already decoding (nmt.search.continuous);
each step returns the sentences that ended, as the JSON /translate gives. Beam search is
batched a whole request group at a time instead (its hypotheses per sentence are not rows
that can join and leave one by one).
"""

from __future__ import annotations

from collections.abc import Hashable

from nmt import EOS_ID
from nmt.config import DecodeConfig
from nmt.search.continuous import GreedyStream
from nmt.search.scoring import Scorer
from nmt.translator import Translation, Translator


class TranslationStream:
    """Sentences in, Translation JSON out, as each ends; one decode config, one thread."""

    def __init__(self, translator: Translator, cfg: DecodeConfig, attention: bool) -> None:
        if cfg.strategy != "greedy":
            raise ValueError(f"a TranslationStream decodes greedily, not {cfg.strategy!r}")
        self.translator, self.attention = translator, attention
        model = translator.decoding_model(cfg)
        self.rows = GreedyStream(
            model,
            Scorer.from_config(cfg),
            cfg.max_len_a,
            cfg.max_len_b,
            cfg.min_len,
            translator.device,
        )
        self.sources: dict[Hashable, list[int]] = {}  # source ids of each row, by tag

    def __len__(self) -> int:
        return len(self.rows)

    def advance(self, new: list[tuple[Hashable, str]]) -> list[tuple[Hashable, dict]]:
        """Admit new (tag, sentence) pairs, step once: the (tag, translation) of those ended.

        A blank sentence is not decoded: it ends at once, as Translator.translate gives it."""
        ended = [
            (tag, Translation("", 0.0, 0.0, [], [], []).to_json())
            for tag, text in new
            if not text.strip()
        ]
        todo = [(tag, text) for tag, text in new if text.strip()]
        ids = self.translator.vocabs.src.encode([text for _, text in todo])
        self.rows.admit(ids, [tag for tag, _ in todo])
        self.sources.update(zip((tag for tag, _ in todo), ids, strict=True))
        for tag, result in self.rows.step():
            src_tokens = self.translator.vocabs.src.pieces([*self.sources.pop(tag), EOS_ID])
            best = self.translator.hypotheses(result, src_tokens, self.attention)[0]
            ended.append((tag, best.to_json()))
        return ended
