"""What each training-side lever buys (issue 22's lever table): a recipe trained again with
one setting changed, every variant for the same number of updates, scored on val.

    python bench/levers.py [experiment=multi30k_de_en] [updates=800] [valid_every=200]
        [variants=all|NAME,NAME] [jobs=2] [beam=5] [sentences=0] [work=bench/work/levers]
        [json=bench/results/DATE-levers-EXPERIMENT.json]

Each variant is `nmt-train +experiment=EXPERIMENT` with its overrides, train.max_updates=UPDATES
and no time limit, `jobs` of them at a time with threads=1 each (so a slower neighbour costs
time, not updates: the comparison is at equal updates). Then every variant's best.pt (chosen by
greedy val BLEU, as the recipe does) decodes val with beam `beam`, α = 1, no word reward, and
the first two runs (the recipe and the recipe with another seed) decode val once more as an
ensemble. Nothing here reads a test split; sentences=N scores the first N of val only (a quick
check of the script; 0 = all). A run directory that already holds the finished
variant is taken as it stands. A benchmark, not a test: 8 variants of 600 updates took 107
minutes on 2 cores of an AMD EPYC with bf16 (2026-12-03).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from pathlib import Path

from kvargs import parse_kv
from recipe import training_record
from speed_common import write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
DEFAULTS = {
    "experiment": "multi30k_de_en",
    "updates": "800",
    "valid_every": "200",
    "variants": "all",
    "jobs": "2",
    "beam": "5",
    "sentences": "0",
    "work": str(HERE / "work" / "levers"),
    "json": "",
}
# (name, what changed, overrides); the first is the recipe, the second its seed twin (the
# spread between the two is the noise every other row is read against)
VARIANTS = [
    ("recipe", "the recipe as it is", []),
    ("seed2", "the recipe, another seed", ["seed=2"]),
    ("ls0", "no label smoothing (0.1 → 0)", ["optim.label_smoothing=0"]),
    ("dropout01", "dropout 0.3 → 0.1", ["model.dropout=0.1"]),
    ("lstm", "LSTM cells instead of GRU", ["model.cell=lstm"]),
    ("layers2", "2 encoder and 2 decoder layers", ["model.enc_layers=2", "model.dec_layers=2"]),
    ("vocab4k", "joint vocabulary 8k → 4k", ["data.vocab_size=4000"]),
    ("separate", "separate 8k vocabularies per side", ["data.joint_vocab=false"]),
    # run later on 2026-12-03, beside the recipe again (README "Results": the same figures)
    (
        "tied",
        "tied target embeddings (emb 256 → 512)",
        ["model.tie_embeddings=true", "model.emb_size=512"],
    ),
    ("constlr", "no learning-rate schedule (plateau → none)", ["optim.scheduler=none"]),
    ("worddrop", "word dropout 0.1 (source and decoder inputs)", ["model.word_dropout=0.1"]),
]


def train_command(args: dict, run: Path, overrides: list[str]) -> list[str]:
    every = args["valid_every"]
    return [
        str(BIN / "nmt-train"),
        f"+experiment={args['experiment']}",
        "threads=1",
        "progress=false",
        f"train.max_updates={args['updates']}",
        "train.max_minutes=0",
        f"train.valid_every={every}",
        f"train.save_every={every}",
        *overrides,
        f"hydra.run.dir={run}",
    ]


def finished(run: Path, updates: int) -> bool:
    if not (run / "checkpoints" / "last.pt").is_file() or (run / ".lock").exists():
        return False
    record = training_record(run)  # a run stopped before its last update is not finished
    return record["updates"] >= updates and record["best_valid_bleu_greedy"] is not None


def train_all(args: dict, chosen: list, work: Path) -> dict[str, list[str]]:
    """Train every chosen variant, `jobs` at a time; the commands."""
    commands, queue, running = {}, [], []
    for name, _, overrides in chosen:
        run = work / name
        commands[name] = train_command(args, run, overrides)
        if finished(run, int(args["updates"])):
            print(f"{run}: trained already; taking it as it stands", flush=True)
        else:
            queue.append((name, run))
    while queue or running:
        while queue and len(running) < int(args["jobs"]):
            name, run = queue.pop(0)
            subprocess.run(["rm", "-rf", str(run)], check=True)
            run.parent.mkdir(parents=True, exist_ok=True)
            print("+", " ".join(commands[name]), flush=True)
            log = open(work / f"{name}.log", "w")  # noqa: SIM115 (closed when it ends)
            proc = subprocess.Popen(commands[name], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            running.append((name, proc, log))
        time.sleep(5)
        for item in [r for r in running if r[1].poll() is not None]:
            name, proc, log = item
            log.close()
            running.remove(item)
            if proc.returncode:
                raise SystemExit(f"{name} failed ({proc.returncode}); see {work / name}.log")
            print(f"{name}: done", flush=True)
    return commands


def main() -> None:
    args = parse_kv(sys.argv[1:], DEFAULTS)
    work = Path(args["work"]).resolve() / args["experiment"]
    names = args["variants"].split(",") if args["variants"] != "all" else None
    chosen = [v for v in VARIANTS if names is None or v[0] in names]
    commands = train_all(args, chosen, work)

    from nmt.analysis.analyze import read_pair
    from nmt.config import DecodeConfig
    from nmt.data.corpus import split_files
    from nmt.evaluate.metrics import corpus_scores
    from nmt.rundir import RunDir
    from nmt.translator import Translator

    config = RunDir(work / chosen[0][0]).config
    val_files = split_files(config.data.valid, config.data.src, config.data.tgt)
    val_src, val_ref = read_pair(*val_files, int(args["sentences"]))
    decode = DecodeConfig(
        strategy="beam", beam_size=int(args["beam"]), length_penalty="norm", alpha=1.0
    )

    def score(translator: Translator) -> dict:
        start = time.perf_counter()
        hyps = translator.translate_text(val_src, decode=decode)
        scores = corpus_scores(hyps, val_ref, ["bleu", "chrf"])
        return {
            "bleu": round(scores["bleu"].score, 2),
            "chrf": round(scores["chrf"].score, 2),
            "signature": scores["bleu"].signature,
            "decode_s": round(time.perf_counter() - start, 1),
        }

    rows = []
    for name, what, overrides in chosen:
        run = work / name
        translator = Translator.load(run, "best", device="cpu", threads=2)
        record = training_record(run)
        rows.append(
            {
                "variant": name,
                "what": what,
                "overrides": overrides,
                **score(translator),
                "parameters": sum(p.numel() for p in translator.model.parameters()),
                **record,
                "s_per_update": round(record["minutes"] * 60 / record["updates"], 2),
            }
        )
        print(f"{name}: val BLEU {rows[-1]['bleu']} ({what})", flush=True)
    if len(chosen) >= 2 and [v[0] for v in chosen[:2]] == ["recipe", "seed2"]:
        runs = [work / "recipe", work / "seed2"]
        translator = Translator.load(runs, "best", device="cpu", threads=2)
        rows.append(
            {"variant": "ensemble", "what": "ensemble of the two seeds", **score(translator)}
        )
        commands["ensemble"] = [f"nmt-translate run=[{runs[0]},{runs[1]}] decode=beam"]
        print(f"ensemble: val BLEU {rows[-1]['bleu']}", flush=True)

    base = rows[0]["bleu"]
    print(f"\n{args['experiment']}, {args['updates']} updates each, val, beam {args['beam']}, α 1")
    print(f"{'variant':10} {'what':40} {'BLEU':>6} {'Δ':>6} {'chrF':>6} {'greedy':>7} {'s/upd':>6}")
    for r in rows:
        greedy = f"{r['best_valid_bleu_greedy']:.2f}" if "best_valid_bleu_greedy" in r else ""
        print(
            f"{r['variant']:10} {r['what']:40} {r['bleu']:6.2f} {r['bleu'] - base:+6.2f} "
            f"{r['chrf']:6.2f} {greedy:>7} {r.get('s_per_update', '')!s:>6}"
        )
    print(rows[0]["signature"])
    date = datetime.date.today().isoformat()
    path = args["json"] or str(HERE / "results" / f"{date}-levers-{args['experiment']}.json")
    write_results(path, args, rows, {"commands": commands})


if __name__ == "__main__":
    main()
