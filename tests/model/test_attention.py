"""Attention weights: a distribution over real source positions; context = Σ α h."""

import pytest
import torch

from nmt.errors import ConfigError
from nmt.model.attention import build_attention

KINDS = ["bahdanau", "luong_dot", "luong_general"]


def _inputs(seed: int = 0):
    torch.manual_seed(seed)
    memory = torch.randn(3, 5, 16)  # (B, S, He)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    memory = memory * mask.unsqueeze(-1)
    query = torch.randn(3, 4, 16)  # (B, T, Hd)
    return query, memory, mask


@pytest.mark.parametrize("kind", KINDS)
def test_padding_gets_zero_attention_and_weights_sum_to_one(kind):
    query, memory, mask = _inputs()
    attn = build_attention(kind, 16, 16, 10)
    context, weights = attn(query, attn.keys(memory), memory, mask)
    assert weights.shape == (3, 4, 5)
    assert torch.all(weights.masked_select(~mask.unsqueeze(1).expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights[2, :, 0] == 1)  # one real position takes all the weight


@pytest.mark.parametrize("kind", KINDS)
def test_context_is_weighted_sum_of_encoder_states(kind):
    query, memory, mask = _inputs(1)
    attn = build_attention(kind, 16, 16, 10)
    context, weights = attn(query, attn.keys(memory), memory, mask)
    expected = torch.einsum("bts,bsh->bth", weights, memory)
    torch.testing.assert_close(context, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_values_do_not_change_attention(kind):
    query, memory, mask = _inputs(2)
    attn = build_attention(kind, 16, 16, 10)
    noisy = memory + 100 * torch.randn_like(memory) * (~mask).unsqueeze(-1)
    c1, w1 = attn(query, attn.keys(memory), memory, mask)
    c2, w2 = attn(query, attn.keys(noisy), noisy, mask)
    torch.testing.assert_close(w1, w2)
    torch.testing.assert_close(c1, c2)


def test_luong_dot_refuses_mismatched_sizes_naming_the_keys():
    with pytest.raises(ConfigError, match="model.dec_hidden_size"):
        build_attention("luong_dot", 16, 32, 10)


def test_bahdanau_weights_and_gradients_are_those_of_v_tanh():
    """The sigmoid form gives the weights and parameter gradients of vᵀ tanh(W_q q + W_k h)."""
    query, memory, mask = _inputs(3)
    attn = build_attention("bahdanau", 16, 16, 10).double()
    query, memory = query.double(), memory.double()
    context, weights = attn(query, attn.keys(memory), memory, mask)
    (context.square().sum() + weights[:, :, 0].sum()).backward()
    ours = [p.grad.clone() for p in attn.parameters()]
    attn.zero_grad()

    q, k = attn.query_proj(query), attn.key_proj(memory)
    scores = attn.energy(torch.tanh(q.unsqueeze(2) + k.unsqueeze(1))).squeeze(-1)
    expected = scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(-1)  # (B, T, S)
    (torch.bmm(expected, memory).square().sum() + expected[:, :, 0].sum()).backward()
    torch.testing.assert_close(weights, expected)
    for got, want in zip(ours, [p.grad for p in attn.parameters()], strict=True):
        torch.testing.assert_close(got, want)


def test_bahdanau_scores_chunked_without_autograd_equal_the_whole(monkeypatch):
    query, memory, mask = _inputs(4)
    attn = build_attention("bahdanau", 16, 16, 10)
    whole = attn(query, attn.keys(memory), memory, mask)
    monkeypatch.setattr(type(attn), "CHUNK", 4 * 5 * 10 + 1)  # one sentence at a time, ragged
    with torch.no_grad():
        chunked = attn(query, attn.keys(memory), memory, mask)
    for got, want in zip(chunked, whole, strict=True):
        torch.testing.assert_close(got, want)
