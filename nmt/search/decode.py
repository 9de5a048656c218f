"""Decode many sentences: length-sorted batches through the configured search, input order kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from nmt.config import DecodeConfig
from nmt.data.batching import make_batch, sentence_batches
from nmt.model import Seq2Seq
from nmt.search.beam import beam_search
from nmt.search.greedy import greedy_search
from nmt.search.result import SearchResult, max_lengths
from nmt.search.scoring import Scorer


def search_batch(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, cfg: DecodeConfig, nbest: int = 1
) -> SearchResult:
    """The nbest best hypotheses of each row of src: (B, S) under the configured search.

    Returns B·nbest rows, sentence-major, best first (nbest 1: the best one per sentence).
    cfg is trusted: it has passed nmt.config.validate_decode (greedy means nbest 1).
    """
    scorer = Scorer.from_config(cfg)
    limit = max_lengths(src_len, cfg.max_len_a, cfg.max_len_b)
    if cfg.strategy == "greedy":
        return greedy_search(model, src, src_len, limit, scorer, cfg.min_len)
    return beam_search(
        model, src, src_len, limit, scorer, cfg.beam_size, nbest, cfg.min_len, cfg.stop
    )


def _batches(
    model: Seq2Seq,
    src_ids: list[list[int]],
    cfg: DecodeConfig,
    device: torch.device,
    nbest: int,
    progress: Callable[[int], object] | None,
) -> Iterator[tuple[list[int], torch.Tensor, SearchResult]]:
    """(input positions, src_len (B,), result) per length-sorted batch, model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        for index in sentence_batches([len(s) for s in src_ids], cfg.batch_size):
            batch = make_batch([src_ids[i] for i in index], None, index).to(device)
            yield index, batch.src_len, search_batch(model, batch.src, batch.src_len, cfg, nbest)
            if progress is not None:
                progress(len(index))
    finally:
        model.train(was_training)


def decode_ids(
    model: Seq2Seq, src_ids: list[list[int]], cfg: DecodeConfig, device: torch.device, progress=None
) -> list[list[int]]:
    """Translate source id lists (without EOS) into target id lists (without EOS), in order.

    Sentences are sorted by length and decoded cfg.batch_size at a time so little work is
    spent on padding; `progress`, if given, is called with the number of sentences done.
    Only the best hypothesis is searched for, whatever cfg.nbest says.
    """
    out: list[list[int]] = [[] for _ in src_ids]
    for index, _, result in _batches(model, src_ids, cfg, device, 1, progress):
        for i, hyp in zip(index, result.token_lists(), strict=True):
            out[i] = hyp
    return out


def decode_nbest(
    model: Seq2Seq, src_ids: list[list[int]], cfg: DecodeConfig, device: torch.device, progress=None
) -> list[SearchResult]:
    """The cfg.nbest best hypotheses of each source id list, in input order.

    One SearchResult per sentence (its rows best first, trimmed to its own source width),
    with tokens, log P, objective, per-token log P and attention of each hypothesis.
    """
    out: list[SearchResult | None] = [None] * len(src_ids)
    for index, src_len, result in _batches(model, src_ids, cfg, device, cfg.nbest, progress):
        for j, i in enumerate(index):
            out[i] = result.sentence(j, int(src_len[j]))
    return out
