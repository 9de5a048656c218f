"""report.json keeps its keys, in order: the typed records write what the dicts wrote."""

from __future__ import annotations

import json

import numpy as np

from nmt.evaluate.plots import AttentionMap
from nmt.evaluate.report import build_report, write_report

# taken from report.json as nmt-evaluate wrote it before the records were typed
REPORT = [
    "format",
    "hyp",
    "ref",
    "src",
    "sentences",
    "scores",
    "settings",
    "systems",
    "significance",
    "training",
    "attention",
    "manifest",
]
SCORE = ["name", "score", "text", "signature", "ci"]
BLEU_SCORE = [*SCORE, "length"]
CI = ["mean", "half_width", "low", "high", "n_bootstrap", "level"]
LENGTH = ["hyp_len", "ref_len", "ratio", "bp"]
SETTINGS = [
    "metrics",
    "tokenize",
    "lowercase",
    "chrf_word_order",
    "confidence",
    "n_bootstrap",
    "significance",
    "n_ar",
    "seed",
    "length_buckets",
    "bucket_by",
    "worst",
]
SYSTEM = ["name", "path", "scores", "length", "buckets", "worst", "segments"]
BUCKET = ["label", "min_words", "max_words", "sentences", "scores", "length_ratio"]
SEGMENT = ["line", "src", "ref", "hyp", "scores"]
PAIRED = ["test", "name", "n", "seed", "alpha", "signatures", "systems"]
PAIRED_ROW = ["system", "baseline", "identical_to_baseline", "bleu", "chrf", "ter"]
PAIRED_CELL = ["score", "delta", "p_value", "significant", "better", "mean", "ci"]
TRAINING = ["run", "curves", "updates", "train_rows", "validations", "last_train", "best_valid"]
ATTENTION = ["line", "source", "output", "note", "src_tokens", "tgt_tokens", "image"]
MANIFEST = ["created", "config", "git", "versions", "data", "signatures", "run"]
GIT = ["commit", "dirty"]


def test_report_json_keeps_every_key_in_order(evaluate_config, test_set, fake_run, tmp_path):
    cfg = evaluate_config(
        f"systems=[{test_set['better']}]",
        f"src={test_set['src']}",
        "confidence=true",
        "significance=both",
        f"run={fake_run}",
        "length_buckets=[2,100]",
        "n_bootstrap=50",
        "n_ar=50",
    )
    amap = AttentionMap(2, np.full((2, 3), 1 / 3), ["▁a", "b", "</s>"], ["▁x", "</s>"], "a b", "x")
    report = build_report(cfg, [amap])
    written = write_report(report, tmp_path)
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert data == report.data.to_json()
    assert list(data) == REPORT
    assert list(data["scores"]) == ["bleu", "chrf", "ter"]
    assert list(data["scores"]["bleu"]) == BLEU_SCORE
    assert list(data["scores"]["chrf"]) == list(data["scores"]["ter"]) == SCORE
    assert list(data["scores"]["bleu"]["ci"]) == CI
    assert list(data["scores"]["bleu"]["length"]) == LENGTH
    assert list(data["settings"]) == SETTINGS
    system = data["systems"][1]
    assert list(system) == SYSTEM and list(system["length"]) == LENGTH
    assert list(system["scores"]["ter"]) == SCORE
    full, empty = system["buckets"][1], system["buckets"][2]  # 3–100 words, then 101+
    assert list(full) == list(empty) == BUCKET and empty["scores"] == {}
    assert list(system["segments"][0]) == SEGMENT
    assert list(data["significance"]) == ["bs", "ar"]
    for test in data["significance"].values():
        assert list(test) == PAIRED
        assert all(list(row) == PAIRED_ROW for row in test["systems"])
        assert list(test["systems"][1]["bleu"]) == PAIRED_CELL
    assert list(data["training"]) == TRAINING
    assert [list(a) for a in data["attention"]] == [ATTENTION]
    assert list(data["manifest"]) == MANIFEST and list(data["manifest"]["git"]) == GIT
