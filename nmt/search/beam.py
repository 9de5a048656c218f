"""Batched beam search: every sentence's beam advances in one tensor pass per step.

The live hypotheses of all sentences still searching sit in one `Beam`, batch × beam
flattened (row b·K + k is slot k of sentence b). Each step scores the K·V continuations of
every sentence and takes its top 2K. Those among the top K that end in EOS are finished:
they move to `Finished` and never occupy a live slot; the best K that do not end in EOS stay
live. Taking 2K guarantees K of them remain, as at most K (one per parent) end in EOS.

Stopping, per sentence, is exact under any length penalty (`stop="exact"`, the default): a
sentence is done when no live hypothesis can still beat the worst of the `nbest` finished
ones it keeps (`Scorer.bound`: log-probs only fall, so the best reachable objective is
known), or at its length limit. `stop="early"` also ends a sentence once K of its
hypotheses have finished, the rule of fairseq and JoeyNMT: fewer steps, but it can cut off
a longer, better hypothesis (it favours short output). Stopping when the top hypothesis ends
(JoeyNMT PR #149, OpenNMT-py #1320) has the same flaw and is not offered.

Conventions: T counts EOS; EOS is masked at positions before `min_len`; at the length limit
the top K candidates are finalised as they stand, those without EOS included (T = limit),
as greedy search does. Live candidates are ranked by log P alone: they all have length t,
and the objective rises with log P at a fixed length. With beam size 1 and the raw
log-probability objective (α = 0 or no penalty, no word reward) this is greedy search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt import BOS_ID, EOS_ID, PAD_ID
from nmt.model import Seq2Seq
from nmt.model.decoder import DecoderState, EncoderOutput
from nmt.search.result import NEVER_OUTPUT, SearchResult
from nmt.search.scoring import Scorer


@dataclass
class Beam:
    """The live hypotheses of the B sentences still searching: N = B·K rows at step t."""

    sentence: Tensor  # (B,) index of each searching sentence in the input batch
    logprob: Tensor  # (N,) log P of each prefix; -inf marks an empty slot
    tokens: Tensor  # (N, t) tokens so far (never EOS)
    token_logprobs: Tensor  # (N, t) log P of each of those tokens
    attention: Tensor  # (N, t, S) attention weights of each step
    state: DecoderState  # N rows (B before the first step)
    enc: EncoderOutput  # B rows: each sentence's encoding, shared by its K slots


@dataclass
class Finished:
    """Finished hypotheses, kept apart from the beam: enough to give each sentence's n best.

    `kept` holds the scores of the n best so far (what the stopping rule compares with);
    `found` holds every hypothesis that entered those n best, one entry per step that had
    any, as (sentence (M,), rows); the final n best per sentence are picked from it at the end.
    """

    kept: Tensor  # (B0, n) objective of the n best finished per sentence, best first; -inf
    count: Tensor  # (B0,) how many hypotheses of each sentence have finished
    found: list[tuple[Tensor, SearchResult]] = field(default_factory=list)


@torch.inference_mode()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_len: Tensor,
    max_len: Tensor,
    scorer: Scorer,
    beam_size: int,
    nbest: int = 1,
    min_len: int = 0,
    stop: str = "exact",
    trace: list[tuple[Tensor, Tensor, Tensor]] | None = None,
) -> SearchResult:
    """The nbest highest-scoring hypotheses of each sentence of src: (B, S), src_len: (B,).

    max_len: (B,) length limit per sentence (T, EOS included); EOS is not allowed at
    positions before min_len; stop: "exact" or "early" (module docstring). Returns B·nbest
    rows, sentence-major, best first. A `trace` list, if given, gets the live beam after
    each step t as (sentence (B',), tokens (B'·K, t), log P (B'·K,)), slots best first, for
    error analysis. Nothing is checked here: 1 ≤ nbest ≤ beam_size and stop come checked
    from a decode config (nmt.config_checks.validate_decode).
    """
    batch, k, device = src.size(0), beam_size, src.device
    enc = model.encode(src, src_len)
    rows = torch.arange(batch, device=device).repeat_interleave(k)  # (B·K,)
    first = torch.full((batch, k), float("-inf"), device=device)
    first[:, 0] = 0.0  # one live hypothesis (the empty prefix) per sentence at the start
    beam = Beam(
        sentence=torch.arange(batch, device=device),
        logprob=first.view(-1),
        tokens=src.new_zeros(batch * k, 0),
        token_logprobs=first.new_zeros(batch * k, 0),
        attention=first.new_zeros(batch * k, 0, src.size(1)),
        state=model.init_state(enc),  # B rows until the first step repeats them K times
        enc=enc,
    )
    finished = Finished(
        kept=first.new_full((batch, nbest), float("-inf")), count=rows.new_zeros(batch)
    )
    never = NEVER_OUTPUT.to(device)
    t = 0
    while beam.sentence.numel() > 0:
        t += 1
        if t == 1:  # the K slots of a sentence hold one prefix: run it once, then repeat it
            log_probs, state, attn = model.step(enc, beam.state, src.new_full((batch,), BOS_ID))
            log_probs, state, attn = log_probs[rows], state.select(rows), attn[rows]
        else:
            log_probs, state, attn = model.step(beam.enc, beam.state, beam.tokens[:, -1])
        # log_probs: (N, V), attn: (N, S)
        log_probs.index_fill_(1, never, float("-inf"))  # a new tensor: fill in place
        if t < min_len:
            log_probs[:, EOS_ID] = float("-inf")
        cand = _Candidates.top(beam, log_probs, attn, k)
        limit = max_len[beam.sentence]  # (B,)
        last = limit <= t  # (B,) every candidate in the beam is finalised at the limit
        ends = (cand.token == EOS_ID) | last.unsqueeze(1)  # (B, 2K)
        _keep_finished(beam, finished, cand, ends, scorer, t)
        live_lp, pick = cand.logprob.masked_fill(ends, float("-inf")).topk(k, dim=1)  # (B, K)
        # Done: no live hypothesis can beat (or tie) the worst finished one kept.
        shortest = torch.full_like(limit, t + 1).clamp(min=min_len).minimum(limit)
        reachable = scorer.bound(live_lp[:, 0], shortest, limit)  # (B,)
        done = last | (reachable <= finished.kept[beam.sentence, -1])
        if stop == "early":
            done |= finished.count[beam.sentence] >= k
        beam = _next_beam(beam, cand, live_lp, pick, state, ~done)
        if trace is not None:
            trace.append((beam.sentence, beam.tokens, beam.logprob))
    return _collect(finished, batch, nbest, int(max_len.max()), src.size(1))


@dataclass
class _Candidates:
    """The top 2K continuations of each searching sentence at step t, best first."""

    logprob: Tensor  # (B, 2K) log P of prefix + token
    token: Tensor  # (B, 2K) the token
    token_logprob: Tensor  # (B, 2K) its log P
    parent: Tensor  # (B, 2K) row of its prefix in the beam (of N)
    attn: Tensor  # (N, S) attention of this step, per beam row

    @classmethod
    def top(cls, beam: Beam, log_probs: Tensor, attn: Tensor, k: int) -> _Candidates:
        """log_probs: (N, V) next-token log P of each beam row, attn: (N, S)."""
        b, vocab = beam.sentence.numel(), log_probs.size(1)
        total = (beam.logprob.unsqueeze(1) + log_probs).view(b, k * vocab)  # (B, K·V)
        logprob, flat = total.topk(2 * k, dim=1)  # (B, 2K)
        offset = torch.arange(b, device=flat.device).unsqueeze(1) * k  # (B, 1)
        return cls(
            logprob=logprob,
            token=flat % vocab,
            token_logprob=log_probs.view(b, k * vocab).gather(1, flat),
            parent=flat // vocab + offset,
            attn=attn,
        )


def _keep_finished(
    beam: Beam, finished: Finished, cand: _Candidates, ends: Tensor, scorer: Scorer, t: int
) -> None:
    """Move candidates that end (EOS, or the length limit) and rank in the top K to finished.

    Only those entering a sentence's n best are stored: nothing else can be returned.
    """
    k = ends.size(1) // 2
    ending = ends & torch.isfinite(cand.logprob)
    ending[:, k:] = False  # beyond the top K: not in the beam, as in a beam without EOS
    if not bool(ending.any()):  # most steps: nothing ends
        return
    finished.count[beam.sentence] += ending.sum(dim=1)
    score = scorer.objective(cand.logprob, torch.full_like(cand.logprob, t))  # (B, 2K)
    score = score.masked_fill(~ending, float("-inf"))
    both = torch.cat([finished.kept[beam.sentence], score], dim=1)  # (B, n + 2K)
    n = finished.kept.size(1)
    merged, pick = both.topk(n, dim=1)  # (B, n)
    finished.kept[beam.sentence] = merged
    entered = torch.zeros_like(both, dtype=torch.bool).scatter(1, pick, True)
    entered = entered[:, n:] & ending  # (B, 2K)
    which = entered.nonzero()  # (M, 2): sentence position, candidate rank
    if which.numel() == 0:
        return
    s, c = which[:, 0], which[:, 1]
    rows = cand.parent[s, c]  # (M,)
    found = SearchResult(
        tokens=torch.cat([beam.tokens[rows], cand.token[s, c].unsqueeze(1)], 1),
        lengths=torch.full_like(rows, t),
        logprob=cand.logprob[s, c],
        attention=torch.cat([beam.attention[rows], cand.attn[rows].unsqueeze(1)], 1),
        score=score[s, c],
        token_logprobs=torch.cat([beam.token_logprobs[rows], cand.token_logprob[s, c, None]], 1),
    )
    finished.found.append((beam.sentence[s], found))


def _next_beam(
    beam: Beam,
    cand: _Candidates,
    live_lp: Tensor,
    pick: Tensor,
    state: DecoderState,
    searching: Tensor,
) -> Beam:
    """The beam of the sentences still searching: (B,) bool, each with its K live picks."""
    keep = searching.nonzero().squeeze(1)  # (B',)
    parent = cand.parent.gather(1, pick)[keep].view(-1)  # (B'·K,) rows of the old beam
    token = cand.token.gather(1, pick)[keep].view(-1, 1)  # (B'·K, 1)
    token_lp = cand.token_logprob.gather(1, pick)[keep].view(-1, 1)  # (B'·K, 1)
    return Beam(
        sentence=beam.sentence[keep],
        logprob=live_lp[keep].view(-1),
        tokens=torch.cat([beam.tokens[parent], token], dim=1),
        token_logprobs=torch.cat([beam.token_logprobs[parent], token_lp], dim=1),
        attention=torch.cat([beam.attention[parent], cand.attn[parent].unsqueeze(1)], dim=1),
        state=state.select(parent),
        enc=beam.enc if keep.numel() == searching.numel() else beam.enc.select(keep),
    )


def _collect(finished: Finished, batch: int, n: int, width: int, src_width: int) -> SearchResult:
    """The n best finished hypotheses of each of the batch sentences, as B·n padded rows."""
    sentence = torch.cat([s for s, _ in finished.found])  # (M,)
    parts = [r for _, r in finished.found]

    def stack(name: str, pad: float) -> Tensor:
        return torch.cat([_pad_time(getattr(r, name), width, pad) for r in parts])

    found = SearchResult(
        tokens=stack("tokens", PAD_ID),
        lengths=torch.cat([r.lengths for r in parts]),
        logprob=torch.cat([r.logprob for r in parts]),
        attention=stack("attention", 0.0),
        score=torch.cat([r.score for r in parts]),
        token_logprobs=stack("token_logprobs", 0.0),
    )
    # Rank within each sentence: sort by score (best first), then stably by sentence.
    order = found.score.argsort(descending=True, stable=True)
    order = order[sentence[order].argsort(stable=True)]  # (M,)
    counts = torch.bincount(sentence, minlength=batch)  # (batch,)
    start = counts.cumsum(0) - counts
    rank = torch.arange(order.numel(), device=order.device) - start[sentence[order]]
    take = order[rank < n]  # rows of found that are returned
    dest = sentence[take] * n + rank[rank < n]  # their rows in the result

    def place(x: Tensor, fill: float) -> Tensor:
        out = x.new_full((batch * n, *x.shape[1:]), fill)
        return out.index_copy(0, dest, x[take])

    lengths = place(found.lengths, 0)
    t = max(int(lengths.max()), 1)
    return SearchResult(
        tokens=place(found.tokens, PAD_ID)[:, :t],
        lengths=lengths,
        logprob=place(found.logprob, float("-inf")),
        attention=place(found.attention, 0.0)[:, :t, :src_width],
        score=place(found.score, float("-inf")),
        token_logprobs=place(found.token_logprobs, 0.0)[:, :t],
        nbest=n,
    )


def _pad_time(x: Tensor, width: int, value: float) -> Tensor:
    """x: (M, t, ...) padded with value along dim 1 to (M, width, ...)."""
    pad = [0, 0] * (x.dim() - 2) + [0, width - x.size(1)]
    return F.pad(x, pad, value=value)
