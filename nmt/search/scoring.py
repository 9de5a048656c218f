"""The one scorer: the number search ranks by, and the number given sequences get.

objective(y) = log P(y|x) / lp(T) + γ·T, where T is the number of target tokens INCLUDING
the final EOS (the same T everywhere: search, rescoring, analysis), and
- lp = 1             (length_penalty=none),
- lp = T^α           (length_penalty=norm; α = 0 is raw log-probability),
- lp = ((5+T)/6)^α   (length_penalty=gnmt, Wu et al. 2016).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.errors import ConfigError
from nmt.model import Seq2Seq

PENALTIES = ("none", "norm", "gnmt")


@dataclass(frozen=True)
class Scorer:
    """Length-normalised objective over log-probabilities from the model."""

    length_penalty: str = "none"
    alpha: float = 0.0
    word_reward: float = 0.0

    def __post_init__(self) -> None:
        if self.length_penalty not in PENALTIES:
            raise ConfigError(
                f"decode.length_penalty={self.length_penalty!r} is not one of: "
                + ", ".join(PENALTIES)
            )
        if self.alpha < 0:
            raise ConfigError(f"decode.alpha={self.alpha} must be 0 or more")

    def objective(self, logprob: Tensor, length: Tensor) -> Tensor:
        """logprob: (N,) summed log P, length: (N,) tokens including EOS → objective (N,)."""
        length = length.to(logprob.dtype)
        if self.length_penalty == "norm":
            logprob = logprob / length.clamp(min=1) ** self.alpha
        elif self.length_penalty == "gnmt":
            logprob = logprob / ((5.0 + length) / 6.0) ** self.alpha
        return logprob + self.word_reward * length

    @torch.inference_mode()
    def score(
        self, model: Seq2Seq, src: Tensor, src_len: Tensor, tgt: Tensor, tgt_len: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Score given targets (B, T) ending in EOS: objective (B,), log P (B,), tokens (B, T)."""
        logprob, token = model.score(src, src_len, tgt, tgt_len)
        return self.objective(logprob, tgt_len), logprob, token
