"""nmt-analyze end to end on a toy run trained by nmt-train, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from nmt.analysis.analyze import read_pair
from nmt.errors import DataError
from tests.helpers import run_cli, toy_pairs, train_toy_run, write_parallel


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A toy model trained for a few updates (the analysis needs a model, not a good one)."""
    tmp = tmp_path_factory.mktemp("analyze")
    run = train_toy_run(tmp, "train.max_epochs=2", "train.valid_every=2")
    return run, write_parallel(tmp / "data", "test", toy_pairs(8, seed=5))


def test_analyze_writes_sentences_summary_and_a_self_contained_report(trained_run):
    run, test = trained_run
    proc = run_cli(
        "analyze",
        f"run={run}",
        f"data.test_src={test}.xx",
        f"data.test_ref={test}.yy",
        f"data.dev_src={test}.xx",
        f"data.dev_ref={test}.yy",
        "data.max_sentences=6",
        "decode.beam_size=3",
        "analysis.nbest=2",
        "analysis.examples=1",
        "analysis.sweep_beams=[1,2]",
        "analysis.sweep_alphas=[0,1]",
        "analysis.calibrate_alphas=[0,1]",
        "analysis.exact_sentences=2",
        "analysis.exact_nodes=50",
        "analysis.attention_lines=[2]",
        "threads=1",
        "progress=false",
    )
    assert proc.returncode == 0, proc.stderr
    (out,) = (run / "analysis").iterdir()  # the default: <run>/analysis/<timestamp>
    records = [json.loads(line) for line in (out / "sentences.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5, 6]
    for key in ("ref_logprob", "hyp_logprob", "ref_score", "hyp_score", "ref_len", "hyp_len"):
        assert all(isinstance(r[key], (int, float)) for r in records)
    assert all(len(r["nbest"]) <= 2 and r["ref_tokens"][-1] == "</s>" for r in records)
    assert [r["exact"] is not None for r in records] == [True, True] + [False] * 4
    summary = json.loads((out / "summary.json").read_text())
    classes = summary["classes"]
    assert sum(c["count"] for c in classes.values()) == 6
    assert sum(c["share"] for c in classes.values()) == pytest.approx(1.0)
    assert summary["nbest"] == 2 and all(len(v) <= 1 for v in summary["examples"].values())
    assert [(r["beam"], r["alpha"]) for r in summary["sweep"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert summary["exact"]["sentences"] == 2 and summary["exact"]["node_budget"] == 50
    assert summary["calibration"]["alpha"] in (0, 1)
    assert set(summary["timings"]) >= {"beam search + reference scoring", "sweep", "exact search"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # sweep, ŷ and forced y* of line 2
    assert "## Classes" in (out / "report.md").read_text()
    assert "search error" in proc.stdout and "report:" in proc.stdout


def test_an_ensemble_is_analysed_and_calibrated_as_one_model(trained_run, tmp_path):
    run, test = trained_run
    proc = run_cli(
        "analyze",
        f"run=[{run},{run}]",
        "checkpoint=[best,last]",
        f"data.test_src={test}.xx",
        f"data.test_ref={test}.yy",
        f"data.dev_src={test}.xx",
        f"data.dev_ref={test}.yy",
        "decode.beam_size=2",
        "analysis.sweep_beams=[]",
        "analysis.exact_sentences=0",
        "analysis.calibrate_alphas=[0,1]",
        "analysis.calibrate_word_rewards=[0,0.5]",
        "threads=1",
        "progress=false",
        f"out={tmp_path / 'out'}",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"] == [str(run), str(run)] and summary["checkpoint"] == ["best", "last"]
    assert len(summary["manifest"]["run"]["ensemble"]) == 2
    rows = summary["calibration"]["rows"]
    assert [(r["alpha"], r["word_reward"]) for r in rows] == [(0, 0), (0, 0.5), (1, 0), (1, 0.5)]
    assert "word reward" in (tmp_path / "out" / "report.md").read_text()


def test_a_missing_reference_is_a_one_line_error(trained_run, tmp_path):
    run, test = trained_run
    proc = run_cli(
        "analyze", f"run={run}", f"data.test_src={test}.xx", f"data.test_ref={tmp_path}/no.yy"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path}/no.yy: no such file; check the path and the working directory"
    ]


def test_unequal_line_counts_name_both_files_and_counts(tmp_path):
    src, short = tmp_path / "test.xx", tmp_path / "short.yy"
    src.write_text("a\nb\nc\n")
    short.write_text("one\ntwo\n")
    with pytest.raises(DataError) as err:
        read_pair(str(src), str(short))
    assert str(err.value) == (
        f"{src} has 3 lines but {short} has 2; source and reference must be aligned line by line"
    )
