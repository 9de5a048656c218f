"""Greedy decoding, batched: at each step every unfinished sentence takes its argmax."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt import BOS_ID, EOS_ID, PAD_ID
from nmt.model import Seq2Seq

NEVER_OUTPUT = torch.tensor([PAD_ID, BOS_ID])


@dataclass
class SearchResult:
    """Best hypothesis per source sentence, as padded tensors."""

    tokens: Tensor  # (B, T) ids, EOS included where produced, PAD after
    lengths: Tensor  # (B,) tokens including EOS (a hypothesis cut at max length has none)
    logprob: Tensor  # (B,) log P(y|x) summed over the tokens
    attention: Tensor  # (B, T, S) attention weights of each output step

    def token_lists(self) -> list[list[int]]:
        """Each hypothesis as a list of ids without EOS or padding."""
        out = []
        for row, n in zip(self.tokens.tolist(), self.lengths.tolist(), strict=True):
            row = row[:n]
            out.append(row[:-1] if row and row[-1] == EOS_ID else row)
        return out


def max_lengths(src_len: Tensor, a: float, b: int) -> Tensor:
    """Output length limit per sentence: a · (source tokens) + b, at least 1. (B,) → (B,)"""
    return (src_len.float() * a + b).floor().long().clamp(min=1)


@torch.inference_mode()
def greedy_search(model: Seq2Seq, src: Tensor, src_len: Tensor, max_len: Tensor) -> SearchResult:
    """Decode src: (B, S), src_len: (B,) greedily, each sentence up to max_len: (B,) tokens."""
    enc = model.encode(src, src_len)
    state = model.init_state(enc)
    batch = src.size(0)
    y = src.new_full((batch,), BOS_ID)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    logprob = torch.zeros(batch, device=src.device)
    lengths = torch.zeros(batch, dtype=torch.long, device=src.device)
    tokens, attns = [], []
    for t in range(int(max_len.max())):
        log_probs, state, attn = model.step(enc, state, y)  # (B, V), _, (B, S)
        # PAD and BOS are never outputs; the chosen token keeps the model's own log-prob,
        # so the sum equals model.score() of the same sequence.
        best_lp, y = log_probs.index_fill(1, NEVER_OUTPUT.to(y.device), float("-inf")).max(-1)
        y = y.masked_fill(finished, PAD_ID)
        logprob += best_lp.masked_fill(finished, 0.0)
        lengths += (~finished).long()
        tokens.append(y)
        attns.append(attn)
        finished |= (y == EOS_ID) | (max_len <= t + 1)
        if bool(finished.all()):
            break
    tokens_t = torch.stack(tokens, dim=1)  # (B, T)
    return SearchResult(tokens_t, lengths, logprob, torch.stack(attns, dim=1))
