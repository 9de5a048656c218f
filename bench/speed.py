"""Speed against JoeyNMT 2.3.0, side by side on this machine: the one command of issue 7.

    python bench/speed.py [stages=prepare,train,budget,decode,shared,growth,flops,report]
        [work=bench/work] [threads=2] [warmup=10] [updates=60] [repeat=2]
        [budget_min=10] [beams=1,2,5,10,20] [peer_growth=false]

Stages (each writes work/results/<stage>.json, so one can be rerun alone; `report` reads
them all and prints the table, writes work/speed.json and work/growth.png):

- prepare: Multi30k de→en as plain text in work/data, one joint 8k SentencePiece model
  (trained by our code) and its piece list, the vocabulary both toolkits use.
- train:   `warmup` + `updates` updates of each toolkit, ours then JoeyNMT's, `repeat`
  times (A B A B); target tokens/s over the windows after warm-up, as each toolkit logs it
  (both count non-padding target tokens, EOS included, training time only), and peak RSS
  (/usr/bin/time -v).
- budget:  each toolkit trains for `budget_min` minutes of wall clock from process start
  (`timeout -s INT`: both save their weights on SIGINT), one after the other.
- decode:  the budget models decode test2016 greedy and beam-5 (64 sentences a batch),
  ours then JoeyNMT's, `repeat` times; sentences/s, mean output length, peak RSS; BLEU of
  the greedy output is the equal-budget BLEU.
- shared:  one set of weights in both toolkits: ours trained `budget_min` minutes with
  model.output_bias=false (runs/ours-shared, kept once trained), converted for JoeyNMT by
  peers/joeynmt/convert.py (runs/joey-shared); then decoded as in `decode`. Same model, so
  the same output lengths: the like-for-like decoding comparison.
- growth:  ours (runs/ours-budget, or runs/ours-shared where the budget stage has not run):
  decode time vs beam width, batch size and source length; training time per target token
  vs sentence length (JoeyNMT's beam widths too with peer_growth=true).
- flops:   the fp32 matmul limit (torch.mm and oneDNN) and FLOPs per target token
  (bench/flops.py).

Each figure is stored with the load average (/proc/loadavg) at its start and end.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from string import Template

from kvargs import parse_kv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER = HERE / "peers" / "joeynmt"
OURS_BIN = Path(sys.executable).parent
DEFAULTS = {
    "stages": "prepare,train,budget,decode,shared,growth,flops,report",
    "work": "bench/work",
    "multi30k": os.environ.get("NMT_MULTI30K", "../shared/data/multi30k"),
    "threads": "2",
    "warmup": "10",
    "updates": "60",
    "log_every": "10",
    "repeat": "2",
    "budget_min": "10",
    "beams": "1,2,5,10,20",
    "peer_growth": "false",
    "decode_limit": "0",
}
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}
OURS_MODEL = [
    "model=gru",
    "attention=bahdanau",
    "optim.scheduler=none",
    "optim.clip_norm=1.0",
    "optim.lr=0.001",
    "data.batch_tokens=4096",
]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def env(threads: int) -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    e.pop("CUDA_VISIBLE_DEVICES", None)
    return e


def timed_run(cmd: list[str], log: Path, threads: int, limit_s: float = 0) -> dict:
    """Run cmd under /usr/bin/time -v (and `timeout -s INT` if limit_s): wall, peak RSS, load."""
    rss_file = log.with_suffix(".time")
    wrapped = ["/usr/bin/time", "-v", "-o", str(rss_file)]
    if limit_s:
        wrapped += ["timeout", "-s", "INT", "-k", "300", str(int(limit_s))]
    start, load_start = time.monotonic(), load()
    with open(log, "w") as out:
        rc = subprocess.run(
            wrapped + cmd, stdout=out, stderr=subprocess.STDOUT, env=env(threads)
        ).returncode
    text = rss_file.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {
        "rc": rc,
        "wall_s": round(time.monotonic() - start, 1),
        "peak_rss_mb": round(rss / 1024, 1),
        "load_start": load_start,
        "load_end": load(),
        "log": str(log),
    }


def save(work: Path, stage: str, result: dict) -> None:
    (work / "results").mkdir(parents=True, exist_ok=True)
    (work / "results" / f"{stage}.json").write_text(json.dumps(result, indent=2) + "\n")


def read(work: Path, stage: str) -> dict:
    path = work / "results" / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# -- prepare --------------------------------------------------------------------------------


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


# -- the two toolkits' commands ------------------------------------------------------------


def ours_train(work: Path, run: Path, threads: int, extra: list[str]) -> list[str]:
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    shutil.copy(work / "spm.model", run / "spm.model")  # reused: the same pieces as JoeyNMT
    data = work / "data"
    return [
        str(OURS_BIN / "nmt-train"),
        "data=files",
        "data.src=de",
        "data.tgt=en",
        f"data.train={data / 'train'}",
        f"data.valid={data / 'val'}",
        *OURS_MODEL,
        f"threads={threads}",
        "device=cpu",
        "progress=false",
        f"hydra.run.dir={run}",
        *extra,
    ]


def joey_config(work: Path, model_dir: Path, **values) -> Path:
    """A config from config.yaml.in for a model directory."""
    fill = dict(
        model_dir=model_dir,
        use_cuda="false",
        data=work / "data",
        test=work / "data" / "src-only" / "test",
        vocab=work / "vocab.txt",
        spm=work / "spm.model",
        beam_size=1,
        beam_alpha=1.0,
        updates=10**9,
        validation_freq=10**9,
        logging_freq=10,
    )
    fill.update(values)
    # JoeyNMT wants validation_freq divisible by logging_freq
    fill["validation_freq"] -= fill["validation_freq"] % fill["logging_freq"]
    text = Template((PEER / "config.yaml.in").read_text()).substitute(fill)
    path = model_dir.parent / f"{model_dir.name}.yaml"
    path.write_text(text)
    return path


def joey_python() -> str:
    return str(PEER / ".venv" / "bin" / "python")


def joey_train(config: Path, model_dir: Path) -> list[str]:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    return [joey_python(), "-m", "joeynmt", "train", str(config), "--skip-test"]


def ours_rates(run: Path, warmup: int) -> list[float]:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    return [float(r["tokens_per_s"]) for r in rows if int(r["update"]) > warmup]


JOEY_LOG = re.compile(r"Step:\s+(\d+),.*Tokens per Sec:\s+(\d+)")


def joey_rates(model_dir: Path, warmup: int) -> list[float]:
    steps = JOEY_LOG.findall((model_dir / "train.log").read_text())
    return [float(rate) for step, rate in steps if int(step) > warmup]


# -- stages ---------------------------------------------------------------------------------


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


def mean_tokens(work: Path, hyp_file: Path) -> float:
    """Mean output length in subword tokens, EOS included: both sides re-encoded alike."""
    from nmt.data.tokenizer import Tokenizer

    lines = hyp_file.read_text(encoding="utf-8").splitlines()
    ids = Tokenizer.load(work / "spm.model").encode(lines)
    return round(sum(len(x) + 1 for x in ids) / len(ids), 2)


def bleu(hyp_file: Path, ref_file: Path) -> float:
    import sacrebleu

    hyps = hyp_file.read_text(encoding="utf-8").splitlines()
    refs = ref_file.read_text(encoding="utf-8").splitlines()
    return round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)


def test_subset(work: Path, limit: int) -> tuple[Path, Path, Path]:
    """test2016's first `limit` lines (0 = all): source, reference, JoeyNMT's source prefix."""
    data = work / "data"
    if not limit:
        return data / "test.de", data / "test.en", data / "src-only" / "test"
    sub = data / f"first{limit}"
    (sub / "src-only").mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        lines = (data / f"test.{lang}").read_text(encoding="utf-8").splitlines(keepends=True)
        (sub / f"test.{lang}").write_text("".join(lines[:limit]), encoding="utf-8")
    shutil.copy(sub / "test.de", sub / "src-only" / "test.de")
    return sub / "test.de", sub / "test.en", sub / "src-only" / "test"


def decode(a: dict, work: Path) -> dict:
    """Greedy and beam-5 on test2016 with each budget model, alternating; BLEU, lengths."""
    return decode_pairs(a, work, "budget")


def shared(a: dict, work: Path) -> dict:
    """Both toolkits decode with one set of weights: ours trained `budget_min` minutes with
    model.output_bias=false (as JoeyNMT's layer), converted by peers/joeynmt/convert.py."""
    run = work / "runs" / "ours-shared"
    if not (run / "checkpoints" / "last.pt").exists():
        print(
            f"shared ours: {ours_budget(a, work, run.name, ('model.output_bias=false',))}",
            flush=True,
        )
    convert = [sys.executable, str(PEER / "convert.py"), str(run / "checkpoints" / "last.pt")]
    subprocess.run([*convert, str(work / "runs" / "joey-shared")], check=True)
    out = decode_pairs(a, work, "shared")
    hyps = {
        side: (work / "hyps" / f"{side}-shared-0" / "hyp.greedy.txt")
        .read_text("utf-8")
        .splitlines()
        for side in ("ours", "joey")
    }
    out["greedy_identical"] = sum(o == j for o, j in zip(hyps["ours"], hyps["joey"], strict=True))
    out["sentences"] = len(hyps["ours"])
    return out


def decode_pairs(a: dict, work: Path, models: str) -> dict:
    """Alternating decode runs of runs/ours-<models> and runs/joey-<models>; BLEU, lengths."""
    threads, limit = int(a["threads"]), int(a["decode_limit"])
    test, ref, joey_test = test_subset(work, limit)
    tag = "" if models == "budget" else f"-{models}"  # the decode stage keeps its file names
    runs = []
    for r in range(int(a["repeat"])):
        hyp = work / "hyps" / f"ours{tag}-{r}"
        name = f"ours{tag}-decode-{r}"
        cmd = [
            sys.executable,
            str(HERE / "beam_speed.py"),
            f"run={work / 'runs' / f'ours-{models}'}",
            f"input={test}",
            f"json={work / 'runs' / f'{name}.json'}",
            "beams=5",
            "batches=64",
            f"hyp_dir={hyp}",
            f"threads={threads}",
            "length_penalty=gnmt",
            "alpha=1.0",
            "stops=exact,early",  # ours as shipped, and with JoeyNMT's stopping rule
            "checkpoint=last",
        ]
        res = timed_run(cmd, work / "runs" / f"{name}.log", threads)
        runs.append(_decode_record(res, "ours", r, work / "runs" / f"{name}.json"))
        print(
            f"decode{tag} ours #{r}: {res['sentences_per_s']}, load {res['load_start']}", flush=True
        )
        hyp = work / "hyps" / f"joey{tag}-{r}"
        config = joey_config(work, work / "runs" / f"joey-{models}", test=joey_test)
        out = work / "runs" / f"joey{tag}-decode-{r}.json"
        cmd = [
            joey_python(),
            str(PEER / "decode.py"),
            str(config),
            "1,5",
            str(out),
            str(hyp),
            str(threads),
        ]
        res = timed_run(cmd, work / "runs" / f"joey{tag}-decode-{r}.log", threads)
        runs.append(_decode_record(res, "joeynmt", r, out))
        print(
            f"decode{tag} joeynmt #{r}: {res['sentences_per_s']}, load {res['load_start']}",
            flush=True,
        )
    quality = {}
    for side, names in (("ours", ("greedy", "b5", "b5-early")), ("joey", ("greedy", "b5"))):
        for name in names:
            f = work / "hyps" / f"{side}{tag}-0" / f"hyp.{name}.txt"
            quality[f"{side}.{name}"] = {"bleu": bleu(f, ref), "mean_tokens": mean_tokens(work, f)}
    return {"runs": runs, "quality": quality}


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
    the trainer's step (fused loss; matrix products in oneDNN where nmt-train uses it)."""
    import torch
    from flops import MODEL

    from nmt.config import AttentionConfig, ModelConfig, OptimConfig
    from nmt.data.batching import TokenBatchSampler, make_batch
    from nmt.data.corpus import read_parallel
    from nmt.data.tokenizer import Tokenizer
    from nmt.model import Seq2Seq
    from nmt.model.onednn import training_matmul
    from nmt.train.loss import batch_loss

    matmul = training_matmul()
    torch.set_num_threads(threads)
    tok = Tokenizer.load(work / "spm.model")
    corpus = read_parallel(str(work / "data" / "train"), "de", "en", False)
    src, tgt = tok.encode(corpus.src), tok.encode(corpus.tgt)
    torch.manual_seed(0)
    model = Seq2Seq.build(ModelConfig(**MODEL), AttentionConfig(), tok.vocab_size, tok.vocab_size)
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
            with matmul():
                loss = batch_loss(model, model.decoder.output, batch, 0.0, OptimConfig.loss_chunk)
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


def flops(a: dict, work: Path) -> dict:
    import flops as fl

    report = {"load_start": load(), "matmul": fl.matmul_rate(int(a["threads"]))}
    src, tgt, vocab = fl.load_pairs(str(work / "spm.model"), str(work / "data" / "train"))
    report["model"] = fl.model_flops(src, tgt, vocab)
    report["load_end"] = load()
    return report


# -- report ---------------------------------------------------------------------------------


def paired(runs: list[dict], value) -> tuple[float, float, float, list]:
    """Medians of ours and JoeyNMT's figure, and the median of the A/B ratios per repeat."""
    ours = {r["repeat"]: value(r) for r in runs if r["side"] == "ours"}
    joey = {r["repeat"]: value(r) for r in runs if r["side"] == "joeynmt"}
    ratios = [ours[k] / joey[k] for k in ours if k in joey]
    loads = [r["load_start"][0] for r in runs]
    return (
        statistics.median(ours.values()),
        statistics.median(joey.values()),
        statistics.median(ratios),
        loads,
    )


def side_median(runs: list[dict], side: str, value) -> float:
    """Median of value(run) over one side's runs (ours | joeynmt)."""
    return statistics.median(value(x) for x in runs if x["side"] == side)


def speed(key: str):
    """value(run) for `paired`: sentences/s of search `key` (greedy, beam5, beam5-early).
    JoeyNMT's beam has one stopping rule, K ended, under the plain label (its "beam5")."""
    return lambda x: x["sentences_per_s"][key if x["side"] == "ours" else key.split("-")[0]]


def div(x: float, y: float) -> float:
    return x / y if y else float("nan")


def report(a: dict, work: Path) -> dict:
    stages = ("train", "budget", "decode", "shared", "growth", "flops")
    tr, bu, de, sh, gr, fl = (read(work, s) for s in stages)
    rows = []

    def row(name, ours, joey, ratio, goal, ok, loads):
        rows.append(
            {
                "figure": name,
                "ours": ours if ours is None else round(ours, 3),
                "joeynmt": joey if joey is None else round(joey, 3),
                "ratio": round(ratio, 2),
                "goal": goal,
                "met": ok,
                "load_1min": loads,
            }
        )

    if tr:
        o, j, r, ld = paired(tr["runs"], lambda x: statistics.mean(x["rates"]))
        row("train target tokens/s", round(o), round(j), r, ">= 2.5x", r >= 2.5, ld)
        o, j, r, ld = paired(tr["runs"], lambda x: x["peak_rss_mb"])
        row("train peak RSS MB", o, j, r, "<= 0.7x", r <= 0.7, ld)
        train_rate = {
            side: side_median(tr["runs"], side, lambda x: statistics.mean(x["rates"]))
            for side in ("ours", "joeynmt")
        }
    if de:
        speeds = (
            ("greedy sentences/s", "greedy", ">= 3x", 3.0),
            ("beam5 sentences/s (ours: exact stop)", "beam5", ">= 5x", 5.0),
            ("beam5, both stop at K ended (early)", "beam5-early", ">= 5x", 5.0),
        )
        for name, key, goal, need in speeds:
            if all(key in x["sentences_per_s"] for x in de["runs"] if x["side"] == "ours"):
                o, j, r, ld = paired(de["runs"], speed(key))
                row(name, o, j, r, goal, r >= need, ld)
        o, j, r, ld = paired(de["runs"], lambda x: x["peak_rss_mb"])
        row("decode peak RSS MB", o, j, r, "<= 0.7x", r <= 0.7, ld)
        q = de["quality"]
        ld = [bu["ours"]["load_start"][0], bu["joeynmt"]["load_start"][0]] if bu else []
        o, j = q["ours.greedy"]["bleu"], q["joey.greedy"]["bleu"]
        row(
            f"BLEU greedy after {bu.get('minutes', '?')} min",
            o,
            j,
            div(o, j),
            ">= JoeyNMT",
            o >= j,
            ld,
        )
        o, j = q["ours.b5"]["bleu"], q["joey.b5"]["bleu"]
        row("BLEU beam-5 (same models)", o, j, div(o, j), "", o >= j, ld)
        if "ours.b5-early" in q:
            o = q["ours.b5-early"]["bleu"]
            row("BLEU beam-5, both stop early", o, j, div(o, j), "", o >= j, ld)
            # the models differ in how much they say: the speed per output token
            ours = side_median(de["runs"], "ours", lambda x: x["sentences_per_s"]["beam5-early"])
            joey = side_median(de["runs"], "joeynmt", lambda x: x["sentences_per_s"]["beam5"])
            o, j = q["ours.b5-early"]["mean_tokens"] * ours, q["joey.b5"]["mean_tokens"] * joey
            row("beam5 early, output tokens/s", o, j, div(o, j), "", None, [])
        for name in ("greedy", "b5", "b5-early"):
            if f"ours.{name}" in q:
                o, j = (
                    q[f"ours.{name}"]["mean_tokens"],
                    q[f"joey.{name.split('-')[0]}"]["mean_tokens"],
                )
                row(f"mean output tokens, {name}", o, j, div(o, j), "", None, [])
    if bu:
        o, j = bu["ours"]["updates"], bu["joeynmt"]["updates"]
        row("updates in the budget", o, j, div(o, j), "", None, ld)
    if sh:  # one set of weights in both: the like-for-like decoding rows
        for name, key, need in (
            ("greedy, same weights", "greedy", 3.0),
            ("beam5, same weights (ours: exact)", "beam5", 5.0),
            ("beam5, same weights, both early", "beam5-early", 5.0),
        ):
            o, j, r, ld = paired(sh["runs"], speed(key))
            row(name, o, j, r, f">= {need:.0f}x", r >= need, ld)
        o, j, r, ld = paired(sh["runs"], lambda x: x["peak_rss_mb"])
        row("decode peak RSS MB, same weights", o, j, r, "<= 0.7x", r <= 0.7, ld)
        q = sh["quality"]
        for name in ("greedy", "b5", "b5-early"):
            o, j = q[f"ours.{name}"], q[f"joey.{name.split('-')[0]}"]
            row(
                f"same weights {name}: BLEU",
                o["bleu"],
                j["bleu"],
                div(o["bleu"], j["bleu"]),
                "",
                None,
                [],
            )
            row(
                f"same weights {name}: mean output tokens",
                o["mean_tokens"],
                j["mean_tokens"],
                div(o["mean_tokens"], j["mean_tokens"]),
                "",
                None,
                [],
            )
        n = sh["sentences"]
        row(
            "same weights: identical greedy outputs",
            sh["greedy_identical"],
            n,
            sh["greedy_identical"] / n,
            "",
            None,
            [],
        )
    if fl and tr:
        limit = fl["matmul"]["limit_gflops"]
        per_token = fl["model"]["analytic"]["train_per_target_token"]
        counted = fl["model"]["counted"]["train_per_target_token"]
        mfu = {k: v * per_token / 1e9 / limit for k, v in train_rate.items()}
        row(
            f"MFU (useful FLOPs / {limit:.0f} GFLOP/s)",
            round(mfu["ours"], 3),
            round(mfu["joeynmt"], 3),
            mfu["ours"] / mfu["joeynmt"],
            ">= 0.40",
            mfu["ours"] >= 0.4,
            [fl["load_start"][0]],
        )
        mm_limit = fl["matmul"].get("mm_limit_gflops", limit)
        if mm_limit != limit:  # the limit is oneDNN's: MFU against torch.mm's (MKL) rate too
            row(
                f"MFU against torch.mm's {mm_limit:.0f} GFLOP/s (MKL, torch's default)",
                round(mfu["ours"] * limit / mm_limit, 3),
                round(mfu["joeynmt"] * limit / mm_limit, 3),
                mfu["ours"] / mfu["joeynmt"],
                "",
                None,
                [],
            )
        row(
            "HFU (executed FLOPs incl. padding)",
            round(train_rate["ours"] * counted / 1e9 / limit, 3),
            None,
            float("nan"),
            "",
            None,
            [],
        )
    if gr:
        base = {r["batch_size"]: r["seconds"] for r in gr["beam"] if r["strategy"] == "greedy"}
        growth_ok = all(
            r["seconds"] / base[r["batch_size"]] < r["beam_size"]
            for r in gr["beam"]
            if 1 < r["beam_size"] <= 10
        )
        t10 = [r["relative_to_greedy"] for r in gr["beam"] if r["beam_size"] == 10]
        row(
            "beam-10 time / greedy time",
            t10[0] if t10 else None,
            None,
            float("nan"),
            "< 10 (sub-linear)",
            growth_ok,
            [gr["beam"][0]["load"][0]],
        )
    print(
        f"\n{'figure':<38} {'ours':>10} {'JoeyNMT':>10} {'ratio':>7} {'goal':>18} {'met':>5}  load"
    )
    for r in rows:
        cells = [("" if v is None else str(v)) for v in (r["ours"], r["joeynmt"])]
        ratio = "" if r["ratio"] != r["ratio"] else f"{r['ratio']:.2f}"
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(
            f"{r['figure']:<38} {cells[0]:>10} {cells[1]:>10} {ratio:>7} {r['goal']:>18} "
            f"{met:>5}  {r['load_1min']}"
        )
    if gr:
        print_growth(gr)
        plot(gr, work / "growth.png")
    full = {
        "table": rows,
        "train": tr,
        "budget": bu,
        "decode": de,
        "growth": gr,
        "flops": fl,
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
    }
    (work / "speed.json").write_text(json.dumps(full, indent=2) + "\n")
    print(f"\nwrote {work / 'speed.json'}" + (f" and {work / 'growth.png'}" if gr else ""))
    return full


# one line per row of each growth table: (table, format over the row's keys)
GROWTH_LINES = [
    (
        "beam",
        "  beam {beam_size:>2}: {ms_per_sentence:7.2f} ms/sent, "
        "{relative_to_greedy:5.2f}x greedy  (load {load[0]})",
    ),
    ("batch", "  {strategy:>6} batch {batch_size:>3}: {sentences_per_s:7.1f} sent/s"),
    (
        "source_length",
        "  {strategy:>6} source ~{mean_src_tokens:>5} tok: {ms_per_sentence:7.2f} ms/sent",
    ),
    (
        "train_length",
        "  train, target {tgt_tokens:>5} tok: {ms_per_token:.4f} ms/token "
        "({tokens_per_s:.0f} tok/s, load {load[0]})",
    ),
]


def print_growth(gr: dict) -> None:
    print("\ncost growth (ours, batch 64 unless stated):")
    for table, line in GROWTH_LINES:
        for r in gr[table]:
            print(line.format(**r))
    for r in gr.get("joey_beam", []):
        print(f"  JoeyNMT beam {r['beam_size']:>2}: {1000 / r['sentences_per_s']:7.2f} ms/sent")


def plot(gr: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    beam = sorted((r["beam_size"], r["ms_per_sentence"]) for r in gr["beam"])
    ax[0, 0].plot(*zip(*beam, strict=True), "o-", label="ours")
    ax[0, 0].plot([k for k, _ in beam], [beam[0][1] * k for k, _ in beam], ":", label="linear")
    if gr.get("joey_beam"):
        jb = [(r["beam_size"], 1000 / r["sentences_per_s"]) for r in gr["joey_beam"]]
        ax[0, 0].plot(*zip(*jb, strict=True), "s-", label="JoeyNMT")
    ax[0, 0].set(xlabel="beam width", ylabel="ms / sentence", title="decode vs beam width")
    ax[0, 0].legend()
    for strategy in ("greedy", "beam5"):
        pts = [
            (r["batch_size"], r["sentences_per_s"])
            for r in gr["batch"]
            if r["strategy"] == strategy
        ]
        ax[0, 1].plot(*zip(*pts, strict=True), "o-", label=strategy)
        pts = [
            (r["mean_src_tokens"], r["ms_per_sentence"])
            for r in gr["source_length"]
            if r["strategy"] == strategy
        ]
        ax[1, 0].plot(*zip(*pts, strict=True), "o-", label=strategy)
    ax[0, 1].set(
        xscale="log",
        xlabel="batch size (sentences)",
        ylabel="sentences / s",
        title="decode vs batch size",
    )
    ax[1, 0].set(
        xlabel="mean source length (tokens)",
        ylabel="ms / sentence",
        title="decode vs source length (batch 64)",
    )
    labels = [r["tgt_tokens"] for r in gr["train_length"]]
    ax[1, 1].bar(labels, [r["ms_per_token"] for r in gr["train_length"]])
    ax[1, 1].set(
        xlabel="target length band (tokens)",
        ylabel="ms / target token",
        title="training cost vs sentence length (4096-token batches)",
    )
    for a_ in (ax[0, 1], ax[1, 0]):
        a_.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


STAGES = {
    "prepare": prepare,
    "train": train_speed,
    "budget": budget,
    "decode": decode,
    "shared": shared,
    "growth": growth,
    "flops": flops,
    "report": report,
}


def _decode_record(res: dict, side: str, repeat: int, results: Path) -> dict:
    """A timed decode run with the speed of each search its results file reports, by label:
    greedy, beam5 (and ours' beam5-early)."""
    rows = json.loads(results.read_text())["results"]

    def label(row: dict) -> str:  # JoeyNMT's rows name only the beam width
        k = row["beam_size"]
        return row.get("strategy") or ("greedy" if k == 1 else f"beam{k}")

    res.update(
        side=side, repeat=repeat, sentences_per_s={label(r): r["sentences_per_s"] for r in rows}
    )
    return res


def main(argv: list[str]) -> None:
    a = parse_kv(argv, DEFAULTS)
    work = Path(a["work"]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "runs").mkdir(exist_ok=True)
    sys.path.insert(0, str(HERE))  # flops.py
    stages = a["stages"].split(",")
    if any(s not in STAGES for s in stages):
        sys.exit(f"error: stages={a['stages']}: each one of {', '.join(STAGES)}")
    if set(stages) & {"train", "budget", "decode", "shared"} and not Path(joey_python()).exists():
        subprocess.run(["bash", str(PEER / "setup.sh")], check=True)
    for stage in stages:
        print(f"== {stage} (load {load()})", flush=True)
        result = STAGES[stage](a, work)
        if stage != "report":
            save(work, stage, dict(result, args=a))


if __name__ == "__main__":
    main(sys.argv[1:])
