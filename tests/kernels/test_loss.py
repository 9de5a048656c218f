"""The fused output layer + loss equals the plain path: logits, then F.cross_entropy."""

import pytest
import torch
import torch.nn.functional as F

from nmt import PAD_ID
from nmt.kernels import Kernels
from nmt.kernels.loss import linear_cross_entropy


def _plain(x, weight, bias, target, eps):
    logits = F.linear(x, weight, bias)
    return F.cross_entropy(
        logits.flatten(0, 1),
        target.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=eps,
        reduction="sum",
    )


def _case(seed: int, bias: bool):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 7, 5, generator=g, requires_grad=True)  # (B, T, H)
    weight = torch.randn(11, 5, generator=g, requires_grad=True)  # (V, H)
    b = torch.randn(11, generator=g, requires_grad=True) if bias else None
    target = torch.randint(1, 11, (3, 7), generator=g)
    target[0, 4:] = PAD_ID  # padding rows count nothing and get no gradient
    target[2, 6:] = PAD_ID
    return x, weight, b, target


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [1, 4, 21, 1000])
def test_loss_and_gradients_equal_the_plain_path(bias, eps, chunk):
    x, weight, b, target = _case(seed=chunk, bias=bias)
    params = [t for t in (x, weight, b) if t is not None]
    plain = _plain(x, weight, b, target, eps)
    expected = torch.autograd.grad(plain * 0.37, params)  # a scaled loss, as in training
    fused = linear_cross_entropy(x, weight, b, target, eps, chunk)
    got = torch.autograd.grad(fused * 0.37, params)
    torch.testing.assert_close(fused, plain)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)
    assert got[0][0, 4:].abs().max() == 0  # no gradient reaches padding positions


def test_without_gradients_gives_the_same_loss():
    x, weight, b, target = _case(seed=3, bias=True)
    with torch.no_grad():
        assert torch.allclose(
            linear_cross_entropy(x, weight, b, target, 0.1, 4), _plain(x, weight, b, target, 0.1)
        )


def test_tied_weights_get_both_gradients():
    """With tied embeddings the output weight is the embedding: both gradients add up."""
    x, weight, b, target = _case(seed=5, bias=True)

    def emb():  # an embedding lookup of the same matrix
        return weight[target.clamp(min=1)].sum()

    plain = torch.autograd.grad(_plain(x, weight, b, target, 0.0) + emb(), weight)[0]
    fused = torch.autograd.grad(linear_cross_entropy(x, weight, b, target, 0.0, 3) + emb(), weight)
    torch.testing.assert_close(fused[0], plain)


def test_batch_loss_is_the_same_fused_and_plain():
    """What the trainer computes with optim.loss_chunk > 0 and with optim.loss_chunk=0."""
    from nmt.config import AttentionConfig, ModelConfig
    from nmt.data.batching import make_batch
    from nmt.model import Seq2Seq
    from nmt.train.loss import batch_loss

    torch.manual_seed(0)
    config = ModelConfig(emb_size=8, hidden_size=6, dec_hidden_size=6)
    model = Seq2Seq.build(config, AttentionConfig(size=5), 20, 30)
    model.eval()  # no dropout, so both passes see the same network
    batch = make_batch([[5, 6, 7], [8, 9]], [[11, 12], [13]], [0, 1])
    losses = []
    for chunk in (0, 1, 2, 1024):
        model.use(Kernels(loss_chunk=chunk))
        losses.append(batch_loss(model, model, batch, 0.1))
    grads = [torch.autograd.grad(loss, list(model.parameters())) for loss in losses]
    for loss, grad in zip(losses[1:], grads[1:], strict=True):
        torch.testing.assert_close(loss, losses[0])
        for g, expected in zip(grad, grads[0], strict=True):
            torch.testing.assert_close(g, expected)
