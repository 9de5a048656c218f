"""Shared fixtures: tiny models and corpora built in the test, never downloaded."""

from __future__ import annotations

import pytest
import torch

from nmt import PAD_ID
from nmt.config import AttentionConfig, ModelConfig
from nmt.model import Seq2Seq


def tiny_model(
    cell: str = "gru",
    attention: str = "bahdanau",
    bidirectional: bool = True,
    input_feeding: bool = True,
    layers: int = 1,
    src_vocab: int = 23,
    tgt_vocab: int = 19,
    seed: int = 0,
) -> Seq2Seq:
    """A small randomly initialised model in eval mode (dropout off)."""
    torch.manual_seed(seed)
    enc_hidden = 8 if bidirectional else 16  # encoder output 16 either way (luong_dot)
    cfg = ModelConfig(
        cell=cell,
        emb_size=12,
        hidden_size=enc_hidden,
        enc_layers=layers,
        bidirectional=bidirectional,
        dec_hidden_size=16,
        dec_layers=layers,
        dropout=0.0,
        input_feeding=input_feeding,
    )
    return Seq2Seq.build(cfg, AttentionConfig(type=attention, size=10), src_vocab, tgt_vocab).eval()


def teacher_logits(model: Seq2Seq, src, src_len, tgt) -> torch.Tensor:
    """Teacher-forced logits (B, T, V): the output layer over the model's forward pass."""
    states, _ = model(src, src_len, tgt)  # (B, T, Hd)
    return model.logits(states)


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids → (B, T) tensor padded with PAD and (B,) lengths."""
    width = max(len(r) for r in rows)
    data = torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows])
    return data, torch.tensor([len(r) for r in rows])


@pytest.fixture
def model() -> Seq2Seq:
    return tiny_model()
