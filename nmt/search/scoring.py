"""The one scorer: the number search ranks by, and the number given sequences get.

objective(y) = log P(y|x) / lp(T) + γ·T, where T is the number of target tokens INCLUDING
the final EOS (the same T everywhere: search, rescoring, analysis), and
- lp = 1             (length_penalty=none),
- lp = T^α           (length_penalty=norm; α = 0 is raw log-probability),
- lp = ((5+T)/6)^α   (length_penalty=gnmt, Wu et al. 2016).
A hypothesis cut at the length limit has no EOS; its T is its token count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.model import Seq2Seq


@dataclass(frozen=True)
class Scorer:
    """Length-normalised objective over log-probabilities from the model.

    The settings are trusted (nmt.config_checks.validate_decode checks a decode config's).
    """

    length_penalty: str = "none"  # none | norm | gnmt (module docstring)
    alpha: float = 0.0  # ≥ 0
    word_reward: float = 0.0

    @classmethod
    def from_config(cls, decode) -> Scorer:
        """The scorer a DecodeConfig (or its DictConfig) describes."""
        return cls(decode.length_penalty, float(decode.alpha), float(decode.word_reward))

    def objective(self, logprob: Tensor, length: Tensor) -> Tensor:
        """logprob: (N,) summed log P, length: (N,) tokens including EOS → objective (N,)."""
        length = length.to(logprob.dtype)
        if self.length_penalty == "norm":
            logprob = logprob / length.clamp(min=1) ** self.alpha
        elif self.length_penalty == "gnmt":
            logprob = logprob / ((5.0 + length) / 6.0) ** self.alpha
        return logprob + self.word_reward * length

    def bound(self, logprob: Tensor, shortest: Tensor, longest: Tensor) -> Tensor:
        """The best objective any extension of a partial hypothesis can still reach.

        logprob: (N,) log P of the prefix; shortest, longest: (N,) the final lengths T still
        possible → (N,). Extending a prefix only adds log-probs ≤ 0, and the objective rises
        with log P at every fixed T (lp > 0), so no completion of length T beats
        objective(logprob, T): the bound is the max of that over the possible T. With γ ≥ 0
        that max is at T = longest; with a word penalty (γ < 0) it is searched for.
        """
        if self.word_reward >= 0 or logprob.numel() == 0:
            # lp(T) never falls with T (α ≥ 0) and logprob ≤ 0, so neither term falls
            return self.objective(logprob, longest)
        lengths = torch.arange(1, int(longest.max()) + 1, device=logprob.device)  # (L,)
        grid = self.objective(
            logprob.unsqueeze(1).expand(-1, lengths.numel()),
            lengths.unsqueeze(0).expand(logprob.numel(), -1),
        )  # (N, L)
        possible = (lengths >= shortest.unsqueeze(1)) & (lengths <= longest.unsqueeze(1))
        return grid.masked_fill(~possible, float("-inf")).amax(dim=1)

    @torch.inference_mode()
    def score(
        self, model: Seq2Seq, src: Tensor, src_len: Tensor, tgt: Tensor, tgt_len: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Score given targets (B, T) ending in EOS: objective (B,), log P (B,), tokens (B, T).

        tgt_len: (B,) lengths including EOS; a target cut at the length limit (no EOS) is
        scored over its tokens alone, as search reports it.
        """
        logprob, token = model.score(src, src_len, tgt, tgt_len)
        return self.objective(logprob, tgt_len), logprob, token
