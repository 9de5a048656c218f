"""The beam × alpha sweep and where the reference prefix leaves the beam."""

from __future__ import annotations

from nmt import EOS_ID
from nmt.analysis.analyze import sentence_records
from nmt.analysis.compare import LIMIT, PRUNED, STOPPED, compare
from nmt.analysis.sweep import calibrate, score_references, sweep
from nmt.config import DecodeConfig
from tests.analysis.conftest import (
    MODEL_ERROR,
    OBJECTIVE,
    SEARCH_ERROR,
    BigramModel,
    IdTokenizer,
    id_vocabs,
)

# After BOS the chain 4 → 5 → 6 → EOS is likeliest at every step.
CHAIN = {2: {4: 0.9, 5: 0.1}, 4: {5: 0.9, 6: 0.1}, 5: {6: 0.9, 4: 0.1}, 6: {EOS_ID: 0.9, 4: 0.1}}


def _sweep(probs, ref, beams, alphas, short_ratio=0.5, word_rewards=None, vocab=7):
    model, src = BigramModel(probs, vocab), [[4, 5]]
    scored = score_references(model, src, [ref], IdTokenizer(), 8)
    decode = DecodeConfig(strategy="beam", max_len_b=6)
    return sweep(
        model,
        IdTokenizer(),
        scored,
        decode,
        beams,
        alphas,
        short_ratio=short_ratio,
        word_rewards=word_rewards,
    )


def test_the_sweep_shows_search_errors_vanish_as_the_beam_widens():
    rows = _sweep(SEARCH_ERROR, "5", [1, 2], [0.0])
    assert [(r.beam, r.search_error_rate, r.shares["match"]) for r in rows] == [
        (1, 1.0, 0.0),
        (2, 0.0, 1.0),
    ]
    assert rows[1].chrf > rows[0].chrf and rows[0].empty_rate == 0.0


def test_outputs_shorter_than_short_ratio_times_the_reference_count_as_short():
    # "4" (1 token) against the reference "4 5 6" (3 tokens)
    assert _sweep(MODEL_ERROR, "4 5 6", [1], [0.0])[0].short_rate == 1.0
    assert _sweep(MODEL_ERROR, "4 5 6", [1], [0.0], short_ratio=0.3)[0].short_rate == 0.0


def test_alpha_calibration_picks_the_best_bleu():
    rows = _sweep(OBJECTIVE, "6", [3], [0.0, 1.0])
    assert [r.shares["objective"] for r in rows] == [0.0, 1.0]
    assert calibrate(rows, "dev.src").alpha == 0.0


# Raw log P picks "6" (log 0.45 = -0.80, T = 2) over the reference "4 5 7 8" (log 0.34 =
# -1.09, T = 5); a word reward of 0.3 a token turns it (-0.20 against +0.41), as does alpha 0.5.
LONG = {2: {6: 0.5, 4: 0.35, EOS_ID: 0.05, 5: 0.1}, 6: {EOS_ID: 0.9, 5: 0.1}, 4: {5: 0.99}}
LONG |= {5: {7: 0.99}, 7: {8: 0.99}, 8: {EOS_ID: 0.99}}


def test_calibration_tries_every_alpha_with_every_word_reward_and_keeps_the_best():
    rows = _sweep(LONG, "4 5 7 8", [3], [0.0, 0.5], word_rewards=[0.0, 0.3], vocab=9)
    assert [(r.alpha, r.word_reward) for r in rows] == [(0, 0), (0, 0.3), (0.5, 0), (0.5, 0.3)]
    assert [r.shares["match"] for r in rows] == [0.0, 1.0, 1.0, 1.0]
    best = calibrate(rows, "dev.src")  # three settings at BLEU 100: the smallest alpha wins
    assert (best.alpha, best.word_reward) == (0.0, 0.3) and best.best is rows[1]


def _fallout(probs, ref, beam, max_len_b=6):
    decode = DecodeConfig(strategy="beam", beam_size=beam, max_len_a=0.0, max_len_b=max_len_b)
    ref_ids = [int(w) for w in ref.split()]
    compared = compare(BigramModel(probs), [[4, 5]], [ref_ids], decode, 1)
    return sentence_records(compared, ["4 5"], [ref], id_vocabs(), 1e-6)[0]


def test_a_reference_that_stays_best_is_never_pruned():
    record = _fallout(CHAIN, "4 5 6", beam=2)
    assert record.class_ == "match"
    assert (record.ref_ranks, record.fell_off_step) == ([1, 1, 1], None)


def test_pruned_stopped_and_length_limit_are_told_apart():
    pruned = _fallout(CHAIN, "5 6", beam=1)
    assert (pruned.ref_ranks, pruned.fell_off_step, pruned.fell_off_reason) == (
        [2],
        1,
        PRUNED,
    )
    # "4 5 6 4 5": its prefixes stay live until the finished "4 5 6" cannot be beaten
    stopped = _fallout(CHAIN, "4 5 6 4 5", beam=2)
    assert stopped.fell_off_reason == STOPPED and stopped.ref_ranks[:3] == [1, 1, 1]
    # a limit of 3 tokens (EOS included) cuts "4 5 6" off after its prefix "4 5"
    cut = _fallout(CHAIN, "4 5 6", beam=2, max_len_b=3)
    assert (cut.ref_ranks, cut.fell_off_step, cut.fell_off_reason) == ([1, 1], 3, LIMIT)
    assert cut.ref_over_limit
