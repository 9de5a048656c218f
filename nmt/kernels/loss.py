"""The output layer fused with the training loss: logits are never held for a whole batch.

Plain teacher forcing keeps (N, V) logits, their log-softmax and its gradient alive for the
backward pass: three tensors of N·V floats (N = target tokens of the batch, V = vocabulary),
the largest of a training step (4096 × 8000 × 4 bytes = 131 MB each). Here the output layer
and the cross-entropy run over `chunk` rows at a time, and because the loss is a scalar, the
gradients of the layer's input, weight and bias are finished inside the same pass: the
backward only scales them by the incoming gradient. Same FLOPs; equal to
`F.cross_entropy(linear(x), target, reduction="sum")` up to float rounding
(tests/train/test_loss.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nmt import PAD_ID


def linear_cross_entropy(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    label_smoothing: float = 0.0,
    chunk: int = 1024,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Summed token cross-entropy of `x @ weight.T + bias` against `target`, PAD_ID ignored.

    x: (..., H) output-layer inputs, weight: (V, H), bias: (V,) or None, target: (...) ids
    with the shape of x without its last dimension. Returns a 0-dim float32 tensor. dtype
    (autocast's, which does not reach inside this function): the products' precision; the
    loss, softmax and the weight's gradient sums stay float32.
    """
    x, target = x.reshape(-1, x.size(-1)), target.reshape(-1)  # (N, H), (N,)
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias)
    ):
        return _LinearCrossEntropy.apply(x, weight, bias, target, label_smoothing, chunk, dtype)
    return _chunked(x, weight, bias, target, label_smoothing, chunk, False, dtype)[0]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, target, label_smoothing, chunk, dtype):  # type: ignore[override]
        loss, dx, dw, db = _chunked(x, weight, bias, target, label_smoothing, chunk, True, dtype)
        ctx.save_for_backward(dx, dw, db)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):  # type: ignore[override]
        dx, dw, db = ctx.saved_tensors
        return (
            (dx * grad_loss).to(dx.dtype),
            dw * grad_loss,
            None if db is None else db * grad_loss,
            None,
            None,
            None,
            None,
        )


def _chunked(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    label_smoothing: float,
    chunk: int,
    grads: bool,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """The summed loss and, with `grads`, d loss / d (x, weight, bias). x: (N, H), target: (N,).
    With dtype, the products run in it and their sums are kept in the weight's dtype."""
    n, vocab = x.size(0), weight.size(0)
    sums = weight.dtype  # the gradients' dtype: the parameters'
    if dtype is not None:
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    keep = 1.0 - label_smoothing
    loss = torch.zeros((), dtype=torch.float32, device=x.device)
    dx = torch.empty_like(x) if grads else None  # (N, H)
    # d loss / d weight, transposed: in xsᵀ·g the transposed left operand is the small xs
    # (n × H); oneDNN (nmt.kernels.onednn) ran gᵀ·xs 25% slower with 40 MB more scratch
    dw_t = weight.new_zeros(weight.size(1), vocab, dtype=sums) if grads else None  # (H, V)
    db = torch.zeros_like(bias, dtype=sums) if grads and bias is not None else None  # (V,)
    with torch.no_grad():
        for start in range(0, n, max(chunk, 1)):
            xs, ts = x[start : start + chunk], target[start : start + chunk]  # (n, H), (n,)
            real = (ts != PAD_ID).unsqueeze(1)  # (n, 1)
            logits = xs @ weight.t() if bias is None else torch.addmm(bias, xs, weight.t())
            logits = logits.float()  # (n, V)
            rows = torch.arange(ts.size(0), device=x.device)
            # −log p_t = lse − z_t; label smoothing adds ε·(lse − mean z), −Σ_k log p_k / V
            token = -keep * logits[rows, ts]  # (n,)
            if label_smoothing:
                token -= label_smoothing * logits.mean(dim=1)
            top = logits.amax(dim=1, keepdim=True)  # (n, 1)
            e = logits.sub_(top).exp_()  # (n, V), in place: exp(z − max)
            total = e.sum(dim=1, keepdim=True)  # (n, 1)
            token += (total.log() + top).squeeze(1)  # + lse
            loss += token.masked_fill(~real.squeeze(1), 0.0).sum()
            if not grads:
                continue
            # d loss / d logits = softmax − (1 − ε)·onehot − ε/V, zero at padding rows
            g = e.div_(total)  # (n, V), softmax
            g[rows, ts] -= keep
            if label_smoothing:
                g -= label_smoothing / vocab
            g = g.mul_(real).to(weight.dtype)
            dx[start : start + chunk] = g @ weight  # type: ignore[index]
            if dw_t.dtype == g.dtype:  # type: ignore[union-attr]
                dw_t.addmm_(xs.t(), g)  # type: ignore[union-attr]
            else:  # a low-precision product, summed at the parameters' precision
                dw_t += xs.t() @ g  # type: ignore[operator]
            if db is not None:
                db += g.sum(dim=0)
    return loss, dx, None if dw_t is None else dw_t.t(), db
