"""Ensemble: one distribution from several models, through Seq2Seq's decoding API."""

from __future__ import annotations

import pytest
import torch

from nmt import BOS_ID, EOS_ID
from nmt.config import DecodeConfig
from nmt.search.decode import decode_nbest
from nmt.search.ensemble import Ensemble
from nmt.search.scoring import Scorer
from tests.conftest import padded, tiny_model

SRC = [[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID], [11, 12, 13, EOS_ID]]
TGT = [[4, 5, 6, EOS_ID], [7, 8, EOS_ID], [9, EOS_ID]]


def members():
    """Two models that differ in cell, attention and seed, over the same vocabularies."""
    return [tiny_model("gru", "bahdanau", seed=0), tiny_model("lstm", "luong_general", seed=1)]


def stepped(model, src, src_len, tgt, tgt_len):
    """log P of tgt summed along step() calls (B,), and each step's log-probs and attention."""
    enc = model.encode(src, src_len)
    state, y = model.init_state(enc), torch.full((src.size(0),), BOS_ID)
    total, steps = torch.zeros(src.size(0)), []
    for t in range(tgt.size(1)):
        lp, state, attn = model.step(enc, state, y)
        steps.append((lp, attn))
        total += torch.where(t < tgt_len, lp.gather(1, tgt[:, t : t + 1]).squeeze(1), 0.0)
        y = tgt[:, t]
    return total, steps


def test_a_step_is_the_renormalised_mean_of_the_members_log_probs():
    models = members()
    ensemble = Ensemble(models).eval()
    src, src_len = padded(SRC)
    tgt, tgt_len = padded(TGT)
    _, ours = stepped(ensemble, src, src_len, tgt, tgt_len)
    theirs = [stepped(m, src, src_len, tgt, tgt_len)[1] for m in models]
    for t, (lp, attn) in enumerate(ours):
        mean = torch.stack([steps[t][0] for steps in theirs]).mean(0)  # (B, V)
        torch.testing.assert_close(lp, torch.log_softmax(mean, -1))
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3))  # a distribution
        torch.testing.assert_close(attn.sum(-1), torch.ones(3))  # attention rows sum to 1
        assert not torch.allclose(lp, theirs[0][t][0])  # not just the first model


def test_score_equals_the_sum_of_the_steps_along_the_same_targets():
    ensemble = Ensemble(members()).eval()
    src, src_len = padded(SRC)
    tgt, tgt_len = padded(TGT)
    seq_lp, token_lp = ensemble.score(src, src_len, tgt, tgt_len)
    assert torch.all(token_lp[2, 2:] == 0)  # padding contributes nothing
    torch.testing.assert_close(seq_lp, stepped(ensemble, src, src_len, tgt, tgt_len)[0])


def test_copies_of_one_model_decode_as_that_model():
    model = tiny_model()
    ensemble = Ensemble([model, tiny_model()]).eval()  # same seed: the same weights
    cfg = DecodeConfig(strategy="beam", beam_size=3, alpha=1.0, nbest=3)
    sources = [s[:-1] for s in SRC]  # search appends EOS itself
    alone = decode_nbest(model, sources, cfg, torch.device("cpu"))
    together = decode_nbest(ensemble, sources, cfg, torch.device("cpu"))
    for a, b in zip(alone, together, strict=True):
        assert a.token_lists() == b.token_lists()
        torch.testing.assert_close(a.logprob, b.logprob, atol=1e-5, rtol=1e-5)


def test_beam_search_over_an_ensemble_reports_what_the_scorer_gives_its_output():
    ensemble = Ensemble(members()).eval()
    cfg = DecodeConfig(strategy="beam", beam_size=4, alpha=1.0, max_len_a=0.0, max_len_b=8)
    scorer = Scorer.from_config(cfg)
    checked = 0
    # search appends EOS to each source (as to SentencePiece's ids); SRC's rows end in it
    found = decode_nbest(ensemble, [s[:-1] for s in SRC], cfg, torch.device("cpu"))
    for src_ids, result in zip(SRC, found, strict=True):
        # EOS included where produced; one cut at the length limit is scored as it stands
        hyp = result.tokens[0, : int(result.lengths[0])].tolist()
        src, src_len = padded([src_ids])
        tgt, tgt_len = padded([hyp])
        objective, logprob, _ = scorer.score(ensemble, src, src_len, tgt, tgt_len)
        torch.testing.assert_close(logprob[0], result.logprob[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(objective[0], result.score[0], atol=1e-5, rtol=1e-5)
        checked += 1
    assert checked == len(SRC)


def test_an_ensemble_needs_two_models():
    with pytest.raises(ValueError, match="at least 2 models"):
        Ensemble([tiny_model()])
