"""A hand-built stand-in for Seq2Seq with known best outputs, for search and analysis tests."""

from __future__ import annotations

import torch

from nmt import PAD_ID
from nmt.kernels import Kernels
from nmt.model.decoder import DecoderState, EncoderOutput
from nmt.model.seq2seq import shift_right

VOCAB = 7  # PAD, UNK, BOS, EOS and the words 4, 5, 6


class BigramModel(torch.nn.Module):
    """A stand-in for Seq2Seq whose next token depends on the previous one only.

    probs[prev][token] = P(token | prev); unlisted tokens get (almost) nothing. It has the
    whole model API the analysis uses: encode, init_state, step, forward, logits and score,
    and the kernels (the plain ones) decoding runs its batches in.
    """

    kernels = Kernels()

    def __init__(self, probs: dict[int, dict[int, float]], vocab: int = VOCAB) -> None:
        super().__init__()
        table = torch.full((vocab, vocab), 1e-6)
        for prev, row in probs.items():
            for token, p in row.items():
                table[prev, token] = p
        self.table = (table / table.sum(1, keepdim=True)).log()  # (V, V): row = previous token

    def encode(self, src, src_len):
        zeros = torch.zeros(src.size(0), src.size(1), 1)
        return EncoderOutput(zeros, zeros, src != PAD_ID, torch.zeros(src.size(0), 1))

    def init_state(self, enc):
        return DecoderState(torch.zeros(1, enc.mask.size(0), 1), None, None)

    def step(self, enc, state, y_prev):
        attn = enc.mask.float() / enc.mask.sum(1, keepdim=True)  # (B, S)
        # N = B·K hypotheses, K consecutive per source (Seq2Seq.step's contract)
        attn = attn.repeat_interleave(y_prev.size(0) // attn.size(0), dim=0)  # (N, S)
        return self.table[y_prev], state, attn

    def forward(self, src, src_len, tgt):
        states = self.table[shift_right(tgt)]  # (B, T, V): already log-probabilities
        mask = (src != PAD_ID).float()
        attn = (mask / mask.sum(1, keepdim=True)).unsqueeze(1).expand(-1, tgt.size(1), -1)
        return states, attn

    def logits(self, x):
        return x  # forward's states are the log-probabilities themselves

    def score(self, src, src_len, tgt, tgt_len):
        states, _ = self(src, src_len, tgt)
        token = self.logits(states).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)  # (B, T)
        positions = torch.arange(tgt.size(1))
        token = token.masked_fill(positions.unsqueeze(0) >= tgt_len.unsqueeze(1), 0.0)
        return token.sum(dim=1), token
