"""The core comparison: decode every test sentence with the configured beam, score its
reference with the same `Scorer`, and follow the reference prefix through the live beam.

Everything runs on length-sorted batches: one `beam_search` call (with a trace of its live
beam) and one teacher-forced `Scorer.score` of the references per batch. The hypothesis
numbers kept are the beam's own (`SearchResult.logprob`, `.score`), never recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.data.batching import make_batch, sentence_batches
from nmt.model import Seq2Seq
from nmt.search.beam import beam_search
from nmt.search.result import SearchResult, max_lengths
from nmt.search.scoring import Scorer

PRUNED, STOPPED, LIMIT = "pruned", "stopped", "length limit"


@dataclass
class Compared:
    """One test sentence: the beam's n-best and its reference, scored by the same Scorer."""

    nbest: SearchResult  # this sentence's hypotheses, best first (row 0 is ŷ)
    ref_tokens: list[int]  # y* ids, EOS included
    ref_logprob: float  # log P(y*|x), EOS included
    ref_score: float  # the Scorer's objective of y*
    limit: int  # the beam's length limit T for this sentence
    ranks: list[int]  # slot (1 = best) of y*_{1:t} in the live beam per step; K+1 = outside
    fell_off: int | None  # first step t whose prefix y*_{1:t} is not live (None: never)
    fell_off_reason: str | None  # pruned | stopped (search ended) | length limit


def fallout(
    trace: list[tuple[Tensor, Tensor, Tensor]], ref: Tensor, ref_len: Tensor, limit: Tensor, k: int
) -> list[tuple[list[int], int | None, str | None]]:
    """Where each reference prefix left the beam: (ranks, step, reason) per sentence.

    trace: the live beam after each step t (beam_search's trace); ref: (B, T) y* with EOS,
    ref_len: (B,) lengths with EOS, limit: (B,). The prefixes followed are y*_{1:t} for
    t < T (those before EOS); membership is by tokens, so no score drift enters it.
    """
    batch = ref.size(0)
    ranks: list[list[int]] = [[] for _ in range(batch)]
    fell: list[int | None] = [None] * batch
    reason: list[str | None] = [None] * batch
    last = (ref_len - 1).tolist()  # prefix steps to follow per sentence
    for t, (sentence, tokens, _) in enumerate(trace, start=1):
        if t >= ref.size(1):  # past every reference's last prefix (T_max - 1)
            break
        live = tokens.view(sentence.numel(), k, t)  # (B', K, t)
        prefix = ref[sentence, :t]  # (B', t); padding beyond T never matches a live prefix
        hit = (live == prefix.unsqueeze(1)).all(-1)  # (B', K)
        slot = torch.where(hit.any(1), hit.float().argmax(1) + 1, k + 1)  # (B',)
        for b, r in zip(sentence.tolist(), slot.tolist(), strict=True):
            if fell[b] is not None or t > last[b]:
                continue
            ranks[b].append(r)
            if r > k:
                fell[b], reason[b] = t, PRUNED
    for b in range(batch):
        followed = len(ranks[b])
        if fell[b] is None and followed < last[b]:  # search ended with y* still live
            fell[b] = followed + 1
            reason[b] = LIMIT if fell[b] >= int(limit[b]) else STOPPED
    return list(zip(ranks, fell, reason, strict=True))


def compare_batch(
    model: Seq2Seq,
    src: Tensor,
    src_len: Tensor,
    ref: Tensor,
    ref_len: Tensor,
    cfg: DecodeConfig,
    nbest: int,
) -> list[Compared]:
    """src: (B, S), ref: (B, T) y* with EOS, lengths (B,) → one Compared per row."""
    scorer = Scorer.from_config(cfg)
    limit = max_lengths(src_len, cfg.max_len_a, cfg.max_len_b)  # (B,)
    trace: list[tuple[Tensor, Tensor, Tensor]] = []
    result = beam_search(
        model, src, src_len, limit, scorer, cfg.beam_size, nbest, cfg.min_len, cfg.stop, trace
    )
    ref_score, ref_logprob, _ = scorer.score(model, src, src_len, ref, ref_len)  # (B,), (B,)
    falls = fallout(trace, ref, ref_len, limit, cfg.beam_size)
    out = []
    for b, (ranks, fell, why) in enumerate(falls):
        out.append(
            Compared(
                nbest=result.sentence(b, int(src_len[b])),
                ref_tokens=ref[b, : ref_len[b]].tolist(),
                ref_logprob=float(ref_logprob[b]),
                ref_score=float(ref_score[b]),
                limit=int(limit[b]),
                ranks=ranks,
                fell_off=fell,
                fell_off_reason=why,
            )
        )
    return out


def compare(
    model: Seq2Seq,
    src_ids: list[list[int]],
    ref_ids: list[list[int]],
    cfg: DecodeConfig,
    nbest: int,
    device: torch.device | str = "cpu",
    progress: Callable[[int], object] | None = None,
) -> list[Compared]:
    """compare_batch over length-sorted batches of cfg.batch_size; results in input order.

    src_ids, ref_ids: id lists without EOS (batching adds it, as for training targets).
    """
    was_training = model.training
    model.eval()
    out: list[Compared | None] = [None] * len(src_ids)
    try:
        for index in sentence_batches([len(s) for s in src_ids], cfg.batch_size):
            batch = make_batch([src_ids[i] for i in index], [ref_ids[i] for i in index], index)
            batch = batch.to(device)
            rows = compare_batch(
                model, batch.src, batch.src_len, batch.tgt, batch.tgt_len, cfg, nbest
            )
            for i, row in zip(index, rows, strict=True):
                out[i] = row
            if progress is not None:
                progress(len(index))
    finally:
        model.train(was_training)
    return out
