"""Start-up micro-benchmarks: which way of computing the model's products is fastest here.

Run once per process and shape (cached): about 0.2 s for the output layer; the training
products' first run through `OneDNNMatmul` adds about 1.5 s of torch's one-time set-up of a
Python dispatch mode (measured on 2 cores of an Intel Xeon). On fixed values from a
private generator (the global random stream is left alone: a resumed run's dropout must
match the uninterrupted run's). A candidate other than the first, simplest one is taken only
when it is clearly faster (`MARGIN`), so that noise on a busy machine does not flip the
choice from one run to the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.kernels.cpu import blocked_linear, packed_rnn, rnn_by_direction
from nmt.kernels.dropout import fast_dropout
from nmt.kernels.onednn import (
    OneDNNMatmul,
    PackedLinear,
    onednn_available,
    onednn_matmul_available,
)
from nmt.kernels.precision import DTYPES

# a later candidate must take at most this fraction of the first one's time to be chosen
MARGIN = 0.95
REPEATS = 10
DECODE_ROWS = 80  # output-layer rows of a decoding step: 16 sentences × a beam of 5
ENCODE_ROWS, ENCODE_STEPS = 16, 24  # a decoding batch's sources: sentences × positions
TRAIN_ROWS = 1024  # rows of a training product: a chunk of a batch's target tokens
# below this many multiply-adds (rows × the weight's size: a decoding step's output layer,
# a training chunk's input projection) a product takes microseconds: timing it measures noise,
# so the first, simplest way is kept unmeasured (and a small model, a test's say, computes the
# same in every process). 80 rows × a 1M-weight output layer; training's products from a
# hidden size of 166 up (1024 × 3h²; an earlier gate of 3h² ≥ 1M weights left the hidden
# size 512 of the comparison model on torch's BLAS unmeasured: 1.23× slower training on AMD)
MIN_MEASURED = DECODE_ROWS << 20


def _training_unmeasured(hidden: int) -> bool:
    """Whether training's products at this hidden size (a chunk's input projection,
    TRAIN_ROWS × 3h²) are too small to time: its probes then keep their first choice."""
    return TRAIN_ROWS * 3 * hidden * hidden < MIN_MEASURED


def _fixed(*shape: int, generator: torch.Generator) -> Tensor:
    return torch.empty(*shape).uniform_(-0.1, 0.1, generator=generator)


def _fastest(candidates: dict[str, Callable[[], object]]) -> tuple[str, dict[str, float]]:
    """The name of the fastest call (the first unless another is clearly faster) and each
    one's best time in ms over REPEATS rounds, interleaved so that load hits all alike."""
    best = dict.fromkeys(candidates, float("inf"))
    for run in candidates.values():  # warm-up: oneDNN builds its kernel at the first call
        run()
    for _ in range(REPEATS):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    first = next(iter(candidates))
    fastest = min(best, key=best.get)
    choice = fastest if best[fastest] <= MARGIN * best[first] else first
    return choice, {name: round(1e3 * t, 3) for name, t in best.items()}


@cache
def fastest_logits(hidden: int, vocab: int, threads: int) -> tuple[str, dict[str, float]]:
    """plain | blocked | onednn: the fastest output layer (hidden → vocab) when decoding."""
    if DECODE_ROWS * hidden * vocab < MIN_MEASURED:
        return "plain", {}
    g = torch.Generator().manual_seed(0)
    x, weight, bias = (
        _fixed(DECODE_ROWS, hidden, generator=g),
        _fixed(vocab, hidden, generator=g),
        _fixed(vocab, generator=g),
    )
    candidates: dict[str, Callable[[], object]] = {
        "plain": lambda: F.linear(x, weight, bias),
        "blocked": lambda: blocked_linear(x, weight, bias),
    }
    if onednn_available():
        packed = PackedLinear()
        candidates["onednn"] = lambda: packed(x, weight, bias)
    with torch.no_grad():
        return _fastest(candidates)


@cache
def fastest_gemm(hidden: int, threads: int) -> tuple[str, dict[str, float]]:
    """blas | onednn: the faster library for training's products at this hidden size: an
    RNN's input projection, its step, and a weight gradient (a transposed left operand)."""
    if _training_unmeasured(hidden):
        return "blas", {}
    candidates = {"blas": _training_products(hidden, torch.float32, nullcontext)}
    if onednn_matmul_available():
        candidates["onednn"] = _training_products(hidden, torch.float32, OneDNNMatmul)
    with torch.no_grad():
        return _fastest(candidates)


