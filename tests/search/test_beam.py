"""Beam search: greedy at width 1, exact when wide, rescorable, batch-independent, and it
stops only when no live hypothesis can still win."""

import itertools

import pytest
import torch

from nmt import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.config import DecodeConfig
from nmt.config_checks import validate_decode
from nmt.errors import ConfigError
from nmt.search import Scorer, beam_search, greedy_search
from nmt.search.result import max_lengths
from tests.bigram import BigramModel
from tests.conftest import padded, tiny_model

SRC = [[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID], [13, EOS_ID], [5, 5, 5, 5, EOS_ID]]


def _biased(seed: int, eos_bias: float, cell: str = "gru", tgt_vocab: int = 19):
    """A tiny model whose EOS is made likelier (or never chosen) by its output bias."""
    model = tiny_model(cell, tgt_vocab=tgt_vocab, seed=seed)
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] += eos_bias
    return model


def _beam(model, rows, scorer=None, k=4, nbest=1, a=2.0, b=3, min_len=0):
    src, src_len = padded(rows)
    limit = max_lengths(src_len, a, b)
    return beam_search(model, src, src_len, limit, scorer or Scorer(), k, nbest, min_len)


# Each case mixes hypotheses that end early, later, or at the length limit.
GREEDY_CASES = [
    (1, "gru", 0.0),
    (2, "gru", 0.5),
    (3, "gru", 0.0),
    (1, "lstm", 0.5),
    (5, "rnn", 0.0),
]


