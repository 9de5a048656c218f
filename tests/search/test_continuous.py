"""Continuous greedy decoding: a sentence that joins the rows mid-way, or leaves them, is
decoded exactly as greedy_search decodes it alone."""

import pytest
import torch

from nmt import EOS_ID
from nmt.search import Scorer, greedy_search
from nmt.search.continuous import GreedyStream
from nmt.search.ensemble import Ensemble
from nmt.search.result import max_lengths
from tests.conftest import padded, tiny_model

# ids without EOS, of different lengths, so rows end at different steps
SOURCES = [[5, 6, 7, 8, 9, 10], [11, 12], [13], [5, 5, 5, 5], [14, 15, 16, 17, 18, 19, 20, 21], [7]]
A, B = 2.0, 3  # max_len_a, max_len_b


def alone(model, ids, scorer, min_len=0):
    src, src_len = padded([ids + [EOS_ID]])
    limit = max_lengths(src_len, A, B)
    return greedy_search(model, src, src_len, limit, scorer, min_len).sentence(0, len(ids) + 1)


def run_stream(model, arrivals, scorer, min_len=0):
    """arrivals: {step: [source index, ...]} admitted before that step → {index: result}."""
    stream = GreedyStream(model, scorer, A, B, min_len)
    results, step = {}, 0
    while step <= max(arrivals) or len(stream):
        todo = arrivals.get(step, [])
        stream.admit([SOURCES[i] for i in todo], todo)
        for tag, result in stream.step():
            assert tag not in results
            results[tag] = result
        step += 1
    return results


def assert_same(got, want):
    assert got.tokens.tolist() == want.tokens.tolist()
    assert got.lengths.tolist() == want.lengths.tolist()
    for name in ("logprob", "score", "token_logprobs", "attention"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tiny_model("gru", "bahdanau"),
        lambda: tiny_model("lstm", "luong_general", seed=1),
        lambda: tiny_model("rnn", "luong_dot", input_feeding=False, layers=2, seed=2),
        lambda: Ensemble([tiny_model("gru", seed=3), tiny_model("lstm", seed=4)]).eval(),
    ],
    ids=["gru-bahdanau", "lstm-luong", "rnn-dot-2layers", "ensemble"],
)
def test_sentences_joining_mid_way_decode_as_they_do_alone(make):
    model = make()
    scorer = Scorer("norm", 1.0, 0.0)
    # wider and longer sources join rows already decoding; some arrive after others ended
    arrivals = {0: [1, 2], 1: [0], 3: [4, 3], 9: [5]}
    results = run_stream(model, arrivals, scorer)
    assert sorted(results) == list(range(len(SOURCES)))
    for i, ids in enumerate(SOURCES):
        assert_same(results[i], alone(model, ids, scorer))


def test_length_limits_and_min_len_hold_per_row():
    model = tiny_model(seed=5)
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] -= 100.0  # never ends by itself: the limit ends it
    results = run_stream(model, {0: [0, 1], 2: [2, 3, 4]}, Scorer())
    for i in range(5):
        want = int(max_lengths(torch.tensor([len(SOURCES[i]) + 1]), A, B))
        assert int(results[i].lengths) == want
        assert_same(results[i], alone(model, SOURCES[i], Scorer()))
    eager = tiny_model(seed=6)
    with torch.no_grad():
        eager.decoder.output.bias[EOS_ID] += 100.0  # ends at once unless min_len forbids it
    results = run_stream(eager, {0: [0], 1: [1, 2]}, Scorer(), min_len=3)
    for i in range(3):
        assert int(results[i].lengths) == 3
        assert_same(results[i], alone(eager, SOURCES[i], Scorer(), min_len=3))


def test_an_empty_stream_steps_to_nothing_and_takes_new_rows_again():
    model = tiny_model()
    stream = GreedyStream(model, Scorer(), A, B)
    assert stream.step() == [] and len(stream) == 0
    for _ in range(2):  # emptied, then refilled
        stream.admit([SOURCES[2]], ["x"])
        ended = []
        while len(stream):
            ended += stream.step()
        assert [tag for tag, _ in ended] == ["x"]
        assert_same(ended[0][1], alone(model, SOURCES[2], Scorer()))
