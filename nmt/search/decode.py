"""Decode many sentences: length-sorted batches through the configured search, input order kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from nmt import PAD_ID
from nmt.config import DecodeConfig
from nmt.data.batching import make_batch, sentence_batches
from nmt.errors import DecodeMemoryError
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
    cfg is trusted: it has passed nmt.config_checks.validate_decode (greedy means nbest 1).
    """
    scorer = Scorer.from_config(cfg)
    limit = max_lengths(src_len, cfg.max_len_a, cfg.max_len_b)
    if cfg.strategy == "greedy":
        return greedy_search(model, src, src_len, limit, scorer, cfg.min_len)
    return beam_search(
        model, src, src_len, limit, scorer, cfg.beam_size, nbest, cfg.min_len, cfg.stop
    )


def _out_of_memory(err: RuntimeError) -> bool:
    """A failed allocation: torch's OutOfMemoryError (CUDA), or the CPU allocator's error."""
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err)


def _joined(parts: list[SearchResult]) -> SearchResult:
    """The results of consecutive rows as one, T padded to the longest (PAD ids, zeros)."""
    width = max(p.tokens.size(1) for p in parts)

    def cat(name: str, value: float = 0.0) -> torch.Tensor:
        tensors = [getattr(p, name) for p in parts]
        if tensors[0].dim() == 1:
            return torch.cat(tensors)
        # pad dimension 1 (T) of (B', T) and (B', T, S) tensors
        pads = [(0, 0) * (t.dim() - 2) + (0, width - t.size(1)) for t in tensors]
        return torch.cat([F.pad(t, pad, value=value) for t, pad in zip(tensors, pads, strict=True)])

    return SearchResult(
        cat("tokens", PAD_ID),
        cat("lengths"),
        cat("logprob"),
        cat("attention"),
        cat("score"),
        cat("token_logprobs"),
        nbest=parts[0].nbest,
    )


def _search_or_split(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, cfg: DecodeConfig, nbest: int
) -> SearchResult:
    """search_batch; a batch that runs out of memory is split in halves, each searched the
    same way (down to one sentence), and their results joined: the same hypotheses as an
    unsplit search. src: (B, S), src_len: (B,); B·nbest rows out."""
    try:
        return search_batch(model, src, src_len, cfg, nbest)
    except RuntimeError as err:
        if not _out_of_memory(err):
            raise
        if src.size(0) == 1:
            raise DecodeMemoryError(
                f"decoding ran out of memory on {src.device} even one sentence at a time "
                f"({int(src_len[0])} source tokens, decode.beam_size={cfg.beam_size}; "
                f"decode.batch_size={cfg.batch_size} was split down to 1): lower "
                "decode.beam_size or decode.max_len_a, or free memory on the device"
            ) from err
    # retried outside the except block, so the failed attempt's tensors are freed first
    if src.is_cuda:
        torch.cuda.empty_cache()
    half = (src.size(0) + 1) // 2
    rows = (slice(0, half), slice(half, None))
    return _joined([_search_or_split(model, src[r], src_len[r], cfg, nbest) for r in rows])


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
            batch = make_batch([src_ids[i] for i in index], None, index)
            # what a batch's time grows with; summed on the CPU: no wait for a GPU
            work = float(batch.src_len.sum()) * cfg.beam_size
            batch = batch.to(device)
            with model.kernels.unit(work):  # on the thread count measured fastest now
                result = _search_or_split(model, batch.src, batch.src_len, cfg, nbest)
            yield index, batch.src_len, result
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