@pytest.mark.parametrize(("seed", "cell", "eos_bias"), GREEDY_CASES)
def test_beam_one_equals_greedy(seed, cell, eos_bias):
    model = _biased(seed, eos_bias, cell)
    src, src_len = padded(SRC)
    limit = max_lengths(src_len, 2.0, 3)
    greedy = greedy_search(model, src, src_len, limit)
    beam = beam_search(model, src, src_len, limit, Scorer("norm", alpha=0.0), 1)
    assert len(set(greedy.lengths.tolist())) > 1  # the case has something to show
    assert beam.token_lists() == greedy.token_lists()
    assert beam.lengths.tolist() == greedy.lengths.tolist()
    torch.testing.assert_close(beam.logprob, greedy.logprob, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(beam.token_logprobs, greedy.token_logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(beam.attention, greedy.attention, atol=1e-5, rtol=0)


# Exhaustive search. Target vocabulary of 7: PAD, UNK, BOS, EOS and 4, 5, 6, so outputs are
# drawn from 4 non-EOS tokens plus EOS. Max length 4. Candidates are (1) every sequence of
# 0–3 non-EOS tokens followed by EOS and (2) every 4 non-EOS tokens, finalised at the limit
# without EOS, as beam search does. A beam of 80 holds every candidate of steps 1–3 (5·4²)
# and the 80 most probable at step 4, enough for the exact 5 best.
VOCAB, LIMIT, WIDE = 7, 4, 80
WORDS = [UNK_ID, 4, 5, 6]


def _all_outputs(min_len: int) -> list[list[int]]:
    out = []
    for n in range(LIMIT):
        if n + 1 >= min_len:
            out += [[*w, EOS_ID] for w in itertools.product(WORDS, repeat=n)]
    return out + [list(w) for w in itertools.product(WORDS, repeat=LIMIT)]


def _exhaustive(model, row, scorer, min_len):
    outputs = _all_outputs(min_len)
    tgt, tgt_len = padded(outputs)
    src, src_len = padded([row] * len(outputs))
    objective, _, _ = scorer.score(model, src, src_len, tgt, tgt_len)
    order = objective.argsort(descending=True)
    return [outputs[i] for i in order.tolist()], objective[order]


SCORERS = {
    "none": Scorer("none"),
    "norm-1": Scorer("norm", alpha=1.0),
    "gnmt-0.6": Scorer("gnmt", alpha=0.6),
    "word-reward": Scorer("none", word_reward=0.8),
    "norm-word-penalty": Scorer("norm", alpha=0.5, word_reward=-0.3),
}


def _peaked(seed: int, eos_bias: float):
    """A tiny model over VOCAB with sharp, history-dependent next-token distributions."""
    model = _biased(seed, eos_bias, tgt_vocab=VOCAB)
    with torch.no_grad():
        model.decoder.output.weight *= 8.0
    return model


@pytest.mark.parametrize("name", list(SCORERS))
@pytest.mark.parametrize("min_len", [0, 3])
def test_wide_beam_finds_the_exhaustive_search_optimum(name, min_len):
    scorer, best_lengths = SCORERS[name], set()
    rows = SRC[:3]
    src, src_len = padded(rows)
    limit = torch.full_like(src_len, LIMIT)
    for seed, eos_bias in itertools.product(range(3), (-1.0, 0.0)):
        model = _peaked(seed, eos_bias)
        beam = beam_search(model, src, src_len, limit, scorer, WIDE, nbest=5, min_len=min_len)
        for i, row in enumerate(rows):
            outputs, scores = _exhaustive(model, row, scorer, min_len)
            mine = slice(i * 5, i * 5 + 5)
            torch.testing.assert_close(beam.score[mine], scores[:5], atol=1e-5, rtol=0)
            best = beam.tokens[i * 5, : beam.lengths[i * 5]].tolist()
            assert best == outputs[0]
            best_lengths.add((len(best), best[-1] == EOS_ID))
    # the optimum is sometimes short, sometimes long: the case tells stopping rules apart
    assert len(best_lengths) > 1


def test_reported_scores_equal_rescoring_with_the_shared_scorer():
    scorer = Scorer("gnmt", alpha=0.6, word_reward=0.2)
    model = _biased(5, 0.5)
    beam = _beam(model, SRC, scorer, k=4, nbest=4)
    src, src_len = padded(SRC)
    src, src_len = src.repeat_interleave(4, 0), src_len.repeat_interleave(4)
    objective, logprob, token = scorer.score(model, src, src_len, beam.tokens, beam.lengths)
    torch.testing.assert_close(objective, beam.score, atol=1e-5, rtol=0)
    torch.testing.assert_close(logprob, beam.logprob, atol=1e-5, rtol=0)
    torch.testing.assert_close(token, beam.token_logprobs, atol=1e-5, rtol=0)


def test_batched_equals_one_sentence_at_a_time():
    model = tiny_model("lstm", "luong_general", seed=6)
    scorer = Scorer("norm", alpha=1.0)
    order = [2, 0, 3, 1]
    long_row = [7] * 11 + [EOS_ID]  # pads the others further than in SRC
    rows = [SRC[i] for i in order] + [long_row]
    batched = _beam(model, rows, scorer, k=3, nbest=2)
    for j, i in enumerate(order):
        alone = _beam(model, [SRC[i]], scorer, k=3, nbest=2)
        assert batched.token_lists()[2 * j : 2 * j + 2] == alone.token_lists()
        torch.testing.assert_close(batched.score[2 * j : 2 * j + 2], alone.score, atol=1e-5, rtol=0)
        width = len(SRC[i])
        torch.testing.assert_close(
            batched.attention[2 * j : 2 * j + 2, : alone.tokens.size(1), :width],
            alone.attention,
            atol=1e-5,
            rtol=0,
        )


def test_hypotheses_end_at_eos_and_never_continue_past_it():
    model = _biased(3, 2.0)
    src, src_len = padded(SRC)
    limit = max_lengths(src_len, 3.0, 5)
    beam = beam_search(model, src, src_len, limit, Scorer("norm", alpha=1.0), 4, nbest=4)
    assert (beam.lengths == 0).sum() == 0
    ended = 0
    for i, (row, n) in enumerate(zip(beam.tokens.tolist(), beam.lengths.tolist(), strict=True)):
        assert PAD_ID not in row[:n] and BOS_ID not in row[:n]
        assert all(t == PAD_ID for t in row[n:])
        assert beam.attention[i, n:].abs().sum() == 0 and beam.token_logprobs[i, n:].sum() == 0
        if EOS_ID in row[:n]:
            assert row.index(EOS_ID) == n - 1
            ended += 1
        else:  # only a hypothesis cut at the limit has no EOS
            assert n == limit[i // 4]
    assert ended > 0


def test_max_length_is_honoured():
    model = _biased(4, -100.0)  # never ends by itself
    src, src_len = padded(SRC)
    limit = max_lengths(src_len, 1.0, 2)
    beam = beam_search(model, src, src_len, limit, Scorer("norm", alpha=1.0), 3, nbest=3)
    assert beam.lengths.tolist() == limit.repeat_interleave(3).tolist()
    assert all(EOS_ID not in hyp for hyp in beam.token_lists())


def test_min_length_is_honoured():
    model = _biased(4, 6.0)  # would end at once
    assert _beam(model, SRC, k=3).lengths.tolist() == [1, 1, 1, 1]
    beam = _beam(model, SRC, k=3, nbest=3, min_len=4)
    assert beam.lengths.min() == 4
    rows, lengths = beam.tokens.tolist(), beam.lengths.tolist()
    assert all(row[n - 1] == EOS_ID for row, n in zip(rows, lengths, strict=True))


def test_nbest_is_sorted_by_score_and_distinct():
    beam = _beam(_biased(7, 1.0), SRC, Scorer("norm", alpha=1.0), k=6, nbest=6)
    for i in range(len(SRC)):
        scores = beam.score[i * 6 : i * 6 + 6]
        assert torch.all(scores[:-1] >= scores[1:])
        hyps = [tuple(h) for h in beam.token_lists()[i * 6 : i * 6 + 6]]
        assert len(set(hyps)) == 6


def test_search_goes_on_after_the_top_hypothesis_ends_when_a_longer_one_can_win():
    # After BOS, EOS is the best token (0.5) but "4 5 EOS" (0.4 · 0.99 · 0.99) has the better
    # average log-prob: -0.31 per token against -0.69. A beam that stops once its top
    # hypothesis has ended (JoeyNMT PR #149) returns the empty output.
    model = BigramModel({BOS_ID: {EOS_ID: 0.5, 4: 0.4}, 4: {5: 0.99}, 5: {EOS_ID: 0.99}})
    src, src_len = padded([[5, 6, EOS_ID]])
    limit = torch.tensor([8])
    for k in (1, 2, 3):
        raw = beam_search(model, src, src_len, limit, Scorer("norm", alpha=0.0), k)
        assert raw.token_lists() == [[]]
        normed = beam_search(model, src, src_len, limit, Scorer("norm", alpha=1.0), k)
        assert normed.token_lists() == [[4, 5]]
        path = model.table[BOS_ID, 4] + model.table[4, 5] + model.table[5, EOS_ID]
        assert normed.score.item() == pytest.approx(path.item() / 3, abs=1e-6)


# "4 5 6 EOS" starts worse than the empty output (0.2 against 0.5) and then costs almost
# nothing. Under each objective below it wins, but only a bound that looks ahead to the
# longest length still allowed sees that at step 1: judged at the next length, or at the
# current one, the live prefix "4" already looks beaten.
LOOK_AHEAD = {
    BOS_ID: {EOS_ID: 0.5, 4: 0.2, 5: 0.15, 6: 0.15},
    4: {5: 1.0},
    5: {6: 1.0},
    6: {EOS_ID: 1.0},
}


@pytest.mark.parametrize(
    "scorer",
    [Scorer("norm", alpha=1.0), Scorer("gnmt", alpha=3.0), Scorer("none", word_reward=0.5)],
    ids=["norm", "gnmt", "word-reward"],
)
def test_stopping_bound_looks_ahead_to_the_length_limit(scorer):
    model = BigramModel(LOOK_AHEAD)
    src, src_len = padded([[5, EOS_ID]])
    limit = torch.tensor([8])
    assert beam_search(model, src, src_len, limit, Scorer(), 2).token_lists() == [[]]
    best = beam_search(model, src, src_len, limit, scorer, 2)
    assert best.token_lists() == [[4, 5, 6]]


# With K = 2 the empty output ends at step 1 and "6" at step 2: two hypotheses have ended,
# so an early stop returns the empty output (log P per token -0.69). "4 5" is still live and
# ends at step 3 with -0.52 per token: the exact stop waits for it.
EARLY = {BOS_ID: {EOS_ID: 0.5, 4: 0.3, 6: 0.2}, 4: {5: 0.7, EOS_ID: 0.3}, 5: {EOS_ID: 1.0}}
EARLY[6] = {EOS_ID: 1.0}


def test_early_stop_ends_a_sentence_once_k_hypotheses_have_ended():
    model = BigramModel(EARLY)
    src, src_len = padded([[5, EOS_ID]])
    limit, scorer = torch.tensor([8]), Scorer("norm", alpha=1.0)
    exact_trace, early_trace = [], []
    exact = beam_search(model, src, src_len, limit, scorer, 2, trace=exact_trace)
    early = beam_search(model, src, src_len, limit, scorer, 2, stop="early", trace=early_trace)
    assert exact.token_lists() == [[4, 5]] and len(exact_trace) == 3
    assert early.token_lists() == [[]] and len(early_trace) == 2
    assert early.score.item() == pytest.approx(model.table[BOS_ID, EOS_ID].item(), abs=1e-6)
    # an unknown rule is refused where decode configs are checked (beam_search trusts stop)
    with pytest.raises(ConfigError, match="stop='first'"):
        validate_decode(DecodeConfig(strategy="beam", beam_size=2, stop="first"))
