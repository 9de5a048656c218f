"""Files of a run truncated or edited by hand: the SentencePiece model and config.yaml are
refused naming the file and what to do, or (what nmt-train rewrites: config.yaml, metrics.csv)
repaired on resume with a warning; the checkpoints are never touched."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from nmt.errors import DataError, RunDirError
from nmt.rundir import RunDir
from nmt.train.trainer import Trainer
from tests.train.test_resume import config, metrics

UPDATES = 6  # test_resume's BASE, shortened: saves at 3 and 6, validates at 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished toy run; the tests change copies of it. Its data stays where it was."""
    tmp = tmp_path_factory.mktemp("trained")
    Trainer(config(tmp, f"train.max_updates={UPDATES}"), tmp / "run").fit()
    return tmp


def copy_of(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    return run


def resume(trained: Path, run: Path, *overrides: str) -> Trainer:
    """Open the run for resuming, with the data it was trained on."""
    return Trainer(config(trained, f"train.max_updates={UPDATES}", "resume=true", *overrides), run)


def checkpoints(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "checkpoints").iterdir())}


def test_a_truncated_sentencepiece_model_is_refused_naming_it(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    spm = run / "spm.model"
    spm.write_bytes(spm.read_bytes()[: spm.stat().st_size // 2])
    before = checkpoints(run)
    with pytest.raises(DataError) as err:
        resume(trained, run)
    assert str(err.value) == (
        f"{spm}: not a valid SentencePiece model (INTERNAL: could not parse ModelProto from "
        f"{spm}); it may be truncated: restore the run's own copy (its checkpoints work only "
        "with it)"
    )
    assert checkpoints(run) == before


def test_a_sentencepiece_model_edited_by_hand_is_refused_naming_it(trained, tmp_path):
    """A model that still loads but is not the one the run was trained with would shift
    every token id: the checkpoint records the model's sha256, and resume compares."""
    run = copy_of(trained, tmp_path)
    spm = run / "spm.model"
    data = spm.read_bytes()
    at = data.index(b"ahpla")  # a piece of the toy vocabulary, renamed
    spm.write_bytes(data[:at] + b"ahplX" + data[at + 5 :])
    with pytest.raises(RunDirError) as err:
        resume(trained, run)
    message = str(err.value)
    assert message.startswith(
        f"{spm}: not the SentencePiece model {run}/checkpoints/last.pt was trained with (sha256 "
    )
    assert message.endswith(
        "…): it was edited or replaced; restore the run's own (the model works only with it), "
        "or train a new run"
    )


def test_config_yaml_truncated_is_refused_by_readers_and_rewritten_on_resume(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    path = run / "config.yaml"
    whole = path.read_text()
    cut = whole[: whole.index("hidden_size:") + len("hidden_size: 3")]  # was 32
    path.write_text(cut)
    with pytest.raises(RunDirError) as err:
        RunDir.open(run).config  # noqa: B018 (what nmt-translate, -evaluate, -analyze read)
    assert str(err.value) == (
        f"{path}: ends mid-line ('hidden_size: 3'), so it looks truncated; restore it from "
        "the run's .hydra/*/config.yaml (or, had you edited it, end it with a newline)"
    )
    # nmt-train reads the run's settings from its checkpoint, and writes config.yaml anew
    trainer = resume(trained, run)
    assert trainer.progress.update == UPDATES
    assert path.read_text() == whole.replace("resume: false", "resume: true")
    assert RunDir.open(run).config.model.hidden_size == 32


def test_config_yaml_edited_by_hand_is_rewritten_on_resume(trained, tmp_path):
    """Training never reads config.yaml (the checkpoint holds the run's settings, and those
    given on the command line are compared with them): it is written anew."""
    run = copy_of(trained, tmp_path)
    path = run / "config.yaml"
    whole = path.read_text()
    path.write_text(whole.replace("hidden_size: 32", "hidden_size: 48", 1))
    resume(trained, run)
    assert path.read_text() == whole.replace("resume: false", "resume: true")


def test_metrics_csv_cut_and_ahead_of_the_checkpoint_is_repaired_with_warnings(
    trained, tmp_path, caplog
):
    run = copy_of(trained, tmp_path)
    path = run / "metrics.csv"
    text = path.read_text()
    path.write_text(text + "7,1,train,0.5,1.6,,0.01,10,1\n8,1,train,0.4,1.5,,0.01,10,1\n9,1,tr")
    with caplog.at_level(logging.WARNING, logger="nmt.train.state"):
        resume(trained, run)
    assert path.read_text() == text
    assert caplog.messages == [
        f"{path}: dropped its last line, cut off by the stop ('9,1,tr')",
        f"{path}: dropped 2 row(s) of updates 7-8, written after the checkpoint (update 6) by "
        "the run that stopped; training repeats them",
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda text: text.replace("update,", "updat,", 1),
            "{path}: not a metrics.csv written by nmt-train (no column update); restore its "
            "first line, or move the file aside",
        ),
        (
            lambda text: text.replace("\n3,", "\nthree,", 1),
            "{path}, line 4: update='three' is not a number; correct or delete that line",
        ),
    ],
    ids=["header", "row"],
)
def test_metrics_csv_edited_into_nonsense_is_refused_naming_the_line(
    trained, tmp_path, edit, message
):
    """Repairing it would drop rows the user may want: refused, the file left as it is."""
    run = copy_of(trained, tmp_path)
    path = run / "metrics.csv"
    path.write_text(edit(path.read_text()))
    edited = path.read_text()
    with pytest.raises(RunDirError) as err:
        resume(trained, run)
    assert str(err.value) == message.format(path=path)
    assert path.read_text() == edited


def test_metrics_csv_deleted_is_started_again_with_a_warning(trained, tmp_path, caplog):
    run = copy_of(trained, tmp_path)
    (run / "metrics.csv").unlink()
    with caplog.at_level(logging.WARNING, logger="nmt.train.state"):
        trainer = resume(trained, run, f"train.max_updates={UPDATES + 2}")
    assert caplog.messages == [
        f"{run / 'metrics.csv'}: missing; started it again (the rows up to update 6 are lost)"
    ]
    trainer.fit()
    assert [int(row[0]) for row in metrics(run)] == [7, 8, 8]  # 2 updates, a validation
