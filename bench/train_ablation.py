"""What each training speed change buys: the current code against the same code with one
change undone, on the issue-7 comparison model and real Multi30k batches.

    python bench/train_ablation.py [work=bench/work] [sentences=2000] [threads=2]
        [rounds=2] [variants=current,...] [json=bench/work/ablation.json]

Needs `bench/speed.py stages=prepare` first (the text and the SentencePiece model in work).
Each variant runs in a process of its own (so its peak RSS is its own), over the same
sentences (the first `sentences` training pairs, every batch once, one warm-up batch not
timed); rounds alternate the order (A B C … then … C B A) and the figure is the median.
Variants:

- `current`: what nmt trains with now (`kernels=auto`: the libraries measured at start-up);
- `blas-matmul`: `kernels=blas`, the matrix products in torch's own BLAS (MKL on x86);
- `onednn-matmul`: `kernels=onednn`, the matrix products in oneDNN (`OneDNNMatmul`);
- `plain`: `kernels=plain`: no fast path of nmt/kernels at all;
- `packed-encoder`: the encoder's packed-sequence path (what cuDNN runs) on CPU as well;
- `plain-loss`: `optim.loss_chunk=0`: whole-batch logits, log-softmax, cross-entropy;
- `slice-steps`: teacher forcing reads `emb[:, t:t+1]` per step instead of one split;
- `source-first`: batches bucketed by source length first (target padding 13% vs 0.5%);
- `adam-default`: torch's default (foreach) Adam instead of the fused kernel;
- `plain-dropout`: torch's dropout instead of `nmt.kernels.dropout`'s cheaper mask;
- `bf16`: `train.precision=bf16` (autocast; fp32 on a CPU without AVX512-BF16/AMX): not an
  undone change but the one that is offered, timed beside the others.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from kvargs import parse_kv

HERE = Path(__file__).resolve().parent
VARIANTS = [
    "current",
    "blas-matmul",
    "onednn-matmul",
    "plain",
    "packed-encoder",
    "plain-loss",
    "slice-steps",
    "source-first",
    "adam-default",
    "plain-dropout",
    "bf16",
]
DEFAULTS = {
    "work": str(HERE / "work"),
    "sentences": "2000",
    "threads": "2",
    "rounds": "2",
    "json": str(HERE / "work" / "ablation.json"),
    "variant": "",  # run this one variant in this process (how the rounds call it)
    "variants": ",".join(VARIANTS),
}


def _slice_steps_forward(self, enc, state, tgt_in):
    """nmt's AttentionDecoder.forward as it was: one slice of the embeddings per step."""
    emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
    atts, weights = [], []
    for t in range(tgt_in.size(1)):
        att, state, w = self._advance(enc, state, emb[:, t : t + 1])
        atts.append(att)
        weights.append(w)
    return self.dropout(torch.cat(atts, dim=1)), torch.cat(weights, dim=1)


