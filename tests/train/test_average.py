"""Checkpoint averaging (nmt-average): which checkpoints, their exact mean, one model only,
and an output that translates and never replaces a checkpoint of the run."""

from __future__ import annotations

import errno
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from nmt.errors import ConfigError, DiskFullError, RunDirError
from nmt.rundir import RunDir
from nmt.train import checkpoint as ckpt
from nmt.train.average import average_run, average_states
from nmt.train.checkpoint import CheckpointDir, load_checkpoint, save_checkpoint
from nmt.train.state import Progress, resume_checkpoint
from tests.helpers import compose_config, files_overrides, run_cli, toy_pairs, write_parallel

# (update, valid BLEU, valid perplexity) of each save: the best BLEU and the best perplexity
# are other updates, so a test sees which metric chose
VALIDATIONS = [
    (100, 10.0, 3.0),
    (200, 30.0, 9.0),
    (300, 20.0, 4.0),
    (400, 25.0, 8.0),
    (500, 5.0, 5.0),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """config.yaml (small model) and spm.model of a run, without checkpoints."""
    from nmt.data.tokenizer import Vocabularies

    tmp = tmp_path_factory.mktemp("average")
    pairs = toy_pairs(60)
    train = write_parallel(tmp / "data", "train", pairs)
    cfg = compose_config("train", files_overrides(tmp / "data", train, train))
    run = tmp / "run"
    Vocabularies.train([s for s, _ in pairs], [t for _, t in pairs], run, cfg.data)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return run


def make_run(template, tmp_path, keep_last=3, keep_best=3, metric="bleu", tgt_extra=0):
    """A copy of template trained in name only: a differently seeded model saved at each of
    VALIDATIONS as nmt-train saves it (CheckpointDir, Progress); → {update: model state}."""
    from nmt.data.tokenizer import Vocabularies
    from nmt.model import Seq2Seq

    run = tmp_path / "run"
    shutil.copytree(template, run)
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.train.keep_last, cfg.train.keep_best, cfg.train.early_stop_metric = (
        keep_last,
        keep_best,
        metric,
    )
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    vocabs = Vocabularies.load(run)
    folder, progress, states = (
        CheckpointDir(run / "checkpoints", keep_last, keep_best),
        Progress(),
        {},
    )
    for update, bleu, ppl in VALIDATIONS:
        torch.manual_seed(update)
        model = Seq2Seq.build(
            cfg.model, cfg.attention, vocabs.src.vocab_size, vocabs.tgt.vocab_size + tgt_extra
        )
        progress.update = update
        improved = progress.record_validation(bleu if metric == "bleu" else -ppl, keep_best)
        progress.history.append({"update": update, "epoch": 0, "ppl": ppl, "bleu": bleu})
        state = {
            "format": 2,
            "model": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": []},
            "progress": progress.as_dict(),
            "data": {"spm_sha256": RunDir(run).spm_hashes()},
        }
        kept = [int(u) for _, u in progress.best_kept]
        folder.save(state, update, improved, kept)
        states[update] = model.state_dict()
    return run, states


def mean(states: list[dict]) -> dict:
    return {k: torch.stack([s[k].double() for s in states]).mean(0).float() for k in states[0]}


def names(averaged) -> list[str]:
    return [m.path.name for m in averaged.members]


def test_the_average_is_the_float64_mean_cast_back_and_integers_are_the_newests():
    states = [
        {"w": torch.tensor([1.0, 3.0]), "h": torch.tensor([1.0], dtype=torch.bfloat16)},
        {"w": torch.tensor([2.0, 5.0]), "h": torch.tensor([1.0 + 2**-7], dtype=torch.bfloat16)},
        {"w": torch.tensor([4.0, 7.0]), "h": torch.tensor([1.0 + 2**-7], dtype=torch.bfloat16)},
    ]
    for i, state in enumerate(states):
        state["steps"] = torch.tensor([10 * (i + 1)])
    out = average_states(states, newest=states[1])
    assert torch.equal(out["w"], torch.tensor([7 / 3, 5.0], dtype=torch.float32))
    # in bf16, 1 + 2/3 * 2**-7 rounds to 1 + 2**-7: a bf16 sum would have lost it to 1.0
    assert out["h"].dtype == torch.bfloat16 and out["h"].item() == 1.0 + 2**-7
    assert torch.equal(out["steps"], torch.tensor([20]))


def test_last_n_averages_the_newest_saves_into_the_runs_checkpoints(template, tmp_path):
    run, states = make_run(template, tmp_path, keep_last=3)
    done = average_run(run, last=3)
    assert names(done) == ["update-0000500.pt", "update-0000400.pt", "update-0000300.pt"]
    assert done.output == run / "checkpoints" / "average-last3.pt"
    written = load_checkpoint(done.output)
    expected = mean([states[u] for u in (500, 400, 300)])
    assert written["model"].keys() == expected.keys()
    assert all(torch.equal(written["model"][k], expected[k]) for k in expected)
    assert written["average"]["updates"] == [500, 400, 300]
    assert written["average"]["scores"] == [5.0, 25.0, 20.0]
    assert "optimizer" not in written and "progress" not in written
    lines = done.lines()
    assert lines[0] == f"wrote {done.output}: the average of 3 checkpoints (last 3)"
    assert lines[1] == f"  {run}/checkpoints/update-0000500.pt: update 500, valid bleu 5.00"


def test_last_takes_last_pt_when_no_numbered_saves_are_kept(template, tmp_path):
    run, states = make_run(template, tmp_path, keep_last=0)
    done = average_run(run, last=1)
    assert names(done) == ["last.pt"]
    written = load_checkpoint(done.output)["model"]
    assert all(torch.equal(written[k], v) for k, v in states[500].items())


@pytest.mark.parametrize(
    ("metric", "best"),
    [
        ("bleu", ["best-0000200.pt", "best-0000400.pt"]),
        ("ppl", ["best-0000100.pt", "best-0000300.pt"]),
    ],
)
def test_best_n_picks_the_best_validations_under_the_runs_metric(template, tmp_path, metric, best):
    run, states = make_run(template, tmp_path, keep_best=3, metric=metric)
    done = average_run(run, best=2)
    assert names(done) == best and done.output.name == "average-best2.pt"
    assert done.lines()[0].endswith(f"the average of 2 checkpoints (best 2 by valid {metric})")
    written = load_checkpoint(done.output)["model"]
    expected = mean([states[m.update] for m in done.members])
    assert all(torch.equal(written[k], expected[k]) for k in expected)


def test_best_of_a_run_keeping_one_is_best_pt(template, tmp_path):
    run, _ = make_run(template, tmp_path, keep_best=1)
    assert names(average_run(run, best=1)) == ["best.pt"]
    assert average_run(run, best=1).members[0].update == 200


def test_more_than_the_run_keeps_is_refused_with_the_counts_and_the_setting(template, tmp_path):
    run, _ = make_run(template, tmp_path, keep_last=3, keep_best=3)
    with pytest.raises(RunDirError) as err:
        average_run(run, last=5)
    assert str(err.value) == (
        f"last=5: {run}/checkpoints holds 3 to choose from (update-0000500.pt, "
        "update-0000400.pt, update-0000300.pt), as the run's train.keep_last=3 keeps; train "
        "(or resume) with train.keep_last=5 or more to average 5, or give last=3"
    )
    with pytest.raises(RunDirError, match=r"^best=4: .* holds 3 to choose from .*keep_best=4 or"):
        average_run(run, best=4)
    assert not list(run.glob("checkpoints/average-*"))


def altered(source, path, change) -> str:
    """A copy of checkpoint source at path whose model state `change` has edited."""
    state = load_checkpoint(source)
    state["model"] = dict(state["model"])
    change(state["model"])
    save_checkpoint(state, path)
    return str(path)


def test_checkpoints_of_another_model_are_refused_naming_the_parameter_and_both_files(
    template, tmp_path
):
    run, _ = make_run(template, tmp_path / "a")
    ours = run / "checkpoints" / "update-0000500.pt"
    weight = load_checkpoint(ours)["model"]["decoder.output.weight"]  # (V, H)
    rows, cols = weight.shape

    def widen(model):
        model["decoder.output.weight"] = torch.zeros(rows + 7, cols)

    wide = altered(run / "checkpoints" / "update-0000400.pt", tmp_path / "wide.pt", widen)
    avg = tmp_path / "avg.pt"
    with pytest.raises(RunDirError) as err:
        average_run(run, checkpoints=[wide, ours], output=str(avg))
    assert str(err.value) == (
        f"{wide}: parameter decoder.output.weight has shape ({rows + 7}, {cols}) but {ours} has "
        f"({rows}, {cols}); average checkpoints of one model"
    )
    half = altered(
        ours, tmp_path / "half.pt", lambda m: m.update({k: v.half() for k, v in m.items()})
    )
    with pytest.raises(RunDirError, match=r"half.pt: parameter \S+ has dtype torch.float16 but"):
        average_run(run, checkpoints=[ours, half], output=str(avg))
    pruned = altered(ours, tmp_path / "pruned.pt", lambda m: m.pop("decoder.output.bias"))
    with pytest.raises(RunDirError, match=r"pruned.pt: has no parameter decoder.output.bias, but"):
        average_run(run, checkpoints=[ours, pruned], output=str(avg))
    other, _ = make_run(template, tmp_path / "b", tgt_extra=7)  # another vocabulary size
    theirs = other / "checkpoints" / "update-0000400.pt"
    with pytest.raises(RunDirError, match=rf"0400.pt: parameter \S+ has shape \({rows + 7},"):
        average_run(run, checkpoints=[ours, theirs], output=str(avg))
    assert not avg.exists()


def test_checkpoints_of_other_sentencepiece_models_are_refused(template, tmp_path):
    run, _ = make_run(template, tmp_path)
    ours = run / "checkpoints" / "update-0000500.pt"
    state = load_checkpoint(run / "checkpoints" / "update-0000400.pt")
    state["data"] = {"spm_sha256": {"spm.model": "f" * 64}}
    save_checkpoint(state, tmp_path / "other.pt")
    with pytest.raises(RunDirError, match=r"other.pt: trained with another spm.model than .*ffff"):
        average_run(
            run, checkpoints=[str(ours), str(tmp_path / "other.pt")], output=str(tmp_path / "x.pt")
        )


def test_the_average_translates_through_translator_load_and_the_cli(template, tmp_path):
    from nmt.translator import Translator

    run, _ = make_run(template, tmp_path)
    proc = run_cli("average", f"run={run}", "last=2")
    out = run / "checkpoints" / "average-last2.pt"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"wrote {out}: the average of 2 checkpoints (last 2)"
    assert len(proc.stdout.splitlines()) == 3
    translator = Translator.load(run, checkpoint=str(out), device="cpu", threads=1, kernels="plain")
    averaged = load_checkpoint(out)["model"]
    assert all(torch.equal(v, averaged[k]) for k, v in translator.model.state_dict().items())
    assert len(translator.translate_text(["alpha bravo", "golf"])) == 2
    proc = run_cli("translate", f"run={run}", f"checkpoint={out}", "threads=1", stdin="alpha\n")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1, proc.stderr


def test_an_input_or_a_training_checkpoint_name_is_never_the_output(template, tmp_path):
    run, _ = make_run(template, tmp_path)
    folder = run / "checkpoints"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for output in ("last.pt", "best.pt", "update-0000600.pt", "best-0000100.pt"):
        with pytest.raises(ConfigError, match=f"{output} is a name nmt-train writes"):
            average_run(run, last=2, output=str(folder / output))
    inputs = [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
    shutil.copy(folder / "update-0000400.pt", inputs[0])
    shutil.copy(folder / "update-0000500.pt", inputs[1])
    with pytest.raises(ConfigError, match="b.pt is .*b.pt, a checkpoint being averaged"):
        average_run(run, checkpoints=inputs, output=inputs[1])
    with pytest.raises(ConfigError, match="last.pt is .*update-0000500.pt again; give each"):
        average_run(run, checkpoints=[folder / "update-0000500.pt", folder / "last.pt"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert (tmp_path / "b.pt").read_bytes() == before["update-0000500.pt"]


def test_a_failed_write_leaves_the_previous_average_and_no_partial_file(
    template, tmp_path, monkeypatch
):
    run, _ = make_run(template, tmp_path)
    first = average_run(run, last=2).output
    previous = first.read_bytes()

    def half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", half_then_fail)
    with pytest.raises(
        DiskFullError, match=r"average-last2.pt: No space left .* nmt-average again"
    ):
        average_run(run, best=2, output=str(first))
    assert first.read_bytes() == previous
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_resume_refuses_an_averaged_checkpoint(template, tmp_path):
    run, _ = make_run(template, tmp_path)
    folder = CheckpointDir(run / "checkpoints")
    shutil.copy(average_run(run, last=3).output, folder.last)
    with pytest.raises(RunDirError, match="last.pt: not a training checkpoint"):
        resume_checkpoint(True, {}, folder, run)


def test_exactly_one_way_of_choosing_is_required(template, tmp_path):
    run, _ = make_run(template, tmp_path)
    for choice in ({}, {"last": 2, "best": 2}, {"last": -1}):
        with pytest.raises(ConfigError, match=r"give one of last=N \(the N newest saves\), best"):
            average_run(run, **choice)
    with pytest.raises(RunDirError, match=r"^checkpoints=: \S+nope.pt: no such file; list chec"):
        average_run(run, checkpoints=[tmp_path / "nope.pt"])
    proc = run_cli("average", f"run={run}", "last=9")
    assert proc.returncode == 2 and proc.stderr.startswith("error: last=9: ")
    assert len(proc.stderr.splitlines()) == 1
