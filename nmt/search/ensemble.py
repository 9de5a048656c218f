"""Several trained models decoded as one: the average of their log-probabilities.

At every target position each model k gives log p_k(y | x, y_<t) over the one target
vocabulary they share; the ensemble's distribution is their average, renormalised:

    log p(y | x, y_<t) = log_softmax_y( (1/K) Σ_k log p_k(y | x, y_<t) ),

the normalised geometric mean of the K distributions (a product of experts), so log P(y|x) of
the ensemble is still a log-probability that sums to 1 over y at every step. `Ensemble` has
Seq2Seq's decoding API (encode, init_state, step, score), so greedy and beam search, the one
Scorer and nmt-analyze use it unchanged: the models may differ in cell and size, not in
vocabularies. Attention is the models' mean (its rows still sum to 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.model.decoder import DecoderState, EncoderOutput
from nmt.model.seq2seq import Seq2Seq, token_logprobs


@dataclass
class EnsembleEncoding:
    """Each model's EncoderOutput of the same B sources."""

    members: tuple[EncoderOutput, ...]

    def select(self, index: Tensor) -> EnsembleEncoding:
        """Rows picked (or repeated) along the batch dimension, in every member."""
        return EnsembleEncoding(tuple(e.select(index) for e in self.members))

    @classmethod
    def cat(cls, parts: list[EnsembleEncoding]) -> EnsembleEncoding:
        """The rows of parts one after another, in every member (EncoderOutput.cat)."""
        return cls(
            tuple(EncoderOutput.cat(list(m)) for m in zip(*(p.members for p in parts), strict=True))
        )


@dataclass
class EnsembleState:
    """Each model's DecoderState of the same N hypotheses."""

    members: tuple[DecoderState, ...]

    def select(self, index: Tensor) -> EnsembleState:
        """Rows picked (or repeated) along the batch dimension, in every member."""
        return EnsembleState(tuple(s.select(index) for s in self.members))

    @classmethod
    def cat(cls, parts: list[EnsembleState]) -> EnsembleState:
        """The rows of parts one after another, in every member (DecoderState.cat)."""
        return cls(
            tuple(DecoderState.cat(list(m)) for m in zip(*(p.members for p in parts), strict=True))
        )


class Ensemble(nn.Module):
    """K ≥ 2 models over one source and one target vocabulary, scored as one model."""

    def __init__(self, models: Sequence[Seq2Seq]) -> None:
        super().__init__()
        if len(models) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(models)}")
        self.models = nn.ModuleList(models)

    @property
    def kernels(self):
        """The first model's kernels: the thread tuner the members share (Translator.load)."""
        return self.models[0].kernels

    def _mean(self, log_probs: list[Tensor]) -> Tensor:
        """K tensors (..., V) of log-probabilities → the ensemble's (..., V)."""
        return torch.log_softmax(torch.stack(log_probs).mean(dim=0), dim=-1)

    def encode(self, src: Tensor, src_len: Tensor) -> EnsembleEncoding:
        """src: (B, S) ids ending in EOS, padded; src_len: (B,) → every model's encoding."""
        return EnsembleEncoding(tuple(m.encode(src, src_len) for m in self.models))

    def init_state(self, enc: EnsembleEncoding) -> EnsembleState:
        """Every model's decoder state before the first target token."""
        return EnsembleState(
            tuple(m.init_state(e) for m, e in zip(self.models, enc.members, strict=True))
        )

    def step(
        self, enc: EnsembleEncoding, state: EnsembleState, y_prev: Tensor
    ) -> tuple[Tensor, EnsembleState, Tensor]:
        """y_prev: (N,) → the ensemble's log P(y_t | x, y_<t) (N, V), new states, the mean
        attention (N, S)."""
        steps = [
            m.step(e, s, y_prev)
            for m, e, s in zip(self.models, enc.members, state.members, strict=True)
        ]
        log_probs = self._mean([lp for lp, _, _ in steps])  # (N, V)
        attn = torch.stack([a for _, _, a in steps]).mean(dim=0)  # (N, S)
        return log_probs, EnsembleState(tuple(s for _, s, _ in steps)), attn

    def forward(self, src: Tensor, src_len: Tensor, tgt: Tensor) -> tuple[list[Tensor], Tensor]:
        """Teacher forcing. tgt: (B, T) → each model's attentional vectors [(B, T, Hd_k)] (the
        members may differ in size: there is no one ã) and the mean attention (B, T, S)."""
        outs = [m(src, src_len, tgt) for m in self.models]
        return [x for x, _ in outs], torch.stack([a for _, a in outs]).mean(dim=0)

    def score(
        self, src: Tensor, src_len: Tensor, tgt: Tensor, tgt_len: Tensor
    ) -> tuple[Tensor, Tensor]:
        """log P(y|x) of given targets under the ensemble: per sentence (B,) and per token
        (B, T), 0 at padding; equal to the sums that `step` gives along the same targets."""
        states, _ = self(src, src_len, tgt)  # K × (B, T, Hd_k)
        log_probs = self._mean(
            [
                torch.log_softmax(m.logits(x).float(), dim=-1)
                for m, x in zip(self.models, states, strict=True)
            ]
        )  # (B, T, V)
        return token_logprobs(log_probs, tgt, tgt_len)

    def int8(self) -> Ensemble:
        """The members' int8 decoding copies (Seq2Seq.int8), as an ensemble."""
        return Ensemble([m.int8() for m in self.models])

    def in_dtype(self, dtype: torch.dtype) -> Ensemble:
        """The members' copies in dtype (Seq2Seq.in_dtype), as an ensemble."""
        return Ensemble([m.in_dtype(dtype) for m in self.models])
