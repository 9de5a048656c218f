"""bench/speed.py's growth stage: how our decoding cost grows with beam width, batch size and
source length, and our training cost per target token with sentence length."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from speed_common import HERE, PEER, joey_config, joey_python, load, timed_run


def growth(a: dict, work: Path) -> dict:
    """Ours: decode time vs beam width, batch size, source length; training cost vs length."""
    threads, run = int(a["threads"]), work / "runs" / "ours-budget"
    if not run.exists():  # the budget stage has not run here: the shared stage's model
        run = work / "runs" / "ours-shared"
    print(f"growth: decoding with {run}", flush=True)
    test = work / "data" / "test.de"
    out: dict = {}

    def beam_speed(name: str, *args: str) -> list[dict]:
        js = work / "runs" / f"growth-{name}.json"
        cmd = [
            sys.executable,
            str(HERE / "beam_speed.py"),
            f"run={run}",
            f"json={js}",
            f"threads={threads}",
            "length_penalty=gnmt",
            "alpha=1.0",
            "checkpoint=last",
            *args,
        ]
        res = timed_run(cmd, work / "runs" / f"growth-{name}.log", threads)
        print(f"growth {name}: load {res['load_start']} -> {res['load_end']}", flush=True)
        return [dict(r, load=res["load_start"]) for r in json.loads(js.read_text())["results"]]

    widths = [int(b) for b in a["beams"].split(",") if int(b) > 1]
    out["beam"] = beam_speed(
        "beam", f"input={test}", f"beams={','.join(map(str, widths))}", "batches=64", "limit=200"
    )
    out["batch"] = beam_speed(
        "batch", f"input={test}", "beams=5", "batches=1,8,32,128", "limit=128"
    )
    from nmt.data.tokenizer import Tokenizer

    tok = Tokenizer.load(work / "spm.model")
    lines = test.read_text(encoding="utf-8").splitlines()
    lengths = [len(x) + 1 for x in tok.encode(lines)]
    out["source_length"] = []
    for lo, hi in ((1, 12), (13, 16), (17, 20), (21, 25), (26, 200)):
        bucket = [line for line, n in zip(lines, lengths, strict=True) if lo <= n <= hi][:64]
        path = work / "data" / f"test.len{lo}-{hi}.de"
        path.write_text("".join(x + "\n" for x in bucket), encoding="utf-8")
        rows = beam_speed(f"len{lo}-{hi}", f"input={path}", "beams=5", "batches=64")
        mean_len = sum([n for n in lengths if lo <= n <= hi][:64]) / len(bucket)
        out["source_length"] += [dict(r, mean_src_tokens=round(mean_len, 1)) for r in rows]
    out["train_length"] = train_cost_by_length(work, threads)
    if a["peer_growth"] == "true":
        js = work / "runs" / "growth-joey-beam.json"
        config = joey_config(work, work / "runs" / "joey-budget")
        cmd = [
            joey_python(),
            str(PEER / "decode.py"),
            str(config),
            a["beams"],
            str(js),
            str(work / "hyps" / "joey-growth"),
            str(threads),
        ]
        res = timed_run(cmd, work / "runs" / "growth-joey-beam.log", threads)
        out["joey_beam"] = [
            dict(r, load=res["load_start"]) for r in json.loads(js.read_text())["results"]
        ]
    return out


def train_cost_by_length(work: Path, threads: int) -> list[dict]:
    """ms per target token of our training step on 4096-token batches of one length band:
    the trainer's step (its kernels: kernels=auto, as nmt-train chooses them)."""
    import torch
    from flops import MODEL

    from nmt.config import AttentionConfig, ModelConfig, OptimConfig
    from nmt.data.batching import TokenBatchSampler, make_batch
    from nmt.data.corpus import read_parallel
    from nmt.data.tokenizer import Tokenizer
    from nmt.kernels import select
    from nmt.model import Seq2Seq
    from nmt.train.loss import batch_loss

    torch.set_num_threads(threads)
    tok = Tokenizer.load(work / "spm.model")
    corpus = read_parallel(str(work / "data" / "train"), "de", "en", False)
    src, tgt = tok.encode(corpus.src), tok.encode(corpus.tgt)
    torch.manual_seed(0)
    model = Seq2Seq.build(ModelConfig(**MODEL), AttentionConfig(), tok.vocab_size, tok.vocab_size)
    cpu, chunk = torch.device("cpu"), OptimConfig.loss_chunk
    model.use(select("auto", cpu, model.decoder.output, chunk, training=True)[0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    rows = []
    for lo, hi in ((4, 8), (9, 12), (13, 16), (17, 22), (23, 30), (31, 60)):
        keep = [i for i, t in enumerate(tgt) if lo <= len(t) + 1 <= hi]
        sampler = TokenBatchSampler(
            [len(src[i]) for i in keep], [len(tgt[i]) for i in keep], 4096, shuffle=True, seed=0
        )
        batches = [[keep[j] for j in b] for b in sampler.batches()[:3]]
        times, tokens = [], []
        for n, b in enumerate(batches):
            batch = make_batch([src[i] for i in b], [tgt[i] for i in b], b)
            start = time.perf_counter()
            with model.kernels.training():
                loss = batch_loss(model, model, batch, 0.0)
                (loss / batch.ntokens).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if n:  # the first batch of each band is a warm-up
                times.append(time.perf_counter() - start)
                tokens.append(batch.ntokens)
        rows.append(
            {
                "tgt_tokens": f"{lo}-{hi}",
                "pairs": len(keep),
                "load": load(),
                "ms_per_token": round(1000 * sum(times) / sum(tokens), 4),
                "tokens_per_s": round(sum(tokens) / sum(times), 1),
            }
        )
        print(f"train cost {lo}-{hi}: {rows[-1]}", flush=True)
    return rows
