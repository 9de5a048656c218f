"""Hand-built models whose best outputs are known, and an id-level stand-in for SentencePiece."""

from __future__ import annotations

from nmt import EOS_ID
from nmt.data.tokenizer import Vocabularies
from tests.bigram import VOCAB, BigramModel  # noqa: F401  (re-exported for the tests here)


class IdTokenizer:
    """Text is ids separated by spaces ("4 5"), so tests can write references as ids."""

    vocab_size = VOCAB

    def encode(self, lines):
        return [[int(w) for w in line.split()] for line in lines]

    def decode(self, ids):
        return [" ".join(str(i) for i in seq if i > EOS_ID) for seq in ids]

    def pieces(self, ids):
        return [str(int(i)) for i in ids]


def id_vocabs() -> Vocabularies:
    tok = IdTokenizer()
    return Vocabularies(tok, tok, joint=True)


# Beam width 1 misses the best output: "4" looks best after BOS (0.5 against 0.45), but
# P(4 EOS) = 0.5 · 0.4 = 0.2 while P(5 EOS) = 0.45 · 0.95 ≈ 0.43. Reference: "5".
SEARCH_ERROR = {
    2: {4: 0.5, 5: 0.45, EOS_ID: 0.05},
    4: {EOS_ID: 0.4, 6: 0.3, 5: 0.3},
    5: {EOS_ID: 0.95, 6: 0.05},
    6: {EOS_ID: 1.0},
}
# The model prefers its wrong output "4" (0.7) to the reference "5" (0.2) at any width.
MODEL_ERROR = {2: {4: 0.7, 5: 0.2, EOS_ID: 0.1}, 4: {EOS_ID: 1.0}, 5: {EOS_ID: 1.0}}
# Raw log P prefers the reference "6" (0.5 · 0.9 = 0.45) to "4 5" (0.35 · 0.99² ≈ 0.343), but
# per token (alpha 1) "4 5" wins: log 0.343 / 3 ≈ -0.357 against log 0.45 / 2 ≈ -0.399.
OBJECTIVE = {
    2: {6: 0.5, 4: 0.35, EOS_ID: 0.05, 5: 0.1},
    6: {EOS_ID: 0.9, 5: 0.1},
    4: {5: 0.99},
    5: {EOS_ID: 0.99},
}
