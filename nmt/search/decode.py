"""Decode many sentences: length-sorted batches through the configured search, input order kept."""

from __future__ import annotations

import torch

from nmt.config import DecodeConfig
from nmt.data.batching import make_batch, sentence_batches
from nmt.model import Seq2Seq
from nmt.search.greedy import SearchResult, greedy_search, max_lengths


def search_batch(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, cfg: DecodeConfig
) -> SearchResult:
    """The best hypothesis for each row of src: (B, S) under the configured search."""
    limit = max_lengths(src_len, cfg.max_len_a, cfg.max_len_b)
    return greedy_search(model, src, src_len, limit)


def decode_ids(
    model: Seq2Seq, src_ids: list[list[int]], cfg: DecodeConfig, device: torch.device, progress=None
) -> list[list[int]]:
    """Translate source id lists (without EOS) into target id lists (without EOS), in order.

    Sentences are sorted by length and decoded cfg.batch_size at a time so little work is
    spent on padding; `progress`, if given, is called with the number of sentences done.
    """
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in src_ids]
    try:
        for index in sentence_batches([len(s) for s in src_ids], cfg.batch_size):
            batch = make_batch([src_ids[i] for i in index], None, index).to(device)
            result = search_batch(model, batch.src, batch.src_len, cfg)
            for i, hyp in zip(index, result.token_lists(), strict=True):
                out[i] = hyp
            if progress is not None:
                progress(len(index))
    finally:
        model.train(was_training)
    return out
