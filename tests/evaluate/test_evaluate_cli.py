"""nmt-evaluate as a user runs it: the plain score lines, the full report, one-line errors."""

from __future__ import annotations

import json

from sacrebleu.metrics import BLEU, CHRF, TER

from tests.evaluate.test_report import parse
from tests.helpers import run_cli


def test_plain_output_is_sacrebleus_lines_with_signatures(test_set):
    proc = run_cli("evaluate", f"hyp={test_set['base']}", f"ref={test_set['ref']}")
    assert proc.returncode == 0, proc.stderr
    hyps = test_set["base"].read_text().splitlines()
    refs = test_set["ref"].read_text().splitlines()
    expected = []
    for metric in (BLEU(), CHRF(), TER(case_sensitive=True)):
        score = metric.corpus_score(hyps, [refs])
        expected += [str(score), f"  signature: {metric.get_signature()}"]
    assert proc.stdout.splitlines() == expected


def test_full_report_with_two_systems_run_and_attention(test_set, fake_run, tmp_path):
    out = tmp_path / "report"
    proc = run_cli(
        "evaluate",
        f"hyp={test_set['base']}",
        f"systems=[{test_set['better']}]",
        f"ref={test_set['ref']}",
        f"src={test_set['src']}",
        "metrics=[bleu,chrf]",
        "tokenize=intl",
        "lowercase=true",
        "chrf_word_order=2",
        "confidence=true",
        "significance=both",
        "n_bootstrap=200",
        "n_ar=200",
        "seed=3",
        f"run={fake_run}",
        "checkpoint=best",
        "attention_lines=[1,3]",
        f"report_dir={out}",
        f"json={tmp_path}/scores.json",
    )
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out}/report.html" in proc.stdout
    assert "tok:intl" in proc.stdout and "case:lc" in proc.stdout and "chrF2++" in proc.stdout
    assert "paired bootstrap resampling" in proc.stdout
    page = parse((out / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 3  # training curves and two attention maps, embedded
    data = json.loads((tmp_path / "scores.json").read_text())
    assert data == json.loads((out / "report.json").read_text())
    assert [a["line"] for a in data["attention"]] == [1, 3]
    assert data["attention"][1]["image"] == "attention-line3.png"
    assert data["settings"]["seed"] == 3
    assert "seed:3" in data["scores"]["bleu"]["signature"]
    assert data["manifest"]["run"]["checkpoint"]


def test_attention_line_outside_the_source_is_a_one_line_error(test_set, fake_run, tmp_path):
    # empty and misaligned files: tests/cli/test_cli.py and test_report.py (in-process)
    proc = run_cli(
        "evaluate",
        f"hyp={test_set['base']}",
        f"ref={test_set['ref']}",
        f"src={test_set['src']}",
        f"run={fake_run}",
        f"report_dir={tmp_path}/r",
        "attention_lines=[2,151]",
    )
    assert proc.returncode == 2 and not (tmp_path / "r").exists()
    assert proc.stderr.strip().splitlines() == [
        f"error: attention_lines=[2, 151]: line 151 is not in {test_set['src']} (lines 1 to "
        "150); give 1-based line numbers, as the report's sentence table shows"
    ]