@cache
def bf16_products(hidden: int, threads: int) -> dict[str, float]:
    """ms of training's products at this hidden size (`fastest_gemm`'s) in fp32 and in bf16,
    {} below MIN_MEASURED. A CPU with AVX512-BF16 but no AMX can multiply bf16 slower than
    fp32: 2 cores of such an Intel Xeon ran torch's bf16 products at 170-200 GFLOP/s against
    fp32's 256-359 (2026-12-04), and bf16 training at 0.8x fp32's speed."""
    if _training_unmeasured(hidden):
        return {}
    candidates = {
        dtype: _training_products(hidden, DTYPES[dtype], nullcontext) for dtype in ("fp32", "bf16")
    }
    with torch.no_grad():
        return _fastest(candidates)[1]


def _training_products(
    hidden: int, dtype: torch.dtype, mode: Callable[[], AbstractContextManager]
) -> Callable[[], None]:
    """A call of training's products at this hidden size in dtype, under mode: an RNN's input
    projection, its step and a weight gradient (a transposed left operand)."""
    g = torch.Generator().manual_seed(0)
    x = _fixed(TRAIN_ROWS, hidden, generator=g).to(dtype)
    step = _fixed(TRAIN_ROWS // 8, hidden, generator=g).to(dtype)
    weight = _fixed(3 * hidden, hidden, generator=g).to(dtype)
    grad = _fixed(TRAIN_ROWS, 3 * hidden, generator=g).to(dtype)

    def run() -> None:
        with mode():
            F.linear(x, weight)
            F.linear(step, weight)
            torch.mm(x.t(), grad)

    return run


@cache
def fastest_encoder(
    mode: str, input_size: int, hidden: int, layers: int, bidirectional: bool, threads: int
) -> tuple[str, dict[str, float]]:
    """by_direction | packed: the faster way to run an encoder RNN (torch's mode name: GRU,
    LSTM, RNN_TANH) where no gradient flows, on a decoding batch of sources of mixed lengths.
    by_direction exists for training's backward (nmt.kernels.cpu); without one, on an AMD
    EPYC (AVX512-BF16), torch's packed kernel ran 30% faster in one run at 32 sentences of up
    to 32 tokens, but only 5% at this probe's shape (within MARGIN: by_direction kept) and
    greedy decoding of 512 sentences was within noise (2026-12-03)."""
    if ENCODE_ROWS * ENCODE_STEPS * 3 * hidden * (input_size + hidden) < MIN_MEASURED:
        return "by_direction", {}
    g = torch.Generator().manual_seed(0)
    module = {"GRU": nn.GRU, "LSTM": nn.LSTM, "RNN_TANH": nn.RNN}[mode]
    with torch.random.fork_rng(devices=[]):  # its initialisation draws from the global stream
        rnn = module(input_size, hidden, layers, batch_first=True, bidirectional=bidirectional)
    with torch.no_grad():
        for weight in rnn.parameters():
            weight.copy_(_fixed(*weight.shape, generator=g))
        x = _fixed(ENCODE_ROWS, ENCODE_STEPS, input_size, generator=g)
        lengths = torch.linspace(ENCODE_STEPS // 2, ENCODE_STEPS, ENCODE_ROWS).long()
        return _fastest(
            {
                "by_direction": lambda: rnn_by_direction(rnn, x, lengths),
                "packed": lambda: packed_rnn(rnn, x, lengths),
            }
        )


@cache
def fastest_dropout(hidden: int, threads: int) -> tuple[str, dict[str, float]]:
    """plain | fast: the faster training dropout (nmt.kernels.dropout), forward and backward,
    on encoder states of this hidden size (both directions) for TRAIN_ROWS source tokens.
    Both draw from the global stream, restored afterwards."""
    if _training_unmeasured(hidden):
        return "plain", {}
    g = torch.Generator().manual_seed(0)
    x = _fixed(TRAIN_ROWS, 2 * hidden, generator=g).requires_grad_()
    grad = _fixed(TRAIN_ROWS, 2 * hidden, generator=g)
    with torch.random.fork_rng(devices=[]):
        return _fastest(
            {
                "plain": lambda: F.dropout(x, 0.3, True).backward(grad),
                "fast": lambda: fast_dropout(x, 0.3).backward(grad),
            }
        )
