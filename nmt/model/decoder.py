"""Recurrent attention decoder (Luong-style order: RNN step, then attention on its output).

At step t: x_t = [E y_{t-1}; ã_{t-1}] (input feeding) → RNN → s_t → attention(s_t) → c_t →
ã_t = tanh(W_c [s_t; c_t] + b_c) → logits = W_o ã_t + b_o. Because attention reads the RNN output, a
decoder without input feeding runs its RNN over the whole target in one call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import PAD_ID
from nmt.errors import ConfigError
from nmt.kernels import Kernels
from nmt.model.attention import Attention
from nmt.model.encoder import make_rnn


@dataclass
class EncoderOutput:
    """What every decoder step reads from the source side."""

    values: Tensor  # (B, S, Hd) what attention averages: W_c,h h + b_c (`AttentionDecoder.values`)
    keys: Tensor  # (B, S, K) attention keys, projected once per source
    mask: Tensor  # (B, S) bool, True at real source tokens
    final: Tensor  # (B, He) encoder summary used to initialise the decoder

    def select(self, index: Tensor) -> EncoderOutput:
        """Rows picked (or repeated) along the batch dimension, e.g. to expand a beam."""
        return EncoderOutput(
            *(t.index_select(0, index) for t in (self.values, self.keys, self.mask, self.final))
        )

    @classmethod
    def cat(cls, parts: list[EncoderOutput]) -> EncoderOutput:
        """The rows of parts one after another, each source padded to the widest S (zero
        values and keys, mask False: attention gives padding no weight)."""
        return cls(
            *(cat_padded([getattr(p, name) for p in parts]) for name in ("values", "keys", "mask")),
            torch.cat([p.final for p in parts]),
        )


def cat_padded(tensors: list[Tensor]) -> Tensor:
    """The rows of tensors one after another, every dimension after the first padded with
    zeros (False) to the largest among them."""
    shape = [max(sizes) for sizes in zip(*(t.shape[1:] for t in tensors), strict=True)]

    def grown(t: Tensor) -> Tensor:
        pad = []  # F.pad's order: the last dimension first
        for size, want in reversed(list(zip(t.shape[1:], shape, strict=True))):
            pad += [0, want - size]
        return F.pad(t, pad) if any(pad) else t

    return torch.cat([grown(t) for t in tensors])


@dataclass
class DecoderState:
    """The recurrent state carried from one decoder step to the next."""

    hidden: Tensor  # (L, B, Hd)
    cell: Tensor | None  # (L, B, Hd), LSTM only
    feed: Tensor | None  # (B, Hd) last attentional vector ã, with input feeding only

    def select(self, index: Tensor) -> DecoderState:
        """Rows picked (or repeated) along the batch dimension, e.g. to reorder a beam."""
        return DecoderState(
            hidden=self.hidden.index_select(1, index),
            cell=None if self.cell is None else self.cell.index_select(1, index),
            feed=None if self.feed is None else self.feed.index_select(0, index),
        )

    @classmethod
    def cat(cls, parts: list[DecoderState]) -> DecoderState:
        """The rows of parts one after another (states of the same decoder)."""
        first = parts[0]
        return cls(
            hidden=torch.cat([p.hidden for p in parts], dim=1),
            cell=None if first.cell is None else torch.cat([p.cell for p in parts], dim=1),
            feed=None if first.feed is None else torch.cat([p.feed for p in parts]),
        )


class AttentionDecoder(nn.Module):
    """Predicts the next target token from the previous one, its state and the source."""

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        layers: int,
        cell: str,
        dropout: float,
        input_feeding: bool,
        attention: Attention,
        memory_size: int,
        tie_embeddings: bool,
        output_bias: bool = True,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.layers = layers
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        rnn_input = emb_size + (hidden_size if input_feeding else 0)
        self.rnn = make_rnn(cell, rnn_input, hidden_size, layers, dropout)
        self.attention = attention
        self.combine = nn.Linear(hidden_size + memory_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size, bias=output_bias)
        if tie_embeddings:
            if emb_size != hidden_size:
                raise ConfigError(
                    f"model.tie_embeddings=true needs model.emb_size ({emb_size}) equal to "
                    f"model.dec_hidden_size ({hidden_size})"
                )
            self.output.weight = self.embed.weight
        self.kernels = Kernels()  # how the output layer is computed (`Seq2Seq.use`)

    def initial_state(self, init: Tensor | None, batch: int) -> DecoderState:
        """The state before the first step: from the bridge (init: (B, Hd)) or zeros."""
        if init is None:
            init = self.output.weight.new_zeros(batch, self.hidden_size)
        hidden = init.unsqueeze(0).repeat(self.layers, 1, 1).contiguous()  # (L, B, Hd)
        cell = torch.zeros_like(hidden) if self.cell == "lstm" else None
        feed = init.new_zeros(batch, self.hidden_size) if self.input_feeding else None
        return DecoderState(hidden, cell, feed)

    def _run_rnn(self, x: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """x: (B, T, I) → RNN outputs (B, T, Hd) and the state after the last step."""
        if self.cell == "lstm":
            out, (h, c) = self.kernels.recur(self.rnn, x, (state.hidden, state.cell))
            return out, replace(state, hidden=h, cell=c)
        out, h = self.kernels.recur(self.rnn, x, state.hidden)
        return out, replace(state, hidden=h)

    def values(self, memory: Tensor) -> Tensor:
        """memory: (B, S, He) encoder states → what attention averages, (B, S, Hd).

        ã = tanh(W_c [s; c] + b_c) with c = Σ α h and Σ α = 1 equals
        tanh(W_c,s s + Σ α (W_c,h h + b_c)): the context half of W_c is applied once to each
        source state here instead of to every query's context, which a beam's K hypotheses
        would each repeat at every step. The same ã up to float rounding.
        """
        return F.linear(memory, self.combine.weight[:, self.hidden_size :], self.combine.bias)

    def _attend(self, enc: EncoderOutput, rnn_out: Tensor) -> tuple[Tensor, Tensor]:
        """rnn_out: (N, T, Hd) → attentional vectors ã (N, T, Hd) and weights (N, T, S).

        N is B·K for enc's B sources: rows b·K … b·K + K − 1 read source b (a beam's K
        hypotheses share one copy of their sentence's encoding); K = 1 everywhere else.
        """
        n, t, hd = rnn_out.shape
        query = rnn_out.reshape(enc.values.size(0), -1, hd)  # (B, K·T, Hd)
        context, weights = self.attention(query, enc.keys, enc.values, enc.mask)
        context, weights = context.view(n, t, hd), weights.view(n, t, -1)  # W_c,h c + b_c
        att = torch.tanh(F.linear(rnn_out, self.combine.weight[:, :hd]) + context)
        return att, weights

    def _advance(
        self, enc: EncoderOutput, state: DecoderState, emb: Tensor
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One step from embedded inputs emb (B, 1, E): ã (B, 1, Hd), state, weights (B, 1, S)."""
        x = torch.cat([emb, state.feed.unsqueeze(1)], dim=-1) if self.input_feeding else emb
        rnn_out, state = self._run_rnn(x, state)
        att, weights = self._attend(enc, rnn_out)
        if self.input_feeding:
            state = replace(state, feed=att.squeeze(1))
        return att, state, weights

    def step(
        self, enc: EncoderOutput, state: DecoderState, y_prev: Tensor
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """y_prev: (N,) previous tokens → logits (N, V), new state, attention (N, S).

        The state has N = B·K rows for enc's B (K hypotheses a source: see `_attend`)."""
        emb = self.kernels.dropout(self.dropout, self.embed(y_prev.unsqueeze(1)))  # (B, 1, E)
        att, state, weights = self._advance(enc, state, emb)
        return (
            self.logits(self.kernels.dropout(self.dropout, att).squeeze(1)),
            state,
            weights.squeeze(1),
        )

    def logits(self, x: Tensor) -> Tensor:
        """x: (..., Hd) attentional vectors → the output layer's logits W_o x + b_o (..., V)."""
        return self.kernels.linear(self.output, x)

    def forward(
        self, enc: EncoderOutput, state: DecoderState, tgt_in: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Teacher forcing up to the output layer. tgt_in: (B, T) inputs (BOS, y_1 … y_{T-1})
        → attentional vectors ã (B, T, Hd), dropout applied, and attention (B, T, S)."""
        emb = self.kernels.dropout(self.dropout, self.embed(tgt_in))  # (B, T, E)
        if self.input_feeding:
            atts, weights = [], []
            # split, not emb[:, t]: the backward of T slices would zero-fill and add T
            # full-size (B, T, E) gradients; split's backward is a single concatenation
            for emb_t in emb.split(1, dim=1):
                att, state, w = self._advance(enc, state, emb_t)
                atts.append(att)
                weights.append(w)
            att, attn = torch.cat(atts, dim=1), torch.cat(weights, dim=1)
        else:  # no dependence between steps besides the RNN: one kernel call
            rnn_out, _ = self._run_rnn(emb, state)
            att, attn = self._attend(enc, rnn_out)
        return self.kernels.dropout(self.dropout, att), attn  # (B, T, Hd), (B, T, S)
