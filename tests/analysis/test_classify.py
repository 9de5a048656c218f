"""The four classes: the order of the checks, ties, and each class on a model built for it."""

from __future__ import annotations

import pytest

from nmt.analysis.analyze import sentence_records
from nmt.analysis.classify import MATCH, MODEL, OBJECTIVE, SEARCH, classify
from nmt.analysis.compare import compare
from nmt.config import DecodeConfig
from nmt.search import Scorer, beam_search
from nmt.search.result import max_lengths
from tests.analysis.conftest import MODEL_ERROR, SEARCH_ERROR, BigramModel, id_vocabs
from tests.analysis.conftest import OBJECTIVE as OBJ_PROBS
from tests.conftest import padded, tiny_model

SRC = [[4, 5]]


def _analyse(probs, ref: str, beam: int, alpha: float) -> dict:
    decode = DecodeConfig(strategy="beam", beam_size=beam, alpha=alpha, max_len_b=6)
    compared = compare(BigramModel(probs), SRC, [[int(w) for w in ref.split()]], decode, beam)
    return sentence_records(compared, ["4 5"], [ref], id_vocabs(), 1e-6)[0]


def test_a_best_output_that_beam_one_misses_is_a_search_error_and_a_wider_beam_finds_it():
    narrow = _analyse(SEARCH_ERROR, "5", beam=1, alpha=0.0)
    assert (narrow.hyp, narrow.class_) == ("4", SEARCH)
    assert narrow.ref_score > narrow.hyp_score
    assert (narrow.fell_off_step, narrow.fell_off_reason, narrow.ref_ranks) == (
        1,
        "pruned",
        [2],  # K + 1: outside the beam of 1
    )
    wide = _analyse(SEARCH_ERROR, "5", beam=2, alpha=0.0)
    assert (wide.hyp, wide.class_) == ("5", MATCH)
    assert wide.ref_ranks == [2] and wide.fell_off_step is None
    assert wide.ref_nbest_rank == 1


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("beam", [1, 3])
def test_a_model_that_prefers_its_wrong_output_is_a_model_error(beam, alpha):
    record = _analyse(MODEL_ERROR, "5", beam, alpha)
    assert (record.hyp, record.class_, record.tie) == ("4", MODEL, False)
    assert record.ref_logprob < record.hyp_logprob


def test_a_length_penalty_that_flips_the_preference_is_objective_induced():
    raw = _analyse(OBJ_PROBS, "6", beam=3, alpha=0.0)
    assert (raw.hyp, raw.class_) == ("6", MATCH)
    normed = _analyse(OBJ_PROBS, "6", beam=3, alpha=1.0)
    assert (normed.hyp, normed.class_) == ("4 5", OBJECTIVE)
    assert normed.ref_logprob > normed.hyp_logprob
    assert normed.ref_score < normed.hyp_score


def test_the_order_of_the_checks_makes_the_classes_disjoint():
    # objective prefers y* → search error, whatever raw log P says
    assert classify(False, -1.0, -2.0, -9.0, -3.0) == (SEARCH, False)
    assert classify(False, -2.0, -1.0, -3.0, -4.0) == (OBJECTIVE, False)
    assert classify(False, -2.0, -1.0, -5.0, -4.0) == (MODEL, False)
    assert classify(True, -1.0, -9.0, -1.0, -9.0) == (MATCH, False)


@pytest.mark.parametrize(
    ("ref_score", "hyp_score", "ref_lp", "hyp_lp"),
    [(-1.0 + 5e-7, -1.0, -3.0, -4.0), (-2.0, -1.0, -4.0 + 5e-7, -4.0), (-1.0, -1.0, -1.0, -1.0)],
)
def test_ties_within_tolerance_are_model_errors_and_flagged(ref_score, hyp_score, ref_lp, hyp_lp):
    assert classify(False, ref_score, hyp_score, ref_lp, hyp_lp, 1e-6) == (MODEL, True)


def test_classification_uses_exactly_the_numbers_the_beam_reported():
    model = tiny_model(tgt_vocab=11, seed=3)
    rows = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    refs = ["4 5 6", "7", "8 9 10 4"]
    decode = DecodeConfig(strategy="beam", beam_size=3, alpha=0.6, batch_size=2)
    ref_ids = [[int(w) for w in r.split()] for r in refs]
    records = sentence_records(
        compare(model, rows, ref_ids, decode, 2), [""] * 3, refs, id_vocabs(), 1e-6
    )
    for i, row in enumerate(rows):
        src, src_len = padded([[*row, 3]])
        limit = max_lengths(src_len, decode.max_len_a, decode.max_len_b)
        alone = beam_search(model, src, src_len, limit, Scorer("norm", alpha=0.6), 3, nbest=2)
        assert records[i].hyp_logprob == pytest.approx(float(alone.logprob[0]), abs=1e-5)
        expected = classify(
            records[i].hyp == records[i].ref,
            records[i].ref_score,
            records[i].hyp_score,
            records[i].ref_logprob,
            records[i].hyp_logprob,
        )
        assert (records[i].class_, records[i].tie) == expected
    # the hypothesis numbers are the beam's own, bit for bit: compare() batches the longest
    # first, two at a time, so rows 0 and 2 share a batch; the same batch gives the same bits
    src, src_len = padded([[*rows[0], 3], [*rows[2], 3]])
    limit = max_lengths(src_len, decode.max_len_a, decode.max_len_b)
    batch = beam_search(model, src, src_len, limit, Scorer("norm", alpha=0.6), 3, nbest=2)
    for i, row in ((0, 0), (2, 2)):
        assert records[i].hyp_logprob == float(batch.logprob[row])
        assert records[i].hyp_score == float(batch.score[row])
