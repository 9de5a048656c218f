"""Collation into padded tensors and token-budget batching."""

from __future__ import annotations

import random

import pytest
import torch

from nmt import EOS_ID, PAD_ID
from nmt.data.batching import TokenBatchSampler, make_batch, sentence_batches


def lengths(n: int, seed: int = 0, low: int = 1, high: int = 30) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


def cost(batch: list[int], src: list[int], tgt: list[int]) -> int:
    return len(batch) * max(max(src[i], tgt[i]) + 1 for i in batch)


def test_make_batch_pads_and_ends_rows_with_eos():
    src = [[5, 6, 7], [8], []]
    tgt = [[9], [10, 11, 12, 13], [14, 15]]
    batch = make_batch(src, tgt, [4, 0, 9])
    assert batch.src.shape == (3, 4) and batch.tgt.shape == (3, 5)
    assert batch.src.dtype == batch.tgt.dtype == batch.index.dtype == torch.long
    assert batch.src.tolist() == [
        [5, 6, 7, EOS_ID],
        [8, EOS_ID, PAD_ID, PAD_ID],
        [EOS_ID] + [PAD_ID] * 3,
    ]
    assert batch.src_len.tolist() == [4, 2, 1]
    assert batch.tgt_len.tolist() == [2, 5, 3]
    assert batch.index.tolist() == [4, 0, 9]
    assert batch.size == 3
    for padded, length, ids in [(batch.src, batch.src_len, src), (batch.tgt, batch.tgt_len, tgt)]:
        for row, n, seq in zip(padded.tolist(), length.tolist(), ids, strict=True):
            assert row[: n - 1] == seq and row[n - 1] == EOS_ID
            assert all(t == PAD_ID for t in row[n:])


def test_ntokens_counts_non_pad_target_tokens():
    batch = make_batch([[5], [6, 7]], [[8, 9, 10], [11]], [0, 1])
    assert batch.ntokens == int((batch.tgt != PAD_ID).sum()) == 6


def test_make_batch_without_target_for_decoding():
    batch = make_batch([[5, 6], [7]], None, [1, 0])
    assert batch.tgt is None and batch.tgt_len is None and batch.ntokens == 0
    moved = batch.to("cpu")
    assert moved.tgt is None and torch.equal(moved.src, batch.src)


def test_make_batch_rejects_misaligned_inputs():
    with pytest.raises(ValueError):
        make_batch([[5]], [[6], [7]], [0])


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_respect_budget_and_cover_every_index_once(shuffle):
    src, tgt = lengths(500, seed=1), lengths(500, seed=2)
    src[17] = 300  # longer than the budget on its own
    sampler = TokenBatchSampler(src, tgt, batch_tokens=128, shuffle=shuffle, seed=5)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(500))
        for b in batches:
            assert b and (cost(b, src, tgt) <= 128 or b == [17])
        assert [17] in batches


def test_batches_are_filled_greedily():
    # ten examples of 9 tokens + EOS: 3 fit in a budget of 36, not 4 (EOS counts)
    sampler = TokenBatchSampler([9] * 10, [9] * 10, batch_tokens=36, shuffle=False)
    assert [len(b) for b in sampler] == [3, 3, 3, 1]


def test_same_epoch_same_batches_other_epoch_other_order():
    src, tgt = lengths(300, seed=3), lengths(300, seed=4)
    sampler = TokenBatchSampler(src, tgt, batch_tokens=100, shuffle=True, seed=7)
    sampler.set_epoch(2)
    first = list(sampler)
    again = TokenBatchSampler(src, tgt, batch_tokens=100, shuffle=True, seed=7)
    again.set_epoch(0)
    list(again)
    again.set_epoch(2)
    assert list(sampler) == first and list(again) == first
    sampler.set_epoch(3)
    assert list(sampler) != first
    other_seed = TokenBatchSampler(src, tgt, batch_tokens=100, shuffle=True, seed=8)
    other_seed.set_epoch(2)
    assert list(other_seed) != first


def test_shuffle_does_not_touch_global_random_state():
    random.seed(0)
    torch.manual_seed(0)
    expected = (random.random(), torch.rand(1).item())
    random.seed(0)
    torch.manual_seed(0)
    sampler = TokenBatchSampler(lengths(100), lengths(100, 1), 64, shuffle=True)
    sampler.set_epoch(4)
    list(sampler)
    assert (random.random(), torch.rand(1).item()) == expected


def test_shuffle_mixes_equal_lengths_between_epochs():
    sampler = TokenBatchSampler([5] * 60, [5] * 60, batch_tokens=60, shuffle=True, seed=0)
    contents = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        contents.append(sorted(sorted(b) for b in sampler))
    assert contents[0] != contents[1]


def test_shuffle_randomises_batch_order():
    src = lengths(300, seed=12)
    sampler = TokenBatchSampler(src, None, batch_tokens=64, shuffle=True, seed=1)
    longest = [max(src[i] for i in b) for b in sampler]
    assert longest != sorted(longest)


def test_unshuffled_batches_are_sorted_by_length():
    src = lengths(200, seed=9)
    sampler = TokenBatchSampler(src, None, batch_tokens=64, shuffle=False)
    flat = [i for b in sampler for i in b]
    assert [src[i] for i in flat] == sorted(src)
    sampler.set_epoch(5)
    assert [i for b in sampler for i in b] == flat


def test_training_batches_bucket_by_target_length_first():
    """The decoder's cost follows the padded target length, so targets are grouped first:
    almost no target padding, whatever the source lengths (ties broken by source length)."""
    src, tgt = lengths(2000, seed=3), lengths(2000, seed=4)
    sampler = TokenBatchSampler(src, tgt, batch_tokens=256, shuffle=True, seed=2)
    real = sum(tgt[i] + 1 for b in sampler for i in b)
    padded = sum(len(b) * (max(tgt[i] for i in b) + 1) for b in sampler)
    assert 1 - real / padded < 0.02
    for batch in sampler:  # within a batch: target lengths differ by at most one step
        assert max(tgt[i] for i in batch) - min(tgt[i] for i in batch) <= 1


def test_sentence_batches_longest_first_and_complete():
    lens = lengths(103, seed=11)
    batches = sentence_batches(lens, batch_size=10)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(103))
    assert [lens[i] for i in flat] == sorted(lens, reverse=True)
