"""Greedy decoding, batched: at each step every unfinished sentence takes its argmax;
finished sentences leave the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from nmt import BOS_ID, EOS_ID, PAD_ID
from nmt.model import Seq2Seq
from nmt.search.result import NEVER_OUTPUT, SearchResult
from nmt.search.scoring import Scorer


def best_tokens(
    log_probs: Tensor, never: Tensor, no_eos: Tensor | slice | None = None
) -> tuple[Tensor, Tensor]:
    """Each row's greedy token and its log-prob: log_probs (N, V), a step's new tensor, is
    filled in place. PAD and BOS (never) are never outputs, nor EOS in the rows no_eos picks
    (a bool (N,) mask or a slice; min_len not reached). The chosen token keeps the model's own
    log-prob, so the sum equals model.score() of the same sequence. → (N,), (N,)."""
    log_probs.index_fill_(1, never, float("-inf"))
    if no_eos is not None:
        log_probs[no_eos, EOS_ID] = float("-inf")
    return log_probs.max(-1)


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
        best_lp, y = best_tokens(log_probs, never, slice(None) if t + 1 < min_len else None)
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
