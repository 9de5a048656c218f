"""nmt-translate with beam search: n-best lists, their format, and Hydra multirun sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nmt.config import DecodeConfig
from nmt.translator import Translator
from tests.helpers import run_cli, toy_pairs, train_toy_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A toy model trained by nmt-train, validating with beam search (a few seconds)."""
    tmp = tmp_path_factory.mktemp("nbest")
    run = train_toy_run(
        tmp, "train.max_epochs=20", "train.valid_every=20", "decode=beam", "decode.beam_size=3"
    )
    return run, toy_pairs(12)


def test_training_validates_with_the_configured_beam(trained_run):
    run, _ = trained_run
    assert OmegaConf.load(run / "config.yaml").decode.strategy == "beam"
    assert list((run / "valid").glob("update-*.txt"))


def test_nbest_lists_print_id_hypothesis_score_logprob_best_first(trained_run):
    run, pairs = trained_run
    lines = [pairs[0][0], "", pairs[1][0]]
    beam = ["decode=beam", "decode.beam_size=4", "decode.alpha=1.0"]
    proc = run_cli(
        "translate", f"run={run}", *beam, "decode.nbest=3", stdin="".join(x + "\n" for x in lines)
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" ||| ") for line in proc.stdout.splitlines()]
    assert [r[0] for r in rows] == ["0"] * 3 + ["2"] * 3  # blank line 1: no hypotheses
    assert all(len(r) == 4 for r in rows)
    translator = Translator.load(run, device="cpu")
    decode = DecodeConfig(strategy="beam", beam_size=4, alpha=1.0, nbest=3)
    expected = [t.nbest for t in translator.translate(lines, decode=decode)]
    for r, h in zip(rows, expected[0] + expected[2], strict=True):
        assert r[1] == h.text
        assert float(r[2]) == pytest.approx(h.score, abs=1e-5)
        assert float(r[3]) == pytest.approx(h.logprob, abs=1e-5)
    for sent in (rows[:3], rows[3:]):
        scores = [float(r[2]) for r in sent]
        assert scores == sorted(scores, reverse=True)
    assert all(len({tuple(h.ids) for h in hyps}) == 3 for hyps in expected[::2])
    # the first of each list is what plain translation gives
    assert translator.translate_text(lines, decode=decode) == [rows[0][1], "", rows[3][1]]


def test_nbest_above_beam_size_is_a_one_line_error(trained_run):
    run, _ = trained_run
    proc = run_cli("translate", f"run={run}", "decode=beam", "decode.beam_size=2", "decode.nbest=5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: decode.nbest=5 is more than decode.beam_size=2: a beam of K returns at most "
        "K hypotheses; raise decode.beam_size or lower decode.nbest"
    ]


def test_multirun_sweep_writes_one_output_per_job(trained_run, tmp_path):
    run, pairs = trained_run
    src = tmp_path / "in.xx"
    src.write_text("".join(s + "\n" for s, _ in pairs))
    proc = run_cli(
        "translate",
        "-m",
        f"run={run}",
        f"input={src}",
        "decode=beam",
        "decode.beam_size=1,2",
        "decode.alpha=0,1",
        "output=hyp.b${decode.beam_size}.a${decode.alpha}.txt",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    names = ["hyp.b1.a0.0.txt", "hyp.b1.a1.0.txt", "hyp.b2.a0.0.txt", "hyp.b2.a1.0.txt"]
    # nothing else in the working directory but Hydra's sweep record under multirun/
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "in.xx", "multirun"])
    assert [p.name for p in (tmp_path / "multirun").iterdir()] == ["translate"]
    outputs = {n: (tmp_path / n).read_text().splitlines() for n in names}
    assert all(len(o) == len(pairs) for o in outputs.values())
    greedy = Translator.load(run, device="cpu").translate_text(
        [s for s, _ in pairs], decode=DecodeConfig()
    )
    assert outputs["hyp.b1.a0.0.txt"] == greedy


def test_multirun_to_standard_output_is_refused(trained_run, tmp_path):
    run, _ = trained_run
    proc = run_cli(
        "translate", "-m", f"run={run}", "decode=beam", "decode.beam_size=1,2", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "multirun" in proc.stderr and "output=" in proc.stderr
