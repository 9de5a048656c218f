"""Attention mechanisms: additive (Bahdanau) and multiplicative (Luong dot and general).

Each one projects the encoder states into keys once per source sentence (`keys`) and then
scores any number of decoder queries against them (`forward`). Weights are a softmax over
the real source positions only: padding gets exactly zero weight, and the weights of each
query sum to 1. The context is c = Σ_i α_i h_i.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nmt.errors import ConfigError


class Attention(nn.Module):
    """The shared interface: keys once per source, then weights and context per query."""

    def keys(self, memory: Tensor) -> Tensor:
        """memory: (B, S, He) encoder states → keys (B, S, K) used by every decoder step."""
        raise NotImplementedError

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """query: (B, T, Hd), keys: (B, S, K) → unnormalised scores (B, T, S)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Attend with T queries at once (T = 1 for a decoding step).

        query: (B, T, Hd), keys: (B, S, K), values: (B, S, D) (the encoder states, or any
        linear map of them), mask: (B, S) True at real source tokens. Returns the context
        Σ α v (B, T, D) and weights (B, T, S).
        """
        scores = self.scores(query, keys)  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = torch.bmm(weights, values)  # (B, T, D)
        return context, weights


class BahdanauAttention(Attention):
    """Additive attention: score(q, h) = vᵀ tanh(W_q q + W_k h).

    Computed as 2vᵀ σ(2 W_q q + 2 W_k h), which is the same score plus the constant Σv
    (tanh x = 2σ(2x) − 1), so the same weights: a softmax ignores a shift shared by every
    position. σ is the one that is cheap: torch's CPU tanh costs about 3× its sigmoid, and
    this (B, T, S, A) step is the only elementwise work in the decoder that grows with S.
    """

    def __init__(self, query_size: int, memory_size: int, size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, size, bias=False)
        self.query_proj = nn.Linear(query_size, size, bias=False)
        self.energy = nn.Linear(size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return 2.0 * self.key_proj(memory)  # (B, S, A): 2 W_k h

    # Without autograd (decoding) the (B, T, S, A) tensor is made this many elements at a
    # time, so a beam never holds it whole (40 MB at 64 sentences × 5, S = 60, A = 512).
    CHUNK = 1 << 20

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """query: (B, T, Hd), keys from `keys` → vᵀ tanh(W_q q + W_k h) + Σv: (B, T, S)."""
        q = 2.0 * self.query_proj(query)  # (B, T, A)
        v = 2.0 * self.energy.weight.squeeze(0)  # (A,)
        b, t, a = q.shape
        step = max(1, self.CHUNK // (t * keys.size(1) * a))  # sentences per chunk
        if torch.is_grad_enabled() or step >= b:
            return self._scores(q, keys, v)
        return torch.cat(
            [self._scores(q[i : i + step], keys[i : i + step], v) for i in range(0, b, step)]
        )

    @staticmethod
    def _scores(q: Tensor, keys: Tensor, v: Tensor) -> Tensor:
        """q: (B, T, A), keys: (B, S, A), v: (A,) → vᵀ σ(q + k): (B, T, S)."""
        hidden = (q.unsqueeze(2) + keys.unsqueeze(1)).sigmoid_()  # (B, T, S, A), a new tensor
        return hidden @ v


class LuongDotAttention(Attention):
    """Multiplicative attention without parameters: score(q, h) = q·h."""

    def keys(self, memory: Tensor) -> Tensor:
        return memory  # (B, S, He), He == Hd

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)


class LuongGeneralAttention(LuongDotAttention):
    """Multiplicative attention with a bilinear map: score(q, h) = q·W h."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, Hd)


def build_attention(kind: str, query_size: int, memory_size: int, size: int) -> Attention:
    """The attention named by `attention.type`, sized for the decoder and encoder."""
    if kind == "bahdanau":
        return BahdanauAttention(query_size, memory_size, size)
    if kind == "luong_general":
        return LuongGeneralAttention(query_size, memory_size)
    if kind == "luong_dot":
        if query_size != memory_size:
            raise ConfigError(
                f"attention.type=luong_dot needs model.dec_hidden_size ({query_size}) equal to "
                f"the encoder output size ({memory_size} = model.hidden_size × directions); "
                "change one of them or use attention=luong_general"
            )
        return LuongDotAttention()
    raise ConfigError(f"attention.type={kind!r} is not one of bahdanau, luong_dot, luong_general")
