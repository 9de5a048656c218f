"""The physical limit: this machine's fp32 matmul rate, and the model's FLOPs per target token.

    python bench/flops.py [threads=2] [json=OUT.json] [run=DIR | spm=FILE data=PREFIX]

`matmul_rate` times fp32 matmuls at a large square size and at the shapes the comparison
model multiplies (a training batch of ~4096 tokens, ~250 sentences), best of several runs,
through both of torch's CPU paths: torch.mm (its BLAS, MKL on x86) and oneDNN's packed linear
(nmt.kernels.onednn, what our decoding may use). The fastest of all is the machine's limit:
on the AMD EPYC of bench/README.md MKL runs its AVX2 kernels and oneDNN is about 2.3x faster. `model_flops`
counts matmul FLOPs (multiply-add = 2) two ways: analytically, per *real* target token (the
useful work: packed source, no padding), and with torch's FlopCounterMode over real
training batches (what actually runs, padding included). Backward is counted as twice the
forward, the usual convention (FlopCounterMode counts the backward it sees).
bench/speed.py divides its training rate by these to report model FLOPs utilisation (MFU).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from kvargs import parse_kv
from torch.utils.flop_counter import FlopCounterMode

from nmt.config import AttentionConfig, ModelConfig
from nmt.data.batching import TokenBatchSampler, make_batch
from nmt.kernels.onednn import PackedLinear, onednn_available
from nmt.model import Seq2Seq

# the comparison model of issue 7 (conf/model/gru.yaml + conf/attention/bahdanau.yaml)
MODEL = dict(
    cell="gru",
    emb_size=256,
    hidden_size=512,
    enc_layers=1,
    bidirectional=True,
    dec_hidden_size=512,
    dec_layers=1,
    dropout=0.3,
    input_feeding=True,
    bridge=True,
    tie_embeddings=False,
)


@torch.no_grad()  # not inference_mode: PackedLinear leaves inference tensors to F.linear
def mm_rate(
    m: int, k: int, n: int, backend: str = "mm", repeat: int = 5, min_s: float = 0.3
) -> float:
    """Best GFLOP/s of (m, k) @ (k, n) in fp32 over `repeat` timed bursts; backend "mm"
    (torch.mm) or "onednn" (a PackedLinear, its weight packed once)."""
    a, w = torch.randn(m, k), torch.randn(n, k)
    if backend == "onednn":
        packed = PackedLinear()

        def product() -> None:
            packed(a, w)
    else:
        out = torch.empty(m, n)

        def product() -> None:
            torch.mm(a, w.t(), out=out)

    product()
    flops = 2.0 * m * k * n
    calls = max(1, int(min_s * 50e9 / flops))  # ~min_s seconds at 50 GFLOP/s
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            product()
        best = min(best, (time.perf_counter() - start) / calls)
    return flops / best / 1e9


def matmul_rate(threads: int) -> dict:
    """GFLOP/s at a square size and at the comparison model's shapes; the best is the limit."""
    torch.set_num_threads(threads)
    shapes = {
        "square 2048": (2048, 2048, 2048),
        "output layer, 4096 tok x 512 -> 8000": (4096, 512, 8000),
        "decoder GRU input, 256 x 768 -> 1536": (256, 768, 1536),
        "decoder GRU hidden, 256 x 512 -> 1536": (256, 512, 1536),
        "encoder GRU input, 4096 tok x 256 -> 1536": (4096, 256, 1536),
        "beam step output, 320 x 512 -> 8000": (320, 512, 8000),
    }
    rates = {name: round(mm_rate(*shape), 1) for name, shape in shapes.items()}
    out = {"threads": threads, "gflops": rates, "mm_limit_gflops": max(rates.values())}
    if onednn_available():
        onednn = {name: round(mm_rate(*shape, "onednn"), 1) for name, shape in shapes.items()}
        out["onednn_gflops"] = onednn
        rates = {**rates, **{f"onednn {name}": rate for name, rate in onednn.items()}}
    return {**out, "limit_gflops": max(rates.values())}


