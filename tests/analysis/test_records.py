"""sentences.jsonl and summary.json keep their keys, in order: the typed records write what
the dicts wrote."""

from __future__ import annotations

import json

from nmt.analysis.analyze import analyze
from nmt.analysis.report import write
from tests.analysis.conftest import SEARCH_ERROR, BigramModel, id_vocabs
from tests.helpers import compose_config

# taken from the files nmt-analyze wrote before the records were typed
RECORD = [
    "line",
    "class",
    "tie",
    "src",
    "ref",
    "hyp",
    "ref_logprob",
    "hyp_logprob",
    "ref_score",
    "hyp_score",
    "ref_len",
    "hyp_len",
    "limit",
    "ref_over_limit",
    "bleu",
    "chrf",
    "ref_tokens",
    "hyp_tokens",
    "ref_ranks",
    "fell_off_step",
    "fell_off_reason",
    "ref_nbest_rank",
    "oracle_bleu",
    "oracle_rank",
    "oracle_hyp",
    "nbest",
    "exact",
]
NBEST = ["text", "logprob", "score", "bleu"]
EXACT = [
    "finished",
    "mode_text",
    "mode_tokens",
    "mode_logprob",
    "mode_empty",
    "beam_is_mode",
    "mode_in_nbest",
    "reference_is_mode",
    "nodes",
    "seconds",
]
SUMMARY = [
    "format",
    "run",
    "checkpoint",
    "test_src",
    "test_ref",
    "sentences",
    "decode",
    "nbest",
    "scores",
    "classes",
    "ties",
    "tie_tolerance",
    "ref_over_limit",
    "fallout",
    "oracle",
    "examples",
    "sweep",
    "exact",
    "calibration",
    "attention_lines",
    "timings",
    "manifest",
]
DECODE = [
    "strategy",
    "beam_size",
    "length_penalty",
    "alpha",
    "word_reward",
    "nbest",
    "min_len",
    "stop",
    "max_len_a",
    "max_len_b",
    "batch_size",
    "buffer_size",
    "precision",
    "quantize",
]
CLASS = ["label", "count", "share", "bleu", "action", "ties"]
FALLOUT = ["sentences", "reasons", "mean_pruned_step", "pruned_at_step_1"]
ORACLE = ["bleu", "better_in_nbest", "mean_rank"]
EXACT_SUMMARY = [
    "sentences",
    "node_budget",
    "time_budget_s",
    "finished",
    "finished_rate",
    "beam_is_mode_rate",
    "mode_in_nbest_rate",
    "mode_empty_rate",
    "reference_is_mode_rate",
    "mean_nodes",
]
SWEEP = [
    "beam",
    "alpha",
    "word_reward",
    "bleu",
    "chrf",
    "length_ratio",
    "mean_logprob",
    "empty_rate",
    "short_rate",
    "search_error_rate",
    "shares",
    "seconds",
]
CALIBRATION = ["dev_src", "alpha", "word_reward", "bleu", "rows", "best"]
MANIFEST = ["created", "config", "git", "versions", "data", "signatures", "run"]


def test_sentences_and_summary_keep_every_key_in_order(tmp_path):
    src, ref = tmp_path / "test.src", tmp_path / "test.ref"
    src.write_text("4 5\n4\n5 6\n")
    ref.write_text("5\n4\n4 6\n")
    cfg = compose_config(
        "analyze",
        [
            "run=RUN",
            f"data.test_src={src}",
            f"data.test_ref={ref}",
            f"data.dev_src={src}",
            f"data.dev_ref={ref}",
            "decode.beam_size=2",
            "analysis.sweep_beams=[1,2]",
            "analysis.sweep_alphas=[0,1]",
            "analysis.calibrate_alphas=[0,1]",
            "analysis.exact_sentences=2",
            "progress=false",
        ],
    )
    result = analyze(BigramModel(SEARCH_ERROR), id_vocabs(), cfg)
    written = write(result, tmp_path / "out")
    records = [json.loads(line) for line in written["jsonl"].read_text().splitlines()]
    summary = json.loads(written["summary"].read_text())
    assert records == [r.to_json() for r in result.records]
    assert summary == result.summary.to_json()
    assert all(list(r) == RECORD for r in records)
    assert all(list(h) == NBEST for r in records for h in r["nbest"])
    assert [list(r["exact"]) for r in records[:2]] == [EXACT, EXACT] and records[2]["exact"] is None
    assert list(summary) == SUMMARY
    assert list(summary["decode"]) == DECODE
    assert list(summary["scores"]) == ["bleu", "chrf"]
    assert all(list(s) == ["score", "signature"] for s in summary["scores"].values())
    assert list(summary["classes"]) == ["match", "search", "objective", "model"]
    assert all(list(c) == CLASS for c in summary["classes"].values())
    assert list(summary["fallout"]) == ["all", "search_errors"]
    assert all(list(f) == FALLOUT for f in summary["fallout"].values())
    assert list(summary["oracle"]) == ORACLE
    assert list(summary["examples"]) == ["match", "search", "objective", "model"]
    assert all(list(row) == SWEEP for row in summary["sweep"])
    assert list(summary["exact"]) == EXACT_SUMMARY
    assert list(summary["calibration"]) == CALIBRATION
    assert list(summary["calibration"]["best"]) == SWEEP
    assert list(summary["manifest"]) == MANIFEST
