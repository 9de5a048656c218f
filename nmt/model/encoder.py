"""Recurrent source encoder: embeddings, then a (bidirectional, stacked) Elman RNN, GRU or LSTM."""

from __future__ import annotations

from torch import Tensor, nn

from nmt import PAD_ID
from nmt.kernels import Kernels

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
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self.kernels = Kernels()  # how the RNN runs (`Seq2Seq.use`)

    def forward(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor]:
        """Run the RNN over the real tokens only, never over padding.

        src: (B, S) token ids, src_len: (B,) real lengths (≥ 1).
        Returns states (B, S, D·H), zero at padding, and final (B, D·H): the last layer's
        final hidden state of each direction, concatenated.
        """
        emb = self.kernels.dropout(self.dropout, self.embed(src))  # (B, S, E)
        states, final = self.kernels.rnn(self.rnn, emb, src_len)
        return self.kernels.dropout(self.dropout, states), final
