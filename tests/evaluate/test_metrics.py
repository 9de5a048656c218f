"""Scores, confidence intervals and paired tests agree with sacrebleu called directly."""

from __future__ import annotations

import re

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

from nmt.errors import ConfigError
from nmt.evaluate.metrics import (
    MetricSettings,
    corpus_scores,
    paired_test,
    sentence_scores,
)


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    "settings",
    [
        MetricSettings(),
        MetricSettings(tokenize="intl", lowercase=True),
        MetricSettings(tokenize="char", chrf_word_order=2),
        MetricSettings(tokenize="zh"),
    ],
)
def test_corpus_scores_agree_with_sacrebleu_on_the_same_files(test_set, settings):
    hyps, refs = lines(test_set["base"]), lines(test_set["ref"])
    ours = corpus_scores(hyps, refs, settings)
    bleu = sacrebleu.corpus_bleu(
        hyps, [refs], tokenize=settings.tokenize, lowercase=settings.lowercase
    )
    chrf = CHRF(word_order=settings.chrf_word_order, lowercase=settings.lowercase).corpus_score(
        hyps, [refs]
    )  # sacrebleu.corpus_chrf has no lowercase argument
    ter = sacrebleu.corpus_ter(hyps, [refs], case_sensitive=not settings.lowercase)
    assert ours["bleu"].score == pytest.approx(bleu.score, abs=1e-4)
    assert ours["chrf"].score == pytest.approx(chrf.score, abs=1e-4)
    assert ours["ter"].score == pytest.approx(ter.score, abs=1e-4)
    assert f"tok:{settings.tokenize}" in ours["bleu"].signature
    assert ("case:lc" if settings.lowercase else "case:mixed") in ours["bleu"].signature
    assert ours["chrf"].name == ("chrF2++" if settings.chrf_word_order == 2 else "chrF2")
    assert ours["bleu"].length.ratio == pytest.approx(bleu.ratio, abs=1e-4)


def test_confidence_intervals_contain_the_point_estimate_and_match_sacrebleu(test_set):
    hyps, refs = lines(test_set["base"]), lines(test_set["ref"])
    ours = corpus_scores(hyps, refs, MetricSettings(), n_bootstrap=200, seed=12345)
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER(case_sensitive=True))):
        ci = ours[name].ci
        assert ci.low < ours[name].score < ci.high
        assert ci.high - ci.low == pytest.approx(2 * ci.half_width, abs=2e-4)
        assert ci.n_bootstrap == 200 and "bs:200|seed:12345" in ours[name].signature
        # sacrebleu's own text of the same resampling (SACREBLEU_SEED defaults to 12345)
        direct = metric.corpus_score(hyps, [refs], n_bootstrap=200)
        assert f"μ = {ci.mean:.2f} ± {ci.half_width:.2f}" in str(direct)


def test_confidence_intervals_follow_the_seed(test_set):
    hyps, refs = lines(test_set["base"]), lines(test_set["ref"])
    settings = MetricSettings(metrics=("bleu",))
    a = corpus_scores(hyps, refs, settings, n_bootstrap=200, seed=1)["bleu"].ci
    b = corpus_scores(hyps, refs, settings, n_bootstrap=200, seed=1)["bleu"].ci
    c = corpus_scores(hyps, refs, settings, n_bootstrap=200, seed=2)["bleu"].ci
    assert a == b and a != c


def test_sentence_scores_agree_with_sacrebleu_sentence_level(test_set):
    hyps, refs = lines(test_set["base"])[:20], lines(test_set["ref"])[:20]
    ours = sentence_scores(hyps, refs, MetricSettings())
    for i, (h, r) in enumerate(zip(hyps, refs, strict=True)):
        assert ours["bleu"][i] == pytest.approx(sacrebleu.sentence_bleu(h, [r]).score, abs=1e-4)
        assert ours["chrf"][i] == pytest.approx(sacrebleu.sentence_chrf(h, [r]).score, abs=1e-4)
        assert ours["ter"][i] == pytest.approx(
            sacrebleu.sentence_ter(h, [r], case_sensitive=True).score, abs=1e-4
        )


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_system_compared_with_itself_is_not_significant(test_set, test):
    base, copy, refs = lines(test_set["base"]), lines(test_set["copy"]), lines(test_set["ref"])
    result = paired_test([("base", base), ("copy", copy)], refs, MetricSettings(), test, 200, 7)
    row = result.systems[1]
    assert row.identical_to_baseline
    for metric in ("bleu", "chrf", "ter"):
        assert row.cells[metric].delta == 0 and row.cells[metric].p_value == 1.0
        assert row.cells[metric].significant is False


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_clearly_better_system_is_significant_with_sacrebleus_p_value(test_set, test):
    base, better, refs = (lines(test_set[k]) for k in ("base", "better", "ref"))
    result = paired_test(
        [("base", base), ("better", better)], refs, MetricSettings(), test, 200, 12345
    )
    row = result.systems[1]
    assert result.n == 200 and f"{test}:200" in result.signatures["bleu"]
    for metric in ("bleu", "chrf", "ter"):
        assert row.cells[metric].significant and row.cells[metric].better
    # the same test through sacrebleu's PairedTest, as its --paired-bs/--paired-ar run it
    metrics = {"BLEU": BLEU(), "chrF": CHRF(), "TER": TER(case_sensitive=True)}
    _, table = PairedTest(
        [("base", base), ("better", better)], metrics, [refs], test_type=test, n_samples=200
    )()
    for ours, theirs in zip(("bleu", "chrf", "ter"), ("BLEU", "chrF2", "TER"), strict=True):
        assert row.cells[ours].p_value == pytest.approx(table[theirs][1].p_value, abs=1e-6)
        assert row.cells[ours].score == pytest.approx(table[theirs][1].score, abs=1e-4)


def test_settings_refuse_unknown_metric_tokeniser_and_seed():
    with pytest.raises(ConfigError, match="metrics=.*bleurt.*choose one or more of bleu"):
        MetricSettings(metrics=("bleu", "bleurt"))
    with pytest.raises(ConfigError, match="tokenize='moses' is not a sacrebleu tokeniser.*13a"):
        MetricSettings(tokenize="moses")
    with pytest.raises(ConfigError, match="seed=0 must be greater than 0"):
        corpus_scores(["a"], ["a"], MetricSettings(), n_bootstrap=10, seed=0)


def test_uninstalled_tokeniser_is_one_line_error():
    try:
        import MeCab  # noqa: F401

        pytest.skip("MeCab is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError) as err:
        corpus_scores(["a b"], ["a b"], MetricSettings(tokenize="ja-mecab"))
    message = str(err.value)
    assert "\n" not in message and re.search(r"pip install sacrebleu\[ja\]", message)
