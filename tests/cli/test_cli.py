"""The console commands as a user runs them: exit codes, one-line errors, clean stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sacrebleu

from nmt.translator import Translator
from tests.helpers import files_overrides, run_cli, toy_pairs, train_toy_run, write_parallel


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A toy model trained through nmt-train itself (about 20 s)."""
    tmp = tmp_path_factory.mktemp("cli")
    run = train_toy_run(tmp, "train.max_updates=150", "train.valid_every=150")
    return run, toy_pairs(12)


def test_misspelt_config_key_fails_naming_the_key():
    proc = run_cli("train", "model.hiden_size=3", "--cfg", "job")
    assert proc.returncode != 0
    assert "hiden_size" in proc.stderr and "ModelConfig" in proc.stderr


def test_wrong_config_type_fails_naming_the_key():
    proc = run_cli("train", "model.hidden_size=big", "--cfg", "job")
    assert proc.returncode != 0 and "model.hidden_size" in proc.stderr


def test_invalid_choice_is_one_line_error_with_exit_2(tmp_path):
    proc = run_cli("train", "model.cell=transformer", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: model.cell='transformer' is not one of: gru, lstm, rnn"
    ]


def test_translate_keeps_one_line_per_input_line_on_stdout(trained_run):
    run, pairs = trained_run
    lines = [pairs[0][0], "", "   ", pairs[1][0]]
    proc = run_cli("translate", f"run={run}", stdin="".join(x + "\n" for x in lines))
    assert proc.returncode == 0, proc.stderr
    expected = Translator.load(run, device="cpu").translate_text(lines)
    assert expected[1:3] == ["", ""] and all(expected[::3])
    assert proc.stdout.split("\n")[:-1] == expected


def test_translate_files_and_evaluate_agree_with_sacrebleu(trained_run, tmp_path):
    run, pairs = trained_run
    src, ref = tmp_path / "in.xx", tmp_path / "ref.yy"
    src.write_text("".join(s + "\n" for s, _ in pairs))
    ref.write_text("".join(t + "\n" for _, t in pairs))
    hyp = tmp_path / "hyp.yy"
    proc = run_cli(
        "translate",
        f"run={run}",
        f"input={src}",
        f"output={hyp}",
        "checkpoint=last",
        "decode.batch_size=5",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("evaluate", f"hyp={hyp}", f"ref={ref}", f"json={tmp_path}/s.json")
    assert proc.returncode == 0, proc.stderr
    hyps, refs = hyp.read_text().splitlines(), ref.read_text().splitlines()
    expected = sacrebleu.corpus_bleu(hyps, [refs])
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["scores"]["bleu"]["score"] == pytest.approx(expected.score, abs=1e-4)
    assert report["scores"]["chrf"]["score"] == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-4
    )
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in proc.stdout
    assert "chrF2" in proc.stdout and "TER" in proc.stdout


def test_translate_without_run_directory_is_a_clear_error(tmp_path):
    proc = run_cli("translate", f"run={tmp_path}/nothing", stdin="hello\n")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path}/nothing: no such run directory"


@pytest.mark.parametrize(
    "command, extra",
    # (nmt-serve checks the port first, then run=, before loading: tests/serve/test_cli.py)
    [("translate", ""), ("analyze", ", 'data.test_src=x', 'data.test_ref=y'")],
)
def test_a_wrong_run_is_refused_before_torch_is_imported(command, extra, tmp_path):
    # torch and the model are loaded only once every run= is a run directory (a second or two)
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['nmt-{command}', 'run=[{tmp_path},{tmp_path}]'{extra}]\n"
        "try:\n"
        f"    runpy.run_module('nmt.cli.{command}', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 2, stop.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"error: {tmp_path}")  # no config.yaml: not a run


def test_evaluate_refuses_misaligned_and_empty_files(tmp_path):
    (tmp_path / "h").write_text("a\nb\n")
    (tmp_path / "r").write_text("a\n")
    (tmp_path / "e").write_text("")
    proc = run_cli("evaluate", f"hyp={tmp_path}/h", f"ref={tmp_path}/r")
    assert proc.returncode == 2 and "has 2 lines" in proc.stderr and "has 1" in proc.stderr
    proc = run_cli("evaluate", f"hyp={tmp_path}/e", f"ref={tmp_path}/r")
    assert proc.returncode == 2 and "empty" in proc.stderr


def test_training_on_misaligned_corpus_exits_2_naming_both_files(tmp_path):
    train = write_parallel(tmp_path / "data", "train", toy_pairs(4))
    (tmp_path / "data" / "train.yy").write_text("only one line\n")
    proc = run_cli(
        "train", *files_overrides(tmp_path / "data", train, train), f"hydra.run.dir={tmp_path}/run"
    )
    assert proc.returncode == 2
    assert "train.xx" in proc.stderr and "train.yy" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "given, spin",
    [({}, "0"), ({"GOMP_SPINCOUNT": "300000"}, "300000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None)],
)
def test_openmp_workers_sleep_at_once_unless_the_user_chose(monkeypatch, given, spin):
    """nmt-train and nmt-serve call it before torch loads libgomp."""
    from nmt.cli import openmp_waits

    for key in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    openmp_waits()
    assert os.environ.get("GOMP_SPINCOUNT") == spin
