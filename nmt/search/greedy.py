"""Greedy decoding, batched: at each step every unfinished sentence takes its argmax;
finished sentences leave the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt import BOS_ID, EOS_ID, PAD_ID
from nmt.model import Seq2Seq
from nmt.search.scoring import Scorer

NEVER_OUTPUT = torch.tensor([PAD_ID, BOS_ID])


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


def max_lengths(src_len: Tensor, a: float, b: int) -> Tensor:
    """Output length limit per sentence: a · (source tokens) + b, at least 1. (B,) → (B,)"""
    return (src_len.float() * a + b).floor().long().clamp(min=1)


@torch.inference_mode()
def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    src_len: Tensor,
    max_len: Tensor,
    scorer: Scorer | None = None,
    min_len: int = 0,
) -> SearchResult:
    """Decode src: (B, S), src_len: (B,) greedily, each sentence up to max_len: (B,) tokens.

    EOS is not allowed before position min_len (T counts EOS); `scorer` (default: raw
    log-probability) only gives the reported score, it does not steer the search.
    """
    scorer = scorer or Scorer()
    enc = model.encode(src, src_len)
    state = model.init_state(enc)
    batch, device = src.size(0), src.device
    logprob = torch.zeros(batch, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.arange(batch, device=device)  # (B',) sentences still decoding
    y = src.new_full((batch,), BOS_ID)  # (B',)
    never = NEVER_OUTPUT.to(device)
    steps = []  # per step: (active (B',), token (B',), its log P (B',), attention (B', S))
    for t in range(int(max_len.max())):
        log_probs, state, attn = model.step(enc, state, y)  # (B', V), _, (B', S)
        # PAD and BOS are never outputs; the chosen token keeps the model's own log-prob,
        # so the sum equals model.score() of the same sequence.
        log_probs.index_fill_(1, never, float("-inf"))  # a new tensor: fill in place
        if t + 1 < min_len:
            log_probs[:, EOS_ID] = float("-inf")
        best_lp, y = log_probs.max(-1)  # (B',)
        steps.append((active, y, best_lp, attn))
        logprob[active] += best_lp
        lengths[active] += 1
        done = (y == EOS_ID) | (max_len[active] <= t + 1)  # (B',)
        if bool(done.any()):  # finished sentences leave the batch: no more steps for them
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            active, y = active[keep], y[keep]
            enc, state = enc.select(keep), state.select(keep)
    tokens = src.new_full((batch, len(steps)), PAD_ID)
    token_lps = torch.zeros(batch, len(steps), device=device)
    attns = torch.zeros(batch, len(steps), src.size(1), device=device)
    for t, (rows, token, token_lp, attn) in enumerate(steps):
        tokens[rows, t], token_lps[rows, t], attns[rows, t] = token, token_lp, attn
    return SearchResult(
        tokens,  # (B, T)
        lengths,
        logprob,
        attns,  # (B, T, S)
        scorer.objective(logprob, lengths),
        token_lps,  # (B, T)
    )
