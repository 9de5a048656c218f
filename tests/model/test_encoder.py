"""The CPU encoder path (each direction unpacked) computes what the packed path computes."""

import pytest
import torch

from nmt import PAD_ID
from nmt.model.encoder import RNNEncoder


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("layers", [1, 3])
def test_by_direction_equals_packed(cell, bidirectional, layers):
    torch.manual_seed(layers)
    enc = RNNEncoder(50, 8, 6, layers, bidirectional, cell, dropout=0.0)
    lengths = torch.tensor([7, 3, 1, 5, 7])  # unsorted, one of length 1
    src = torch.randint(4, 50, (5, 7))
    src[torch.arange(7) >= lengths.unsqueeze(1)] = PAD_ID
    results = []
    for run in (enc._packed, enc._by_direction):
        emb = enc.embed(src)
        states, final = run(emb, lengths)
        grads = torch.autograd.grad(states.sin().sum() + final.pow(2).sum(), list(enc.parameters()))
        results.append((states, final, grads))
    (s1, f1, g1), (s2, f2, g2) = results
    torch.testing.assert_close(s2, s1)
    torch.testing.assert_close(f2, f1)
    assert s2[lengths.unsqueeze(1) <= torch.arange(7)].abs().max() == 0  # zero at padding
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(b, a)


def test_forward_uses_the_unpacked_path_on_cpu(monkeypatch):
    enc = RNNEncoder(50, 8, 6, 1, True, "gru", dropout=0.0)
    monkeypatch.setattr(enc, "_packed", lambda *a: pytest.fail("packed path on CPU"))
    states, final = enc(torch.tensor([[5, 6, 2], [7, 2, PAD_ID]]), torch.tensor([3, 2]))
    assert states.shape == (2, 3, 12) and final.shape == (2, 12)
