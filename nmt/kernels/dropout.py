"""Dropout whose random mask costs less to draw on the CPU: `Kernels.dropout`'s fast path.

torch's CPU dropout draws one Bernoulli variable per element (`bernoulli_`, about 10 ns
each): its forward and backward on the (141, 29, 1024) encoder states of one Multi30k batch
took 47-65 ms on 2 cores of an Intel Xeon without AMX, this path's 10-13 ms; the comparison
model trained 1.06-1.07x faster with it (bench/README.md, "The same Intel Xeon without AMX:
dropout, bf16, load"). Here one 64-bit draw of numpy's PCG64 gives
four elements their 16 random bits each: an element is kept when its bits fall below
round((1 − p)·2¹⁶), so the keep probability is (1 − p) to within 2⁻¹⁷, and kept elements
are scaled by the inverse of that exact probability: the output's expectation is x, as
with torch's. Each call seeds its generator from torch's global stream, so
`torch.manual_seed` and a resumed run's restored RNG state reproduce the masks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

KEEP_LEVELS = 1 << 16  # the mask's resolution: 16 random bits per element


def keep_mask(
    shape: torch.Size | tuple[int, ...],
    p: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A float32 (shape) tensor of 0 (probability ≈ p) and 1 / P(kept) elsewhere.

    The numpy generator's seed comes from `generator` (torch's global one by default).
    p: in (0, 1).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"keep_mask needs 0 < p < 1, got p={p}")
    kept = max(1, round((1.0 - p) * KEEP_LEVELS))  # bit patterns that keep an element
    n = math.prod(shape)
    seed = int(torch.randint(2**62, (), generator=generator))
    bits = np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.int16)[:n]
    # int16 views of uniform bits are uniform over [−2¹⁵, 2¹⁵): `kept` values lie below
    # `below`. Integers, exact in float32, so below − bits is ≥ 1 exactly when bits < below:
    # clamped to [0, 1] it is the keep mask (arithmetic, 2× faster than a comparison's bools)
    below = kept - KEEP_LEVELS // 2
    keep = torch.from_numpy(bits).to(torch.float32).neg_().add_(below).clamp_(0.0, 1.0)
    return keep.mul_(KEEP_LEVELS / kept).view(shape)


def fast_dropout(x: Tensor, p: float) -> Tensor:
    """Training-mode dropout of x at rate p in (0, 1): x · mask, the gradient mask · g."""
    return _Dropout.apply(x, p)


def _masked(x: Tensor, mask: Tensor) -> Tensor:
    """x · mask in x's dtype; in bf16 / fp16 the product is formed in float32 and rounded
    once, as torch's dropout scales: a scale rounded to bf16 (1/0.7 → 1.4297) would bias
    every kept element alike."""
    return x * mask if x.dtype == mask.dtype else (x * mask).to(x.dtype)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):  # type: ignore[override]
        mask = keep_mask(x.shape, p)
        ctx.save_for_backward(mask)
        return _masked(x, mask)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return _masked(grad, mask), None
