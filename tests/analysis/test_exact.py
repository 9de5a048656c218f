"""Exact search finds the mode of log P: equal to brute force on tiny vocabularies."""

from __future__ import annotations

import itertools

import pytest
import torch
from omegaconf import OmegaConf

from nmt import EOS_ID, UNK_ID
from nmt.analysis.analyze import exact_records
from nmt.analysis.compare import compare
from nmt.analysis.exact import exact_search
from nmt.analysis.summary import exact_summary
from nmt.config import DecodeConfig
from nmt.search import Scorer, beam_search
from tests.analysis.conftest import SEARCH_ERROR, BigramModel, id_vocabs
from tests.conftest import padded, tiny_model

WORDS, LIMIT = [UNK_ID, 4, 5, 6], 4


def _brute_force(model, row, min_len):
    """Every output the beam could return (EOS-terminated up to LIMIT, or cut at LIMIT)."""
    outputs = [
        [*w, EOS_ID]
        for n in range(LIMIT)
        if n + 1 >= min_len
        for w in itertools.product(WORDS, repeat=n)
    ] + [list(w) for w in itertools.product(WORDS, repeat=LIMIT)]
    tgt, tgt_len = padded(outputs)
    src, src_len = padded([row] * len(outputs))
    _, logprob, _ = Scorer().score(model, src, src_len, tgt, tgt_len)
    best = int(logprob.argmax())
    return outputs[best], float(logprob[best])


@pytest.mark.parametrize("min_len", [0, 3])
@pytest.mark.parametrize("seed", range(4))
def test_exact_search_equals_brute_force(seed, min_len):
    model = tiny_model(tgt_vocab=7, seed=seed)
    with torch.no_grad():
        model.decoder.output.weight *= 6.0  # peaked, history-dependent distributions
        model.decoder.output.bias[EOS_ID] += seed - 1.5
    for row in ([5, 6, 7, EOS_ID], [8, EOS_ID]):
        src, src_len = padded([row])
        found = exact_search(model, src, src_len, LIMIT, min_len)
        tokens, logprob = _brute_force(model, row, min_len)
        assert found.finished
        assert found.tokens == tokens
        assert found.logprob == pytest.approx(logprob, abs=1e-4)


def test_exact_search_finds_what_beam_one_misses_and_keeps_a_proven_incumbent():
    model = BigramModel(SEARCH_ERROR)
    src, src_len = padded([[4, EOS_ID]])
    greedy = beam_search(model, src, src_len, torch.tensor([6]), Scorer(), 1)
    start = (greedy.tokens[0, : greedy.lengths[0]].tolist(), float(greedy.logprob[0]))
    assert start[0] == [4, EOS_ID]
    found = exact_search(model, src, src_len, 6, incumbent=start)
    assert (found.tokens, found.finished, found.empty) == ([5, EOS_ID], True, False)
    again = exact_search(model, src, src_len, 6, incumbent=(found.tokens, found.logprob))
    assert again.tokens == [5, EOS_ID] and again.nodes < found.nodes + 1


def test_the_budget_stops_the_search_unfinished():
    model = tiny_model(tgt_vocab=19, seed=1)
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] -= 3.0  # long outputs: far more than 3 nodes
    src, src_len = padded([[5, 6, EOS_ID]])
    found = exact_search(model, src, src_len, 8, max_nodes=3)
    assert not found.finished and found.nodes == 3
    assert found.tokens  # the best complete output seen so far


def test_the_analysis_reports_the_mode_that_beam_one_missed():
    cfg = OmegaConf.create(
        {"analysis": {"exact_sentences": 1, "exact_nodes": 100, "exact_seconds": 5.0}}
    )
    decode = DecodeConfig(strategy="beam", beam_size=1, max_len_b=6)
    model = BigramModel(SEARCH_ERROR)
    compared = compare(model, [[4, 5]], [[5]], decode, 1)
    (found,) = exact_records(
        model, compared, [[4, 5]], cfg.analysis, decode, id_vocabs(), "cpu", False
    )
    assert found.finished and found.mode_text == "5"
    assert not found.beam_is_mode and found.reference_is_mode and not found.mode_empty
    summary = exact_summary([found], cfg.analysis)
    assert (summary.finished_rate, summary.beam_is_mode_rate) == (1.0, 0.0)
