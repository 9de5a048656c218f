"""Speed against JoeyNMT 2.3.0, side by side on this machine: the one command of issue 7.

    python bench/speed.py [stages=prepare,train,budget,decode,shared,growth,flops,report]
        [work=bench/work] [threads=2] [warmup=10] [updates=60] [repeat=2]
        [budget_min=10] [beams=1,2,5,10,20] [peer_growth=false] [results=bench/results]
        [busy=0] [opennmt=true] [precision=fp32]

Stages (each writes work/results/<stage>.json, so one can be rerun alone; `report` reads
them all and prints the table, writes work/speed.json and work/growth.png):

- prepare: Multi30k de→en as plain text in work/data, one joint 8k SentencePiece model
  (trained by our code) and its piece list, the vocabulary both toolkits use.
- train:   `warmup` + `updates` updates of each toolkit, ours then JoeyNMT's (then
  OpenNMT-py 3.5.1's where peers/opennmt/setup.sh made its venv, opennmt=true), `repeat`
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

Each figure is stored with the load average (/proc/loadavg) at its start and end. With
busy=N every stage but prepare and report runs beside N processes spinning a core each and
writes work/results/<stage>-busy.json; the report then adds each toolkit's loaded ÷ idle
training speed (issue 23: ours ≥ 0.4 of idle and ≥ 2.5× JoeyNMT's loaded figure). With
precision=bf16 the train stage trains ours at `train.precision=bf16` (JoeyNMT stays
fp32) and writes work/results/train-bf16.json; the report adds ours bf16 against JoeyNMT fp32
(issue 23's goal: ≥ 5×) and against our fp32 train stage. Every
run that measured (a stage other than prepare and report) ends by writing
`results`/<date>-<cpu>.json (bench/results/ by default; <cpu> a slug such as
intel-xeon-processor-avx512-amx; `-2`, `-3`, ... after it where the day's file exists, so a
committed result is never replaced): the CPU model and flags,
torch's and the peers' versions, the threads, the load at the run's start, at each stage and
at its end, every figure and ratio of the table from what work/results holds, the stages
not measured yet, and those stages' results.

The stages live beside this file: speed_train.py (prepare, train, budget, flops),
speed_decode.py (decode, shared), speed_growth.py (growth), speed_report.py (report; the
growth curves drawn by speed_plot.py), and what they share in speed_common.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kvargs import parse_kv
from speed_common import HERE, PEER, busy, joey_python, load, save
from speed_decode import decode, shared
from speed_growth import growth
from speed_report import report, write_run
from speed_train import budget, flops, ours_budget, prepare, train_speed

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
    "results": str(HERE / "results"),
    "busy": "0",  # stages run beside this many processes spinning a core each
    "opennmt": "true",  # train: OpenNMT-py too, where bench/peers/opennmt/setup.sh made it
    # train: ours at train.precision=this (JoeyNMT stays fp32); not fp32: train-<it>.json
    "precision": "fp32",
}
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
__all__ = ["STAGES", "main", "ours_budget"]  # ours_budget: bench/README.md calls it directly


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
    loads = {"start": load(), "stages": {}}  # 1, 5 and 15-minute load averages
    spinning = int(a["busy"])
    for stage in stages:
        loads["stages"][stage] = load()
        print(f"== {stage} (load {loads['stages'][stage]}, {spinning} busy)", flush=True)
        with busy(spinning if stage not in ("prepare", "report") else 0):
            result = STAGES[stage](a, work)
        if stage != "report":  # beside busy processes: <stage>-busy.json, beside the idle one
            name = stage + (
                f"-{a['precision']}" if stage == "train" and a["precision"] != "fp32" else ""
            )
            save(work, name + ("-busy" if spinning else ""), dict(result, args=a, busy=spinning))
    if set(stages) - {"prepare", "report"}:  # re-printing the table records nothing new
        write_run(a, work, loads)


if __name__ == "__main__":
    main(sys.argv[1:])
