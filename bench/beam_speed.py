"""Decoding speed of greedy and beam search on a trained run: sentences per second.

    python bench/beam_speed.py run=DIR input=FILE json=OUT.json \
        [beams=1,5,10] [batches=1,16,64] [limit=0] [repeat=1] [hyp_dir=DIR] [threads=auto] \
        [length_penalty=norm] [alpha=1.0] [stops=exact] [checkpoint=best] [device=cpu]
        [kernels=auto] [precision=fp32] [quantize=none]

Trains nothing. Each strategy (greedy, then beam search at each width) translates the
first `limit` lines of `input` (0 = all) at each batch size, after one warm-up batch,
`repeat` times, keeping the fastest (the least disturbed by other processes);
the table and the JSON give sentences/s and each beam's time per sentence relative to
greedy's at the same batch size. `stops` lists the beam's stopping rules to time
(decode.stop: exact, early); a rule other than exact labels its rows beam<K>-<rule>. With
hyp_dir, the translations made at the largest batch size are written there as
hyp.greedy.txt, hyp.b<K>.txt (hyp.b<K>-<rule>.txt), ready for nmt-evaluate.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from kvargs import parse_kv

from nmt.config import DecodeConfig
from nmt.data.corpus import read_lines
from nmt.translator import Translator

DEFAULTS = {
    "run": "",
    "input": "",
    "json": "",
    "beams": "1,5,10",
    "batches": "1,16,64",
    "limit": "0",
    "repeat": "1",
    "hyp_dir": "",
    "threads": "auto",  # auto | N | 0, as nmt-translate's threads=
    "length_penalty": "norm",
    "alpha": "1.0",
    "stops": "exact",
    "checkpoint": "best",
    "device": "cpu",
    "kernels": "auto",  # nmt/kernels: auto | plain | blas | onednn
    "precision": "fp32",  # decode.precision: fp32 | bf16 | fp16
    "quantize": "none",  # decode.quantize: none | int8
}


def parse_args(argv: list[str]) -> dict[str, str]:
    """key=value arguments, as the nmt commands take them; unknown or missing keys exit 2."""
    args = parse_kv(argv, DEFAULTS)
    for key in ("run", "input", "json"):
        if not args[key]:
            sys.exit(f"error: {key}=... is required (see the docstring of {__file__})")
    return args


def configs(args: dict[str, str]) -> list[tuple[str, DecodeConfig]]:
    """(label, decode config) for greedy and each beam width, before the batch size is set."""
    low = {"precision": args["precision"], "quantize": args["quantize"]}
    out = [("greedy", DecodeConfig(strategy="greedy", **low))]
    for stop in args["stops"].split(","):
        for k in (int(b) for b in args["beams"].split(",")):
            beam = DecodeConfig(
                strategy="beam",
                beam_size=k,
                length_penalty=args["length_penalty"],
                alpha=float(args["alpha"]),
                stop=stop,
                **low,
            )
            out.append((f"beam{k}" if stop == "exact" else f"beam{k}-{stop}", beam))
    return out


def timed(
    translator: Translator, lines: list[str], decode: DecodeConfig, repeat: int
) -> tuple[float, list]:
    """Fewest seconds to translate lines in `repeat` runs after a warm-up batch; translations."""
    translator.translate_text(lines[: decode.batch_size], decode=decode)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        hyps = translator.translate_text(lines, decode=decode)
        best = min(best, time.perf_counter() - start)
    return best, hyps


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    translator = Translator.load(
        args["run"], args["checkpoint"], args["device"], args["threads"], args["kernels"]
    )
    lines = [line for line in read_lines(args["input"]) if line.strip()]
    if int(args["limit"]):
        lines = lines[: int(args["limit"])]
    batches = [int(b) for b in args["batches"].split(",")]
    rows, greedy_s, load_at_start = [], {}, os.getloadavg()
    print(f"{len(lines)} sentences, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    print(f"{'strategy':>11} {'batch':>5} {'sent/s':>8} {'ms/sent':>8} {'x greedy':>8}")
    for label, decode in configs(args):
        for batch in batches:
            decode.batch_size = batch
            seconds, hyps = timed(translator, lines, decode, int(args["repeat"]))
            greedy_s.setdefault(batch, seconds)  # greedy runs first
            row = {
                "strategy": label,
                "beam_size": decode.beam_size,
                "batch_size": batch,
                "seconds": round(seconds, 3),
                "sentences_per_s": round(len(lines) / seconds, 2),
                "ms_per_sentence": round(1000 * seconds / len(lines), 3),
                "relative_to_greedy": round(seconds / greedy_s[batch], 3),
                "decode": asdict(decode),
            }
            rows.append(row)
            print(
                f"{label:>11} {batch:>5} {row['sentences_per_s']:>8.1f} "
                f"{row['ms_per_sentence']:>8.2f} {row['relative_to_greedy']:>8.2f}"
            )
            if args["hyp_dir"] and batch == max(batches):
                out = Path(args["hyp_dir"])
                out.mkdir(parents=True, exist_ok=True)
                name = f"hyp.{label.replace('beam', 'b')}.txt"
                (out / name).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    report = {
        "run": str(Path(args["run"]).resolve()),
        "input": str(Path(args["input"]).resolve()),
        "sentences": len(lines),
        "threads": args["threads"],
        "tuner": translator.model.kernels.tuner.describe()
        if translator.model.kernels.tuner
        else None,
        "repeat": int(args["repeat"]),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "results": rows,
    }
    Path(args["json"]).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
