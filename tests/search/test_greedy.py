"""Greedy search: batched = one at a time, EOS ends a hypothesis, limits hold, scores agree."""

import torch

from nmt import BOS_ID, EOS_ID, PAD_ID
from nmt.search import Scorer, greedy_search
from nmt.search.result import max_lengths
from tests.conftest import padded, tiny_model

SRC = [[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID], [13, EOS_ID], [5, 5, 5, 5, EOS_ID]]


def _search(model, rows, a=2.0, b=3):
    src, src_len = padded(rows)
    return greedy_search(model, src, src_len, max_lengths(src_len, a, b))


def test_batched_equals_one_sentence_at_a_time():
    model = tiny_model("lstm", "luong_general")
    batched = _search(model, SRC)
    for i, row in enumerate(SRC):
        alone = _search(model, [row])
        assert batched.token_lists()[i] == alone.token_lists()[0]
        torch.testing.assert_close(batched.logprob[i], alone.logprob[0], atol=1e-5, rtol=1e-5)


def test_reported_log_prob_equals_rescoring_with_the_shared_scorer():
    model = tiny_model()
    result = _search(model, SRC)
    src, src_len = padded(SRC)
    objective, logprob, _ = Scorer().score(model, src, src_len, result.tokens, result.lengths)
    torch.testing.assert_close(logprob, result.logprob, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(objective, result.logprob, atol=1e-5, rtol=1e-5)


def test_hypotheses_stop_at_eos_and_never_emit_pad_or_bos():
    model = tiny_model(seed=3)
    # Make EOS likely after a few steps by biasing the output layer.
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] += 2.0
    result = _search(model, SRC, a=3.0, b=5)
    for row, n in zip(result.tokens.tolist(), result.lengths.tolist(), strict=True):
        assert PAD_ID not in row[:n] and BOS_ID not in row[:n]
        assert all(t == PAD_ID for t in row[n:])  # nothing after the end
        if EOS_ID in row[:n]:
            assert row.index(EOS_ID) == n - 1


def test_max_length_is_honoured():
    model = tiny_model(seed=4)
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] -= 100.0  # never ends by itself
    src, src_len = padded(SRC)
    limit = max_lengths(src_len, 1.0, 2)
    result = greedy_search(model, src, src_len, limit)
    assert result.lengths.tolist() == limit.tolist()
    assert all(EOS_ID not in hyp for hyp in result.token_lists())
