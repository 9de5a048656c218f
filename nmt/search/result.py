"""What every search shares: the tokens it never outputs, its length limit, what it returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt import BOS_ID, EOS_ID, PAD_ID

NEVER_OUTPUT = torch.tensor([PAD_ID, BOS_ID])


def max_lengths(src_len: Tensor, a: float, b: int) -> Tensor:
    """Output length limit per sentence: a · (source tokens) + b, at least 1. (B,) → (B,)"""
    return (src_len.float() * a + b).floor().long().clamp(min=1)


@dataclass
class SearchResult:
    """Hypotheses as padded tensors: `nbest` rows per source sentence, sentence-major.

    Row i·nbest + r is the (r+1)-th best hypothesis of sentence i (B' = B·nbest rows). A row
    with no hypothesis (a vocabulary too small to give nbest) has length 0, score -inf.
    """

    tokens: Tensor  # (B', T) ids, EOS included where produced, PAD after
    lengths: Tensor  # (B',) tokens including EOS (a hypothesis cut at max length has none)
    logprob: Tensor  # (B',) log P(y|x) summed over the tokens
    attention: Tensor  # (B', T, S) attention weights of each output step, 0 after the end
    score: Tensor  # (B',) the Scorer's objective, what search ranks by
    token_logprobs: Tensor  # (B', T) log P of each token, 0 after the end
    nbest: int = 1

    def token_lists(self) -> list[list[int]]:
        """Each hypothesis as a list of ids without EOS or padding."""
        out = []
        for row, n in zip(self.tokens.tolist(), self.lengths.tolist(), strict=True):
            row = row[:n]
            out.append(row[:-1] if row and row[-1] == EOS_ID else row)
        return out

    def sentence(self, i: int, src_len: int | None = None) -> SearchResult:
        """The hypotheses of sentence i alone (empty rows dropped), trimmed to their longest
        hypothesis and, given src_len (source tokens incl. EOS), to that source width."""
        rows = slice(i * self.nbest, (i + 1) * self.nbest)
        real = self.lengths[rows] > 0  # (nbest,)
        width = max(int(self.lengths[rows].max()), 1)
        src_width = self.attention.size(2) if src_len is None else src_len
        return SearchResult(
            self.tokens[rows][real, :width],
            self.lengths[rows][real],
            self.logprob[rows][real],
            self.attention[rows][real, :width, :src_width],
            self.score[rows][real],
            self.token_logprobs[rows][real, :width],
            nbest=int(real.sum()),
        )
