"""bench/speed.py's stages that train, or measure the machine: prepare, train, budget, flops."""

from __future__ import annotations

import gzip
import re
import shutil
import statistics
from pathlib import Path

from speed_common import (
    SPLITS,
    joey_config,
    joey_rates,
    joey_train,
    load,
    onmt_config,
    onmt_python,
    onmt_rates,
    onmt_train,
    ours_rates,
    ours_train,
    timed_run,
)


def prepare(a: dict, work: Path) -> dict:
    """Plain-text splits, one SentencePiece model (ours) and its piece list for JoeyNMT."""
    from nmt.config import DataConfig
    from nmt.data.tokenizer import Vocabularies

    data = work / "data"
    (data / "src-only").mkdir(parents=True, exist_ok=True)
    for name, stem in SPLITS.items():
        for lang in ("de", "en"):
            with gzip.open(Path(a["multi30k"]) / f"{stem}.{lang}.gz", "rt", encoding="utf-8") as f:
                (data / f"{name}.{lang}").write_text(f.read(), encoding="utf-8")
    shutil.copy(data / "test.de", data / "src-only" / "test.de")  # JoeyNMT: no refs → no BLEU
    spm = work / "spm.model"
    if not spm.is_file():
        cfg = DataConfig(name="files", src="de", tgt="en", train="", valid="")
        src = (data / "train.de").read_text(encoding="utf-8").splitlines()
        tgt = (data / "train.en").read_text(encoding="utf-8").splitlines()
        Vocabularies.train(src, tgt, work, cfg)
    vocabs = Vocabularies.load(work)
    pieces = [vocabs.src.sp.id_to_piece(i) for i in range(vocabs.src.vocab_size)]
    (work / "vocab.txt").write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    return {"spm": str(spm), "vocab_size": len(pieces), "data": str(data)}


def train_speed(a: dict, work: Path) -> dict:
    """Tokens/s over `updates` updates after `warmup`, ours and JoeyNMT's alternating."""
    threads, warmup, updates = int(a["threads"]), int(a["warmup"]), int(a["updates"])
    total, every = warmup + updates, int(a["log_every"])
    runs = []
    for r in range(int(a["repeat"])):
        run = work / "runs" / f"ours-train-{r}"
        cmd = ours_train(
            work,
            run,
            threads,
            [
                f"train.max_updates={total}",
                f"train.log_every={every}",
                "train.valid_every=100000",
                "train.max_epochs=0",
                "data.max_valid=64",
                f"train.precision={a['precision']}",
            ],
        )
        res = timed_run(cmd, work / "runs" / f"ours-train-{r}.log", threads)
        res.update(side="ours", repeat=r, rates=ours_rates(run, warmup))
        runs.append(res)
        print(
            f"train ours #{r}: {statistics.mean(res['rates']):.0f} tok/s, load {res['load_start']}",
            flush=True,
        )
        model_dir = work / "runs" / f"joey-train-{r}"
        config = joey_config(work, model_dir, updates=total, logging_freq=every)
        res = timed_run(
            joey_train(config, model_dir), work / "runs" / f"joey-train-{r}.log", threads
        )
        res.update(side="joeynmt", repeat=r, rates=joey_rates(model_dir, warmup))
        runs.append(res)
        print(
            f"train joeynmt #{r}: {statistics.mean(res['rates']):.0f} tok/s, load {res['load_start']}",
            flush=True,
        )
        if a["opennmt"] == "true" and Path(onmt_python()).exists():  # the second peer
            model_dir = work / "runs" / f"onmt-train-{r}"
            config = onmt_config(work, model_dir, updates=total, logging_freq=every)
            log = work / "runs" / f"onmt-train-{r}.log"
            res = timed_run(onmt_train(config, model_dir), log, threads)
            res.update(side="opennmt", repeat=r, rates=onmt_rates(log, warmup))
            runs.append(res)
            rate = statistics.mean(res["rates"]) if res["rates"] else float("nan")
            print(f"train opennmt #{r}: {rate:.0f} tok/s, load {res['load_start']}", flush=True)
    return {"warmup": warmup, "updates": updates, "threads": threads, "runs": runs}


def ours_budget(a: dict, work: Path, name: str, extra: tuple[str, ...] = ()) -> dict:
    """Ours trains runs/<name> for budget_min minutes of wall clock (`extra`: overrides)."""
    threads, seconds = int(a["threads"]), 60 * float(a["budget_min"])
    budget = ["train.max_epochs=0", "train.valid_every=500", "train.log_every=50"]
    cmd = ours_train(work, work / "runs" / name, threads, [*budget, "train.patience=0", *extra])
    ours = timed_run(cmd, work / "runs" / f"{name}.log", threads, limit_s=seconds)
    saved = re.findall(r"at update (\d+)", Path(ours["log"]).read_text())  # the SIGINT save
    ours["updates"] = int(saved[-1]) if saved else None
    return ours


def budget(a: dict, work: Path) -> dict:
    """Each toolkit trains for budget_min minutes of wall clock, one after the other."""
    threads, seconds = int(a["threads"]), 60 * float(a["budget_min"])
    ours = ours_budget(a, work, "ours-budget")
    print(f"budget ours: {ours}", flush=True)
    model_dir = work / "runs" / "joey-budget"
    config = joey_config(work, model_dir, validation_freq=500, logging_freq=50)
    joey = timed_run(
        joey_train(config, model_dir), work / "runs" / "joey-budget.log", threads, limit_s=seconds
    )
    steps = re.findall(r"[Ss]tep:? +(\d+)", (model_dir / "train.log").read_text())
    joey["updates"] = int(steps[-1]) if steps else None
    print(f"budget joeynmt: {joey}", flush=True)
    return {"minutes": float(a["budget_min"]), "ours": ours, "joeynmt": joey}


def flops(a: dict, work: Path) -> dict:
    import flops as fl

    report = {"load_start": load(), "matmul": fl.matmul_rate(int(a["threads"]))}
    src, tgt, vocab = fl.load_pairs(str(work / "spm.model"), str(work / "data" / "train"))
    report["model"] = fl.model_flops(src, tgt, vocab)
    report["load_end"] = load()
    return report