def analytic_flops(cfg: ModelConfig, attn: int, vocab: int, src_len: float, tgt_len: float) -> dict:
    """Forward matmul FLOPs per real target token for mean lengths (EOS included)."""
    e, h, hd = cfg.emb_size, cfg.hidden_size, cfg.dec_hidden_size
    d = 2 if cfg.bidirectional else 1
    he = d * h
    gates = 3 if cfg.cell == "gru" else 4 if cfg.cell == "lstm" else 1
    ratio = src_len / tgt_len  # source tokens per target token
    enc = ratio * (d * 2 * gates * h * (e + h) + 2 * he * attn)  # RNN + keys, per source token
    rnn_in = e + (hd if cfg.input_feeding else 0)
    dec = (
        2 * gates * hd * (rnn_in + hd)  # decoder RNN
        + 2 * hd * attn  # query projection
        + src_len * (2 * attn + 2 * he)  # energies v.tanh(.) and the context sum
        + 2 * (hd + he) * hd  # combine [s; c] -> attentional vector
        + 2 * hd * vocab  # output layer
    )
    forward = enc + dec
    return {
        "forward_per_target_token": forward,
        "encoder_share": enc / forward,
        "output_layer_share": 2 * hd * vocab / forward,
        "train_per_target_token": 3 * forward,  # backward ~ 2 x forward
    }


def counted_flops(model: Seq2Seq, batches: list) -> dict:
    """FlopCounterMode over forward + backward of real batches, per real target token."""
    model.train()
    total, tokens = 0, 0
    for batch in batches:
        with FlopCounterMode(display=False) as counter:
            states, _ = model(batch.src, batch.src_len, batch.tgt)  # (B, T, Hd)
            logits = model.logits(states)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), batch.tgt.flatten(), ignore_index=0, reduction="sum"
            )
            loss.backward()
        total += counter.get_total_flops()
        tokens += batch.ntokens
        model.zero_grad(set_to_none=True)
    return {"train_per_target_token": total / tokens, "batches": len(batches)}


def model_flops(src_ids: list[list[int]], tgt_ids: list[list[int]], vocab: int) -> dict:
    """Both counts for the comparison model on this data (its length statistics)."""
    cfg = ModelConfig(**MODEL)
    attention = AttentionConfig(type="bahdanau", size=512)
    src_len = sum(len(s) + 1 for s in src_ids) / len(src_ids)
    tgt_len = sum(len(t) + 1 for t in tgt_ids) / len(tgt_ids)
    out = {
        "mean_src_tokens": round(src_len, 2),
        "mean_tgt_tokens": round(tgt_len, 2),
        "analytic": analytic_flops(cfg, attention.size, vocab, src_len, tgt_len),
    }
    torch.manual_seed(0)
    model = Seq2Seq.build(cfg, attention, vocab, vocab)
    sampler = TokenBatchSampler(
        [len(s) for s in src_ids], [len(t) for t in tgt_ids], 4096, shuffle=True, seed=0
    )
    index = sampler.batches()[:3]
    batches = [make_batch([src_ids[i] for i in b], [tgt_ids[i] for i in b], b) for b in index]
    out["counted"] = counted_flops(model, batches)
    return out


def load_pairs(spm: str, prefix: str) -> tuple[list[list[int]], list[list[int]], int]:
    """Encoded training pairs (ids without EOS) and the vocabulary size."""
    from nmt.data.corpus import read_parallel
    from nmt.data.tokenizer import Tokenizer

    tok = Tokenizer.load(spm)
    corpus = read_parallel(prefix, "de", "en", False)
    return tok.encode(corpus.src), tok.encode(corpus.tgt), tok.vocab_size


def main(argv: list[str]) -> None:
    args = parse_kv(argv, {"threads": "2", "json": "", "spm": "", "data": ""})
    report = {"matmul": matmul_rate(int(args["threads"]))}
    if args["spm"] and args["data"]:
        src, tgt, vocab = load_pairs(args["spm"], args["data"])
        report["model"] = model_flops(src, tgt, vocab)
    print(json.dumps(report, indent=2))
    if args["json"]:
        Path(args["json"]).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