def run_variant(variant: str, work: Path, sentences: int, threads: int) -> dict:
    """Train over the sentences once with this variant; tokens/s and peak RSS (this process)."""
    from nmt.config import AttentionConfig, ModelConfig, OptimConfig
    from nmt.data.batching import TokenBatchSampler, make_batch
    from nmt.data.tokenizer import Tokenizer
    from nmt.kernels import select
    from nmt.model import Seq2Seq
    from nmt.model.decoder import AttentionDecoder
    from nmt.train.loss import batch_loss
    from nmt.train.optim import build_optimizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tok = Tokenizer.load(work / "spm.model")
    text = {
        lang: (work / "data" / f"train.{lang}").read_text(encoding="utf-8").splitlines()
        for lang in ("de", "en")
    }
    src, tgt = tok.encode(text["de"][:sentences]), tok.encode(text["en"][:sentences])
    # ModelConfig's defaults are the comparison model: bi-GRU 512, emb 256, GRU decoder 512,
    # input feeding, bridge, dropout 0.3
    net = Seq2Seq.build(ModelConfig(), AttentionConfig(type="bahdanau", size=512), 8000, 8000)
    net.train()
    optim = OptimConfig(loss_chunk=0 if variant == "plain-loss" else OptimConfig.loss_chunk)
    # what the trainer selects (nmt/kernels), or the variant's kernels
    name = {"blas-matmul": "blas", "onednn-matmul": "onednn", "plain": "plain"}.get(variant, "auto")
    cpu, output = torch.device("cpu"), net.decoder.output
    precision = "bf16" if variant == "bf16" else "fp32"
    kernels, measured = select(name, cpu, output, optim.loss_chunk, True, None, precision)
    net.use(kernels)
    if variant == "adam-default":
        optimizer = torch.optim.Adam(net.parameters(), lr=optim.lr)
    else:
        optimizer = build_optimizer(net, optim)
    if variant == "packed-encoder":
        kernels.rnn_path = "packed"
    if variant == "plain-dropout":
        kernels.dropout_path = "plain"
    if variant == "slice-steps":
        net.decoder.forward = _slice_steps_forward.__get__(net.decoder, AttentionDecoder)
    src_lens, tgt_lens = [len(s) for s in src], [len(t) for t in tgt]
    if variant == "source-first":  # the sort key is (second, first); cost is symmetric
        src_lens, tgt_lens = tgt_lens, src_lens
    batches = TokenBatchSampler(src_lens, tgt_lens, 4096, shuffle=True, seed=1).batches()
    if len(batches) < 2:
        sys.exit(f"error: sentences={sentences} make {len(batches)} batch; give more sentences")

    def train(index: list[int]) -> int:
        batch = make_batch([src[i] for i in index], [tgt[i] for i in index], index)
        with kernels.training():
            loss = batch_loss(net, net, batch, 0.0)
            (loss / batch.ntokens).backward()
        torch.nn.utils.clip_grad_norm_(list(net.parameters()), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return batch.ntokens

    train(batches[0])  # warm-up, not timed
    start, tokens = time.perf_counter(), 0
    for index in batches[1:]:
        tokens += train(index)
    seconds = time.perf_counter() - start
    padded = sum(len(b) * (max(len(tgt[i]) for i in b) + 1) for b in batches)
    real = sum(len(tgt[i]) + 1 for b in batches for i in b)
    return {
        "variant": variant,
        "kernels": kernels.describe(),
        "measured": measured,
        "tokens_per_s": round(tokens / seconds, 1),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_padding": round(1 - real / padded, 4),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> None:
    args = parse_kv(argv, DEFAULTS)
    work, sentences, threads = Path(args["work"]), int(args["sentences"]), int(args["threads"])
    if args["variant"]:  # one variant, in this process: print its JSON line
        print(json.dumps(run_variant(args["variant"], work, sentences, threads)), flush=True)
        return
    if not (work / "spm.model").is_file():
        sys.exit(f"error: {work}/spm.model not found; run bench/speed.py stages=prepare first")
    variants = args["variants"].split(",")
    if unknown := set(variants) - set(VARIANTS):
        sys.exit(f"error: variants: {', '.join(sorted(unknown))} unknown; known: {VARIANTS}")
    if "current" not in variants:
        sys.exit("error: variants must hold current, the figure the others are compared with")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(int(args["rounds"])):
        for variant in variants if r % 2 == 0 else variants[::-1]:
            cmd = [sys.executable, __file__, f"variant={variant}", *argv]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r + 1}: {runs[variant][-1]}", flush=True)
    base = statistics.median(x["tokens_per_s"] for x in runs["current"])
    table = []
    print(f"\n{'variant':<15} {'tok/s':>7} {'current ÷ it':>12} {'peak RSS MB':>11} {'tgt pad':>7}")
    for variant, rs in runs.items():
        rate = statistics.median(x["tokens_per_s"] for x in rs)
        rss = statistics.median(x["peak_rss_mb"] for x in rs)
        row = {
            "variant": variant,
            "tokens_per_s": rate,
            "speedup_of_current": round(base / rate, 3),
            "peak_rss_mb": rss,
            "target_padding": rs[0]["target_padding"],
            "runs": rs,
        }
        table.append(row)
        print(
            f"{variant:<15} {rate:7.0f} {row['speedup_of_current']:11.2f}x "
            f"{rss:11.0f} {row['target_padding']:7.1%}"
        )
    Path(args["json"]).write_text(json.dumps({"args": args, "table": table}, indent=1) + "\n")
    print(f"\nwrote {args['json']}")


if __name__ == "__main__":
    main(sys.argv[1:])
