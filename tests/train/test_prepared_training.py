"""Training reads one data path: a prepared directory, given (data=prepared) or made from the
files into RUN/data; both train the same model, and a mismatched directory is refused."""

from __future__ import annotations

import torch

from nmt.data.prepare import prepare
from nmt.errors import ConfigError
from nmt.train.trainer import Trainer
from tests.helpers import compose_config, files_overrides, run_cli, toy_pairs, write_parallel

# threads=1: nmt-train prepares on as many workers as threads, and SentencePiece's model
# depends on its thread count; prepare() below runs on 1
UPDATES = (
    "train.max_updates=4",
    "train.valid_every=2",
    "seed=5",
    "data.batch_tokens=60",
    "threads=1",
)


def _files(tmp_path):
    train = write_parallel(tmp_path / "data", "train", toy_pairs(80))
    valid = write_parallel(tmp_path / "data", "valid", toy_pairs(10, seed=3))
    return files_overrides(tmp_path / "data", train, valid)


def test_a_prepared_directory_trains_the_same_model_as_the_files(tmp_path):
    files = _files(tmp_path)
    direct = Trainer(compose_config("train", [*files, *UPDATES]), tmp_path / "direct")
    direct.fit()
    assert (tmp_path / "direct" / "data" / "prepared.json").is_file()
    prepare(compose_config("train", files).data, tmp_path / "prepared", progress=False)
    cfg = compose_config(
        "train",
        [*files[5:], "data=prepared", f"data.prepared={tmp_path / 'prepared'}", *UPDATES],
    )
    assert (cfg.data.src, cfg.data.vocab_size, cfg.data.name) == ("xx", 300, "files")
    mapped = Trainer(cfg, tmp_path / "mapped")
    mapped.fit()
    assert not (tmp_path / "mapped" / "data").exists()  # the given directory is read in place
    assert (tmp_path / "mapped" / "spm.model").read_bytes() == (
        tmp_path / "direct" / "spm.model"
    ).read_bytes()
    for (name, a), b in zip(
        direct.model.state_dict().items(), mapped.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    metrics = [(tmp_path / run / "metrics.csv").read_text() for run in ("direct", "mapped")]
    drop_time = [[row.split(",")[:6] for row in text.splitlines()] for text in metrics]
    assert drop_time[0] == drop_time[1]


def test_a_prepared_directory_with_other_settings_is_refused(tmp_path):
    files = _files(tmp_path)
    prepare(compose_config("train", files).data, tmp_path / "prepared", progress=False)
    cfg = compose_config(
        "train", [*files, f"data.prepared={tmp_path / 'prepared'}", "data.vocab_size=250"]
    )
    try:
        Trainer(cfg, tmp_path / "run")
    except ConfigError as e:
        assert "data.vocab_size=250 (prepared with 300)" in str(e)
        assert "data=prepared" in str(e)
    else:
        raise AssertionError("a mismatched prepared corpus was trained on")


def test_nmt_prepare_writes_and_then_reuses_a_directory(tmp_path):
    files = [f for f in _files(tmp_path) if f.startswith("data")]
    out = tmp_path / "prepared"
    first = run_cli("prepare", *files, f"out={out}", "workers=2", "progress=false")
    assert first.returncode == 0, first.stderr
    assert "80 training pairs" in first.stdout and (out / "prepare.log").is_file()
    again = run_cli("prepare", *files, f"out={out}", "progress=false")
    assert again.returncode == 0 and "reusing" in again.stderr
    bad = run_cli("prepare", *files, f"out={out}", "workers=0")
    assert bad.returncode == 2 and "workers='0' must be auto" in bad.stderr
    missing = run_cli("train", "data=prepared", f"data.prepared={tmp_path / 'nowhere'}")
    assert missing.returncode != 0 and "no such data directory" in missing.stderr


def test_a_run_whose_data_directory_is_gone_resumes_on_its_own_models(tmp_path):
    """RUN/data is prepared again from the files with the run's SentencePiece models (a run
    from before prepared corpora, or one whose data/ was deleted to save space)."""
    files = _files(tmp_path)
    Trainer(compose_config("train", [*files, *UPDATES]), tmp_path / "run").fit()
    model = (tmp_path / "run" / "spm.model").read_bytes()
    for path in (tmp_path / "run" / "data").iterdir():
        path.unlink()
    (tmp_path / "run" / "data").rmdir()
    more = [*files, *UPDATES, "train.max_updates=6", "resume=true", "threads=2"]
    resumed = Trainer(compose_config("train", more), tmp_path / "run")
    assert resumed.progress.update == 4
    assert resumed.fit()["updates"] == 6
    assert (tmp_path / "run" / "data" / "spm.model").read_bytes() == model
    assert (tmp_path / "run" / "spm.model").read_bytes() == model
