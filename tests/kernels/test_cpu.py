"""The CPU fast paths compute what the plain path computes: the encoder RNN one direction at
a time, and the output layer a block of vocabulary columns at a time."""

import pytest
import torch

from nmt import PAD_ID
from nmt.config import AttentionConfig, ModelConfig
from nmt.kernels import Kernels, cpu
from nmt.model import Seq2Seq
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
    for kernels in (Kernels(), Kernels(rnn_path="by_direction")):
        emb = enc.embed(src)
        states, final = kernels.rnn(enc.rnn, emb, lengths)
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
    enc.kernels = Kernels(rnn_path="by_direction")
    monkeypatch.setattr("nmt.kernels.packed_rnn", lambda *a, **k: pytest.fail("packed path on CPU"))
    states, final = enc(torch.tensor([[5, 6, 2], [7, 2, PAD_ID]]), torch.tensor([3, 2]))
    assert states.shape == (2, 3, 12) and final.shape == (2, 12)


@pytest.mark.parametrize("output_bias", [True, False])
def test_decoding_logits_in_vocabulary_blocks_equal_the_output_layer(monkeypatch, output_bias):
    """Without autograd on the CPU, blocked `logits` computes the output layer VOCAB_BLOCK
    columns at a time (a last block shorter); with autograd it is the layer itself,
    gradients and all."""
    monkeypatch.setattr(cpu, "VOCAB_BLOCK", 8)
    cfg = ModelConfig(emb_size=12, hidden_size=8, dec_hidden_size=16, output_bias=output_bias)
    model = Seq2Seq.build(cfg, AttentionConfig(), 23, 43)  # 43 = 5 blocks of 8 + 3
    decoder = model.use(Kernels(logits_path="blocked")).decoder
    assert (decoder.output.bias is not None) == output_bias
    x = torch.randn(7, 16)
    with torch.no_grad():
        blocked = decoder.logits(x)
    torch.testing.assert_close(blocked, decoder.output(x), rtol=1e-6, atol=1e-6)
    assert blocked.shape == (7, 43) and blocked.is_contiguous()
    trained = decoder.logits(x)
    assert trained.grad_fn is not None
    trained.sum().backward()
    assert decoder.output.weight.grad is not None


def test_rnn_decode_packed_runs_packed_only_where_no_gradient_flows(monkeypatch):
    import nmt.kernels as kernels_module

    used = []
    for name in ("packed_rnn", "rnn_by_direction"):
        real = getattr(kernels_module, name)
        monkeypatch.setattr(
            kernels_module,
            name,
            lambda *a, _real=real, _name=name, **k: used.append(_name) or _real(*a, **k),
        )
    rnn = torch.nn.GRU(4, 6, batch_first=True, bidirectional=True)
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 3])
    kernels = Kernels(rnn_path="by_direction", rnn_decode="packed")
    with torch.no_grad():
        decoded = kernels.rnn(rnn, x, lengths)
    trained = kernels.rnn(rnn, x, lengths)  # the weights need a gradient
    assert used == ["packed_rnn", "rnn_by_direction"]
    for a, b in zip(decoded, trained, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
