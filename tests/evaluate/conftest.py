"""Fixtures for report tests: small aligned test sets and a run directory with an untrained
model, built in the test (no training: a random model has attention all the same)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import compose_config, files_overrides, toy_pairs, write_parallel

N = 150  # sentences: enough for a clear significance result, fast to resample


def _damage(sentence: str, rng: random.Random) -> str:
    """Drop one word and swap another: an output clearly worse than the reference."""
    words = sentence.split()
    words.pop(rng.randrange(len(words)))
    if len(words) > 1:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


@pytest.fixture(scope="session")
def test_set(tmp_path_factory) -> dict[str, Path]:
    """src, ref and three system outputs: base (much damaged), better, and copy (= base)."""
    folder = tmp_path_factory.mktemp("testset")
    rng = random.Random(7)
    pairs = toy_pairs(N, seed=3)
    src, ref = [s for s, _ in pairs], [t for _, t in pairs]
    base = [_damage(t, rng) if rng.random() < 0.8 else t for t in ref]
    better = [_damage(t, rng) if rng.random() < 0.15 else t for t in ref]
    files = {"src": src, "ref": ref, "base": base, "better": better, "copy": base}
    paths = {}
    for name, lines in files.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return paths


def write_metrics_csv(path: Path) -> Path:
    """A metrics.csv as nmt-train writes it: train rows every 10 updates, 3 validations."""
    lines = ["update,epoch,split,loss,ppl,bleu,lr,tokens_per_s,elapsed_s"]
    for update in range(10, 310, 10):
        loss = 4.0 * 0.993**update + 0.5
        lines.append(f"{update},1,train,{loss:.4f},{2.718281828**loss:.4f},,0.001,5000.0,1.0")
        if update % 100 == 0:
            bleu = {100: 12.5, 200: 31.0, 300: 29.5}[update]
            lines.append(
                f"{update},1,valid,{loss + 0.3:.4f},{2.718281828 ** (loss + 0.3):.4f},"
                f"{bleu},0.001,,2.0"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory, test_set) -> Path:
    """A run directory nmt-translate can load: config.yaml, spm.model, an untrained
    checkpoint (best.pt) and a hand-written metrics.csv."""
    from nmt.data.tokenizer import Vocabularies
    from nmt.model import Seq2Seq
    from nmt.train.checkpoint import save_checkpoint

    tmp = tmp_path_factory.mktemp("run")
    pairs = toy_pairs(N, seed=3)
    train = write_parallel(tmp / "data", "train", pairs)
    run = tmp / "run"
    cfg = compose_config("train", [*files_overrides(tmp / "data", train, train)])
    vocabs = Vocabularies.train([s for s, _ in pairs], [t for _, t in pairs], run, cfg.data)
    model = Seq2Seq.build(cfg.model, cfg.attention, vocabs.src.vocab_size, vocabs.tgt.vocab_size)
    save_checkpoint({"model": model.state_dict()}, run / "checkpoints" / "best.pt")
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_metrics_csv(run / "metrics.csv")
    return run


@pytest.fixture
def evaluate_config(test_set):
    """config(*overrides): what nmt-evaluate would run with hyp=base ref=ref and overrides."""

    def config(*overrides: str):
        return compose_config(
            "evaluate", [f"hyp={test_set['base']}", f"ref={test_set['ref']}", *overrides]
        )

    return config
