"""Token batches: collate padded id tensors and group examples by length under a budget.

Randomness comes only from numpy generators seeded with `seed + epoch` made here, never from
the global generators, so an epoch's batches can be rebuilt exactly when training resumes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nmt import EOS_ID, PAD_ID


@dataclass
class Batch:
    """Padded source (and target) ids of B examples, each sequence ending in EOS."""

    src: torch.Tensor  # (B, S) long: ids + [EOS], then PAD_ID
    src_len: torch.Tensor  # (B,) long: lengths including EOS
    tgt: torch.Tensor | None  # (B, T) long: ids + [EOS], then PAD_ID; None when decoding
    tgt_len: torch.Tensor | None  # (B,) long: lengths including EOS
    index: torch.Tensor  # (B,) long: position of each row in the dataset

    @property
    def size(self) -> int:
        """Number of examples, B."""
        return self.src.size(0)

    @property
    def ntokens(self) -> int:
        """Target tokens the loss counts (EOS included, padding not); 0 without a target."""
        return 0 if self.tgt_len is None else int(self.tgt_len.sum())

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on `device`."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(
            self.src.to(device),
            self.src_len.to(device),
            move(self.tgt),
            move(self.tgt_len),
            self.index.to(device),
        )


def _pad(seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids + [EOS] padded with PAD_ID, and (B,) lengths including EOS."""
    width = max((len(s) for s in seqs), default=0) + 1
    rows = [[*s, EOS_ID] + [PAD_ID] * (width - len(s) - 1) for s in seqs]
    padded = torch.tensor(rows, dtype=torch.long).view(len(rows), width)
    lengths = torch.tensor([len(s) + 1 for s in seqs], dtype=torch.long)
    return padded, lengths


def make_batch(
    src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]] | None, index: Sequence[int]
) -> Batch:
    """Collate token id lists (without EOS) into a `Batch`; `tgt_ids` None for decoding."""
    if len(src_ids) != len(index) or (tgt_ids is not None and len(tgt_ids) != len(index)):
        raise ValueError(
            f"make_batch got {len(src_ids)} sources, "
            f"{'no' if tgt_ids is None else len(tgt_ids)} targets and {len(index)} indices"
        )
    src, src_len = _pad(src_ids)
    tgt, tgt_len = _pad(tgt_ids) if tgt_ids is not None else (None, None)
    return Batch(src, src_len, tgt, tgt_len, torch.tensor(list(index), dtype=torch.long))


class EpochBatches(Sequence):
    """One epoch's batches as index arrays: `order` (every example once, batch after batch
    in the epoch's order) cut at `bounds`; a few bytes per example, no Python list of them."""

    def __init__(self, order: np.ndarray, bounds: np.ndarray) -> None:
        self.order = order  # (N,) int32 (int64 beyond 2**31): example indices, batch by batch
        self.bounds = bounds  # (n_batches + 1,) int64: batch k is order[bounds[k]:bounds[k+1]]

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"batch {k} of an epoch of {len(self)}")
        return self.order[self.bounds[k] : self.bounds[k + 1]]


class TokenBatchSampler:
    """Index arrays of length-bucketed batches whose padded size stays within `batch_tokens`.

    Examples are ordered by target length, then source length (the per-step decoder costs
    most, so its padding is kept smallest: 0.5% on Multi30k against 13% source-first), and
    cut greedily. A batch's cost is len(batch) * its longest sequence on either side, EOS
    included; one example longer than the budget still forms a batch of its own. With
    `shuffle`, equal lengths are mixed and the batch order is random, both from numpy's
    PCG64 seeded with `seed + epoch`; without, batches come shortest first (for decoding,
    restore order by `Batch.index`). Lengths are held as one small integer array, so a
    corpus of millions of pairs costs megabytes here, not a Python object per example.
    """

    def __init__(
        self,
        src_lens: Sequence[int] | np.ndarray,
        tgt_lens: Sequence[int] | np.ndarray | None,
        batch_tokens: int,
        shuffle: bool,
        seed: int = 0,
    ) -> None:
        src = _lengths(src_lens)
        tgt = np.zeros_like(src) if tgt_lens is None else _lengths(tgt_lens)
        if len(tgt) != len(src):
            raise ValueError(f"{len(src)} source but {len(tgt)} target lengths")
        if batch_tokens <= 0:
            raise ValueError(f"batch_tokens={batch_tokens} must be greater than 0")
        self.src_lens, self.tgt_lens = src, tgt.reshape(-1)
        self.batch_tokens = batch_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._cache: tuple[int, EpochBatches] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation `__iter__` and `__len__` describe."""
        self.epoch = epoch

    def batches(self) -> EpochBatches:
        """This epoch's batches, in order; equal every time for the same epoch."""
        epoch = self.epoch if self.shuffle else 0  # unshuffled batches never change
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._build(epoch))
        return self._cache[1]

    def _build(self, epoch: int) -> EpochBatches:
        rng = np.random.Generator(np.random.PCG64(self.seed + epoch))
        n = len(self.src_lens)
        index = np.int32 if n < 2**31 else np.int64  # half the memory for all but huge corpora
        order = (rng.permutation(n) if self.shuffle else np.arange(n)).astype(index)
        # stable: among equal lengths the shuffled order stays
        order = order[np.lexsort((self.src_lens[order], self.tgt_lens[order]))]
        widths = np.maximum(self.src_lens, self.tgt_lens)[order] + 1  # + EOS
        bounds = _greedy_cuts(widths, self.batch_tokens)
        if self.shuffle:
            sizes = np.diff(bounds)
            starts = bounds[:-1]
            pick = rng.permutation(len(sizes))
            order = np.concatenate(
                [order[a : a + k] for a, k in zip(starts[pick], sizes[pick], strict=True)]
            )
            bounds = np.concatenate([[0], np.cumsum(sizes[pick])])
        return EpochBatches(order, bounds.astype(np.int64))

    def __iter__(self) -> Iterator[list[int]]:
        return (b.tolist() for b in self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def _lengths(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Lengths as a 1-d integer array: an integer array as it is (a mapped one stays mapped),
    anything else as int64."""
    array = np.asarray(lengths)
    return array.reshape(-1) if array.dtype.kind in "iu" else array.astype(np.int64).reshape(-1)


def _greedy_cuts(widths: np.ndarray, budget: int) -> np.ndarray:
    """Where batches start in examples of `widths` (padded lengths, in batch order): each
    takes examples while (count + 1) * its widest stays within budget; (n_batches + 1,)."""
    bounds = [0]
    count = longest = 0
    position = 0
    for start in range(0, len(widths), 1 << 16):  # a chunk at a time: no list of all of them
        for width in widths[start : start + (1 << 16)].tolist():
            widest = longest if longest > width else width
            if count and (count + 1) * widest > budget:
                bounds.append(position)
                count, widest = 0, width
            count += 1
            longest = widest
            position += 1
    if count:
        bounds.append(position)
    return np.asarray(bounds, dtype=np.int64)


def sentence_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices sorted longest first, cut into chunks of `batch_size` sentences.

    For translation: similar lengths share a batch (little padding) and the longest batch
    comes first, so running out of memory happens at once if at all.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be greater than 0")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
