"""Decoding speed of a trained JoeyNMT 2.3.0 model: run in JoeyNMT's own venv by bench/speed.py.

    .venv/bin/python decode.py CONFIG BEAMS JSON HYP_DIR [THREADS]

CONFIG is a config written from config.yaml.in whose data.test names the source-only test
set and whose model_dir holds the trained model (latest.ckpt). For each beam width in BEAMS
(comma-separated; 1 = JoeyNMT's greedy search) the test set is decoded once after a warm-up
batch from the dev set, timing JoeyNMT's own `predict` (batching, search, detokenisation),
not model or data loading, as bench/beam_speed.py times ours. Writes sentences/s, mean output
length in subword tokens and the hypotheses (HYP_DIR/hyp.greedy.txt, hyp.b<K>.txt).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from joeynmt.config import load_config, parse_global_args
from joeynmt.prediction import predict, prepare


def main(argv: list[str]) -> None:
    config, beams, out_json, hyp_dir = argv[:4]
    if len(argv) > 4 and int(argv[4]):
        torch.set_num_threads(int(argv[4]))
    cfg = load_config(Path(config))
    args = parse_global_args(cfg, rank=0, mode="test")
    model, _, dev_data, test_data = prepare(args, rank=0, mode="test")
    test_data.reset_indices(random_subset=-1)
    rows = []
    for k in (int(b) for b in beams.split(",")):
        test_args = args.test._replace(beam_size=k, n_best=1)

        def run(data, test_args=test_args):
            return predict(
                model=model,
                data=data,
                device=args.device,
                n_gpu=args.n_gpu,
                compute_loss=False,
                normalization=args.train.normalization,
                num_workers=0,
                args=test_args,
                autocast=args.autocast,
            )

        # warm-up: one batch of the dev set (JoeyNMT can subsample dev, not test)
        dev_data.reset_indices(random_subset=test_args.batch_size)
        run(dev_data)
        start = time.perf_counter()
        _, _, hyps, hyps_raw, _, _ = run(test_data)
        seconds = time.perf_counter() - start
        out_len = sum(len(h) for h in hyps_raw) / len(hyps_raw)  # EOS included, as ours counts
        rows.append(
            {
                "beam_size": k,
                "sentences": len(hyps),
                "seconds": round(seconds, 3),
                "sentences_per_s": round(len(hyps) / seconds, 2),
                "mean_output_tokens": round(out_len, 2),
            }
        )
        name = "hyp.greedy.txt" if k == 1 else f"hyp.b{k}.txt"
        Path(hyp_dir).mkdir(parents=True, exist_ok=True)
        (Path(hyp_dir) / name).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
        print(f"joeynmt beam {k}: {rows[-1]['sentences_per_s']} sent/s", flush=True)
    report = {
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "results": rows,
    }
    Path(out_json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
