"""A recipe end to end: train, average, tune the search on val, report test BLEU and chrF.

    python bench/recipe.py experiment=multi30k_de_en [run=bench/work/recipes/multi30k_de_en]
        [threads=2] [average=5] [beam=5] [beams=5] [alphas=0.8,1.0,1.2]
        [word_rewards=0,0.01,0.02,0.04] [sentences=0] [json=bench/results/DATE-recipe-EXPERIMENT.json]

1. `nmt-train +experiment=EXPERIMENT hydra.run.dir=RUN` unless RUN already holds a finished
   run (its checkpoints/last.pt and no lock): then its training is taken as it stands.
2. `nmt-average run=RUN last=AVERAGE`.
3. On the val split (data.valid of the run's config): best.pt and the average, each with beam
   search at width `beam`, α = 1, no word reward; the better of the two, then, over the grid
   beams × alphas × word_rewards (each setting one beam decode of val, the same functions as
   nmt-analyze's calibration). Nothing here reads the test split.
4. The test split (data.test) translated once with the chosen checkpoint and setting, and once
   with best.pt at width `beam`, α = 1 (the untuned baseline); BLEU and chrF with sacrebleu's
   signatures. The levers' rows (what averaging and tuning bought) are on val.

sentences=N keeps the first N of val and test (a quick check of the script; 0 = all). Writes
the JSON under bench/results/ and prints the commands that reproduce the figures. A
benchmark, not a test: training takes what the experiment's train.max_minutes says.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from kvargs import parse_kv
from speed_common import cpu_info, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
DEFAULTS = {
    "experiment": "multi30k_de_en",
    "run": "",
    "threads": "2",
    "average": "5",
    "beam": "5",
    "beams": "5",
    "alphas": "0.8,1.0,1.2",
    "word_rewards": "0,0.01,0.02,0.04",
    "sentences": "0",
    "json": "",
}


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def sh(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def train(args: dict, run: Path) -> list[str]:
    """Train unless run holds a finished run; the command either way."""
    cmd = [
        str(BIN / "nmt-train"),
        f"+experiment={args['experiment']}",
        f"threads={args['threads']}",
        "progress=false",
        f"hydra.run.dir={run}",
    ]
    if (run / "checkpoints" / "last.pt").is_file() and not (run / ".lock").exists():
        print(f"{run}: trained already; taking it as it stands")
        records = sorted((run / ".hydra").glob("*/overrides.yaml"))
        if records:  # the command it was trained with, from Hydra's record of it
            import yaml

            given = yaml.safe_load(records[0].read_text())  # hydra.* overrides are not in it
            cmd = [cmd[0], *given, f"hydra.run.dir={run}"]
    else:
        sh(*cmd)
    return cmd


def training_record(run: Path) -> dict:
    """Updates, wall time and the last validation of a run, from its metrics.csv."""
    from nmt.rundir import RunDir

    rows = RunDir(run).metrics()
    valid = [r for r in rows if r["split"] == "valid"]
    train_rows = [r for r in rows if r["split"] == "train" and r.get("tokens_per_s")]
    return {
        "updates": int(rows[-1]["update"]),
        "epochs": int(rows[-1]["epoch"]),
        "minutes": round(float(rows[-1]["elapsed_s"]) / 60, 1),
        "best_valid_bleu_greedy": max(
            (float(r["bleu"]) for r in valid if r.get("bleu")), default=None
        ),
        "tokens_per_s": round(
            sum(float(r["tokens_per_s"]) for r in train_rows) / max(len(train_rows), 1)
        ),
    }


def main() -> None:
    args = parse_kv(sys.argv[1:], DEFAULTS)
    name = args["experiment"]
    run = Path(args["run"] or HERE / "work" / "recipes" / name).resolve()
    train_cmd = train(args, run)
    n = int(args["average"])
    average = run / "checkpoints" / f"average-last{n}.pt"
    average_cmd = [str(BIN / "nmt-average"), f"run={run}", f"last={n}"]
    sh(*average_cmd)

    from nmt.analysis.analyze import read_pair
    from nmt.analysis.sweep import score_references, setting_row, sweep
    from nmt.config import DecodeConfig
    from nmt.data.corpus import split_files
    from nmt.evaluate.metrics import corpus_scores
    from nmt.rundir import RunDir
    from nmt.translator import Translator

    threads = int(args["threads"])
    config = RunDir(run).config
    src, tgt = config.data.src, config.data.tgt
    limit = int(args["sentences"])
    val_src, val_ref = read_pair(*split_files(config.data.valid, src, tgt), limit)
    test_src, test_ref = read_pair(*split_files(config.data.test, src, tgt), limit)
    base = DecodeConfig(
        strategy="beam", beam_size=int(args["beam"]), length_penalty="norm", alpha=1.0
    )

    def val_data(translator: Translator):
        model, vocabs = translator.model, translator.vocabs
        return score_references(model, vocabs.src.encode(val_src), val_ref, vocabs.tgt, 64)

    levers, translators, scored = [], {}, {}
    for label, which in (("best.pt", "best"), (f"average of the last {n}", str(average))):
        translator = Translator.load(run, which, device="cpu", threads=threads)
        start = time.perf_counter()
        scored[which] = val_data(translator)  # val's references scored once per checkpoint
        row = setting_row(translator.model, translator.vocabs.tgt, scored[which], base)
        levers.append({"what": label, "checkpoint": which, **asdict(row)})
        translators[which] = translator
        print(f"val {label}: BLEU {row.bleu:.2f} ({time.perf_counter() - start:.0f} s)")
    chosen = max(levers, key=lambda r: r["bleu"])
    translator = translators[chosen["checkpoint"]]
    grid = sweep(
        translator.model,
        translator.vocabs.tgt,
        scored[chosen["checkpoint"]],
        base,
        [int(b) for b in args["beams"].split(",")],
        floats(args["alphas"]),
        word_rewards=floats(args["word_rewards"]),
    )
    best = max(grid, key=lambda r: (r.bleu, -r.beam, -r.alpha, -abs(r.word_reward)))
    levers.append(
        {"what": f"{chosen['what']}, beam × α × word reward tuned on val", **asdict(best)}
    )
    tuned = replace(base, beam_size=best.beam, alpha=best.alpha, word_reward=best.word_reward)

    def test_scores(t: Translator, decode: DecodeConfig) -> dict:
        hyps = t.translate_text(test_src, decode=decode)
        return {
            k: {"score": round(v.score, 2), "signature": v.signature}
            for k, v in corpus_scores(hyps, test_ref, ["bleu", "chrf"]).items()
        }

    report = {
        "experiment": name,
        "run": str(run),
        "training": training_record(run),
        "parameters": sum(p.numel() for p in translator.model.parameters()),
        "chosen": {"checkpoint": chosen["checkpoint"], **asdict(tuned)},
        "test": test_scores(translator, tuned),
        "test_untuned_best_pt": test_scores(translators["best"], base),
        "val_grid": [asdict(r) for r in grid],
    }
    decode_args = [
        "decode=beam",
        f"decode.beam_size={tuned.beam_size}",
        f"decode.alpha={tuned.alpha:g}",
        f"decode.word_reward={tuned.word_reward:g}",
    ]
    report["commands"] = [
        " ".join(train_cmd),
        " ".join(average_cmd),
        f"nmt-translate run={run} checkpoint={chosen['checkpoint']} {' '.join(decode_args)} "
        f"input=TEST.{src} output=hyp.{tgt}",
        f"nmt-evaluate hyp=hyp.{tgt} ref=TEST.{tgt}",
    ]
    print(f"\n{name}: {report['training']}")
    print(f"{'lever (val)':62} {'BLEU':>6} {'chrF':>6} {'len':>6}")
    for r in levers:
        print(f"{r['what']:62} {r['bleu']:6.2f} {r['chrf']:6.2f} {r['length_ratio']:6.3f}")
    for key in ("test_untuned_best_pt", "test"):
        print(f"{key}: BLEU {report[key]['bleu']['score']} chrF {report[key]['chrf']['score']}")
    print(report["test"]["bleu"]["signature"])
    for c in report["commands"]:
        print(c)
    date = datetime.date.today().isoformat()
    path = args["json"] or str(HERE / "results" / f"{date}-recipe-{name}.json")
    write_results(path, args, levers, {name: report}, {"cpu_model": cpu_info()["model"]})


if __name__ == "__main__":
    main()
