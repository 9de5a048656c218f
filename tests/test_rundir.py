"""The run directory: where each file is, and errors that name the path and the fix."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch

from nmt.errors import RunDirError
from nmt.rundir import RunDir
from nmt.train.checkpoint import CheckpointDir, save_checkpoint


def a_run(tmp_path, config: str = "seed: 7\ndecode:\n  beam_size: 4\n") -> RunDir:
    root = tmp_path / "run"
    root.mkdir()
    (root / "config.yaml").write_text(config)
    return RunDir(root)


def test_the_layout_names_every_file_nmt_train_writes(tmp_path):
    run = RunDir(tmp_path / "not-yet")  # naming files needs no directory: the trainer makes it
    root = tmp_path / "not-yet"
    assert run.config_path == root / "config.yaml"
    assert run.spm_models == (root / "spm.model", root / "spm.src.model", root / "spm.tgt.model")
    assert (run.spm_joint, run.spm_src, run.spm_tgt) == run.spm_models
    assert run.checkpoints == root / "checkpoints"
    assert (run.last, run.best) == (root / "checkpoints/last.pt", root / "checkpoints/best.pt")
    assert run.metrics_path == root / "metrics.csv"
    assert run.valid_output(300) == root / "valid" / "update-0000300.txt"
    assert run.analysis == root / "analysis"
    assert not root.exists()


def test_a_missing_path_a_file_and_a_folder_without_config_are_refused(tmp_path):
    with pytest.raises(RunDirError, match=f"^{re.escape(str(tmp_path))}/nothing: no such run"):
        RunDir.open(tmp_path / "nothing")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match="afile is a file; run= takes the directory nmt-train"):
        RunDir.open(tmp_path / "afile")
    message = f"{tmp_path}: no config.yaml; is this a run directory written by nmt-train?"
    with pytest.raises(RunDirError, match=f"^{re.escape(message)}$"):
        RunDir.open(tmp_path)
    with pytest.raises(RunDirError, match=re.escape(message)):
        RunDir(tmp_path).config  # noqa: B018 (reading without open says the same)


def test_config_is_typed_by_the_training_schema(tmp_path):
    config = RunDir.open(a_run(tmp_path).root).config
    assert config.seed == 7 and config.decode.beam_size == 4
    assert config.decode.strategy == "greedy"  # what the file leaves out has the default


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("model: [32\n", "while parsing a flow sequence"),
        ("- a list\n", "expected a mapping of keys, found a ListConfig"),
        ("hiden: 3\n", "Key 'hiden' not in 'TrainRunConfig'"),
        ("seed: many\n", "Value 'many' of type 'str' could not be converted to Integer"),
    ],
)
def test_a_broken_config_names_the_file_the_problem_and_the_fix(tmp_path, text, detail):
    run = a_run(tmp_path, text)
    expected = (
        f"{run.config_path}: not a config written by nmt-train ({detail}); restore it from "
        "the run's .hydra/*/config.yaml or train again"
    )
    with pytest.raises(RunDirError, match=f"^{re.escape(expected)}$"):
        run.config  # noqa: B018


def test_best_and_last_resolve_in_checkpoints_and_a_path_is_taken_as_given(tmp_path):
    run = a_run(tmp_path)
    folder = CheckpointDir(run.checkpoints)
    folder.save({"model": {"w": torch.zeros(1)}}, update=100, best=True, keep_best_updates=[])
    assert run.checkpoint("best") == run.best == folder.best
    assert run.checkpoint("last") == run.last == folder.last
    assert run.checkpoint("elsewhere/avg.pt").as_posix() == "elsewhere/avg.pt"


@pytest.mark.parametrize("which", ["best", "last"])
def test_a_missing_best_or_last_says_why_and_what_to_pass(tmp_path, which):
    run = a_run(tmp_path)
    expected = (
        f"{run.checkpoints}/{which}.pt: not found; training may not have reached its first "
        "validation (see train.valid_every), or pass checkpoint=PATH"
    )
    with pytest.raises(RunDirError, match=f"^{re.escape(expected)}$"):
        run.checkpoint(which)


def test_metrics_are_read_from_metrics_csv_and_its_absence_is_explained(tmp_path):
    run = a_run(tmp_path)
    with pytest.raises(RunDirError, match=r"metrics\.csv: not found; nmt-train writes it"):
        run.metrics()
    run.metrics_path.write_text("update,epoch,split,loss,ppl,bleu\n100,1,valid,2.5,12.2,31.0\n")
    [row] = run.metrics()
    assert row["update"] == 100 and row["split"] == "valid" and row["bleu"] == 31.0
    assert row["lr"] is None  # a column the file lacks


def test_the_manifest_hashes_the_spm_models_present_and_the_checkpoint(tmp_path):
    run = a_run(tmp_path)
    run.spm_joint.write_bytes(b"a model")
    save_checkpoint({"model": {}}, run.best)
    manifest = run.manifest(run.checkpoint("best"))
    assert manifest["path"] == str(run.root)
    assert manifest["spm_models"] == {str(run.spm_joint): hashlib.sha256(b"a model").hexdigest()}
    assert list(manifest["checkpoint"]) == [str(run.best)]
    assert manifest["config"]["seed"] == 7 and manifest["decode"]["beam_size"] == 4
    assert run.manifest()["checkpoint"] == {}
