"""Two CPU fast paths that need no other library: the encoder RNN run one direction at a
time, and the output layer computed a block of vocabulary columns at a time; and the plain
path of the encoder RNN they are measured against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# Output-layer columns computed at a time by `blocked_linear`
VOCAB_BLOCK = 1024

# The kernels nn.RNN / nn.GRU / nn.LSTM call: (input, hx, weights, has_biases, layers,
# dropout, train, bidirectional, batch_first) → (output, h_n[, c_n]).
_KERNELS = {"RNN_TANH": torch._VF.rnn_tanh, "GRU": torch._VF.gru, "LSTM": torch._VF.lstm}
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def packed_rnn(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """The plain path of `Kernels.rnn`: torch's module over a packed batch. x: (B, S, I),
    lengths: (B,) ≥ 1 → states (B, S, D·H) zero at padding, final (B, D·H)."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, hidden = rnn(packed)
    states, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    if isinstance(hidden, tuple):  # LSTM: (h, c)
        hidden = hidden[0]
    directions = 2 if rnn.bidirectional else 1  # hidden: (layers·D, B, H)
    return states, torch.cat(list(hidden[-directions:]), dim=-1)


def rnn_by_direction(
    rnn: nn.RNNBase, x: Tensor, lengths: Tensor, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """What `Kernels.rnn` computes over a packed batch, computed without packing.

    torch's CPU kernels slice a packed batch step by step, and the backward of each slice
    writes a zero-filled copy of the whole sequence: cost quadratic in S (14% of a training
    step at S = 24). Here each direction of each layer runs unidirectionally over the padded
    batch, the backward one over every sentence reversed within its own length, so padding
    only ever follows the real tokens and never reaches a state that is used.
    x: (B, S, I), lengths: (B,) ≥ 1 → states (B, S, D·H) zero at padding, final (B, D·H);
    with `dtype` (autocast's), x and the weights are cast to it first.
    """
    if dtype is not None:
        x = x.to(dtype)
    directions = 2 if rnn.bidirectional else 1
    steps = torch.arange(x.size(1), device=x.device)  # (S,)
    last = (lengths.to(x.device) - 1).unsqueeze(1)  # (B, 1)
    real = steps.unsqueeze(0) <= last  # (B, S)
    # reversed position of each step within its sentence (padding stays where it is)
    flip = torch.where(real, last - steps, steps)  # (B, S), an involution
    names = _WEIGHT_NAMES if rnn.bias else _WEIGHT_NAMES[:2]
    for layer in range(rnn.num_layers):
        outs, finals = [], []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            weights = [getattr(rnn, name + suffix).to(dtype or x.dtype) for name in names]
            inp = _gather_steps(x, flip) if direction else x
            out = _unidirectional(rnn, inp, weights)  # (B, S, H)
            finals.append(out.gather(1, last.unsqueeze(-1).expand(-1, 1, out.size(-1))))
            outs.append(_gather_steps(out, flip) if direction else out)
        x = torch.cat(outs, dim=-1) * real.unsqueeze(-1)  # (B, S, D·H), zero at padding
        if layer < rnn.num_layers - 1:
            x = F.dropout(x, rnn.dropout, rnn.training)
    return x, torch.cat(finals, dim=-1).squeeze(1)


def _unidirectional(rnn: nn.RNNBase, x: Tensor, weights: list[Tensor]) -> Tensor:
    """One direction of one layer from zero state. x: (B, S, I) → outputs (B, S, H)."""
    h0 = x.new_zeros(1, x.size(0), rnn.hidden_size)  # (1, B, H)
    hx = (h0, h0) if rnn.mode == "LSTM" else h0
    kernel = _KERNELS[rnn.mode]
    return kernel(x, hx, weights, rnn.bias, 1, 0.0, rnn.training, False, True)[0]


def rnn_from_state(
    rnn: nn.RNNBase,
    x: Tensor,
    hx: Tensor | tuple[Tensor, Tensor],
    dtype: torch.dtype,
    weights: list[Tensor],
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """rnn(x, hx) in dtype: torch's RNN modules run in their weights' dtype, which autocast
    leaves alone. x: (B, T, I) batch-first, hx: (L, B, H) or an LSTM's (h, c), weights: the
    module's flat weights in dtype → outputs (B, T, H) and the new state, in dtype."""
    hx = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
    args = (rnn.bias, rnn.num_layers, rnn.dropout, rnn.training, rnn.bidirectional, True)
    out = _KERNELS[rnn.mode](x.to(dtype), hx, weights, *args)
    return out[0], (out[1], out[2]) if rnn.mode == "LSTM" else out[1]


def _gather_steps(x: Tensor, index: Tensor) -> Tensor:
    """x: (B, S, H), index: (B, S) → x[b, index[b, t]] for every b, t."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))


def blocked_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """F.linear(x, weight, bias) VOCAB_BLOCK output columns at a time, each block written in
    place into one (N, V) tensor: the same products and sums, so the same values up to float
    rounding. x: (N, H), weight: (V, H), bias: (V,) or None → (N, V).

    On the AMD EPYC of bench/README.md one MKL (N × 512)·(512 × 8000) call ran 10–35% slower
    than the same products in blocks; `nmt.kernels.probe` measures whether it pays here.
    """
    vocab = weight.size(0)
    if vocab <= 2 * VOCAB_BLOCK:
        return F.linear(x, weight, bias)
    out = x.new_empty(x.size(0), vocab)
    for start in range(0, vocab, VOCAB_BLOCK):
        cols = slice(start, start + VOCAB_BLOCK)
        if bias is None:
            torch.mm(x, weight[cols].t(), out=out[:, cols])
        else:
            torch.addmm(bias[cols], x, weight[cols].t(), out=out[:, cols])
    return out
