"""Recurrent source encoder: embeddings, then a (bidirectional, stacked) Elman RNN, GRU or LSTM."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt import PAD_ID

RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(
    cell: str,
    input_size: int,
    hidden_size: int,
    layers: int,
    dropout: float,
    bidirectional: bool = False,
) -> nn.RNNBase:
    """One torch RNN module of the named cell type (batch-first; dropout between layers)."""
    return RNN_CLASSES[cell](
        input_size,
        hidden_size,
        num_layers=layers,
        batch_first=True,
        dropout=dropout if layers > 1 else 0.0,
        bidirectional=bidirectional,
        **({"nonlinearity": "tanh"} if cell == "rnn" else {}),
    )


class RNNEncoder(nn.Module):
    """Encodes padded source ids into one state per position plus a sentence summary."""

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        layers: int,
        bidirectional: bool,
        cell: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.rnn = make_rnn(cell, emb_size, hidden_size, layers, dropout, bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.directions

    def forward(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor]:
        """Run the RNN over the real tokens only (packed), never over padding.

        src: (B, S) token ids, src_len: (B,) real lengths (≥ 1).
        Returns states (B, S, D·H), zero at padding, and final (B, D·H): the last layer's
        final hidden state of each direction, concatenated.
        """
        emb = self.dropout(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        # hidden: (layers·D, B, H); keep the last layer's D directions.
        last = hidden[-self.directions :]  # (D, B, H)
        final = torch.cat(list(last), dim=-1)  # (B, D·H)
        return self.dropout(states), final
