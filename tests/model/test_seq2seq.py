"""The model API: every cell × direction × attention trains; packing; score consistency."""

import itertools

import pytest
import torch

from nmt import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.config import AttentionConfig, ModelConfig
from nmt.errors import ConfigError
from nmt.model import Seq2Seq
from nmt.model.seq2seq import drop_words
from tests.conftest import padded, teacher_logits, tiny_model

SRC = [[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID], [11, EOS_ID]]
TGT = [[4, 5, 6, EOS_ID], [7, 8, 9, 10, 11, EOS_ID], [EOS_ID]]

CASES = list(
    itertools.product(
        ["gru", "lstm", "rnn"], [True, False], ["bahdanau", "luong_dot", "luong_general"]
    )
)


@pytest.mark.parametrize(("cell", "bidirectional", "attention"), CASES)
def test_every_configuration_runs_forward_and_backward(cell, bidirectional, attention):
    model = tiny_model(cell, attention, bidirectional, layers=2).train()
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    logits = teacher_logits(model, src, src_len, tgt)
    assert logits.shape == (3, 6, 19)
    logits.logsumexp(-1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_packed_batch_equals_each_sentence_alone(cell):
    model = tiny_model(cell)
    src, src_len = padded(SRC)
    tgt, tgt_len = padded(TGT)
    batch_lp, batch_tok = model.score(src, src_len, tgt, tgt_len)
    for i, (s, t) in enumerate(zip(SRC, TGT, strict=True)):
        alone_lp, alone_tok = model.score(*padded([s]), *padded([t]))
        torch.testing.assert_close(batch_lp[i], alone_lp[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch_tok[i, : len(t)], alone_tok[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("cell", "input_feeding", "attention"),
    list(itertools.product(["gru", "lstm"], [True, False], ["bahdanau", "luong_general"])),
)
def test_score_equals_teacher_forced_and_stepwise_log_probs(cell, input_feeding, attention):
    model = tiny_model(cell, attention, input_feeding=input_feeding)
    src, src_len = padded(SRC)
    tgt, tgt_len = padded(TGT)
    seq_lp, token_lp = model.score(src, src_len, tgt, tgt_len)
    assert torch.all(token_lp[2, 1:] == 0)  # padding contributes nothing
    # teacher forcing
    log_probs = torch.log_softmax(teacher_logits(model, src, src_len, tgt), -1)
    forced = log_probs.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    for i, n in enumerate(tgt_len.tolist()):
        torch.testing.assert_close(seq_lp[i], forced[i, :n].sum(), atol=1e-5, rtol=1e-5)
    # step() along the same sequence
    enc = model.encode(src, src_len)
    state = model.init_state(enc)
    y = torch.full((3,), BOS_ID)
    stepped = torch.zeros(3)
    for t in range(tgt.size(1)):
        lp, state, attn = model.step(enc, state, y)
        assert lp.shape == (3, 19) and attn.shape == (3, 5)
        live = t < tgt_len
        stepped += torch.where(live, lp.gather(1, tgt[:, t : t + 1]).squeeze(1), 0.0)
        y = tgt[:, t]
    torch.testing.assert_close(seq_lp, stepped, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_dot", "luong_general"])
def test_k_hypotheses_a_source_read_one_shared_encoding(attention):
    """step with B encodings and B·K state rows equals step with each encoding repeated K
    times (how a beam searches without copying its sentences' encodings)."""
    model, k = tiny_model("lstm", attention), 3
    src, src_len = padded(SRC)
    enc = model.encode(src, src_len)
    rows = torch.arange(3).repeat_interleave(k)  # (B·K,)
    state = model.init_state(enc).select(rows)
    y = torch.tensor([4, 5, 6, 7, 8, 9, 10, 11, 12])  # a different token in every row
    shared, _, shared_attn = model.step(enc, state, y)
    copied, _, copied_attn = model.step(enc.select(rows), state, y)
    assert shared.shape == (9, 19) and shared_attn.shape == (9, 5)
    assert not torch.allclose(shared[0], shared[1])  # the rows of a source differ
    torch.testing.assert_close(shared, copied)
    torch.testing.assert_close(shared_attn, copied_attn)


def test_step_attention_is_zero_on_padding(model):
    src, src_len = padded(SRC)
    enc = model.encode(src, src_len)
    _, _, attn = model.step(enc, model.init_state(enc), torch.full((3,), BOS_ID))
    assert torch.all(attn[1, 3:] == 0) and torch.all(attn[2, 2:] == 0)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3))


def test_log_probs_are_normalised(model):
    src, src_len = padded(SRC)
    enc = model.encode(src, src_len)
    lp, _, _ = model.step(enc, model.init_state(enc), torch.full((3,), BOS_ID))
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3))


def test_tied_embeddings_share_one_matrix_or_explain_the_size_rule():
    cfg = ModelConfig(emb_size=16, hidden_size=8, dec_hidden_size=16, tie_embeddings=True)
    model = Seq2Seq.build(cfg, AttentionConfig(), 20, 20)
    assert model.decoder.output.weight is model.decoder.embed.weight
    with pytest.raises(ConfigError, match="model.emb_size"):
        Seq2Seq.build(
            ModelConfig(emb_size=12, dec_hidden_size=16, tie_embeddings=True),
            AttentionConfig(),
            20,
            20,
        )


@pytest.mark.parametrize("attention", ["bahdanau", "luong_dot", "luong_general"])
def test_attentional_vector_is_tanh_of_the_combine_layer_over_state_and_context(attention):
    """ã = tanh(W_c [s; c] + b_c), c = Σ α h, although the decoder applies W_c's context
    half to the source states once (`AttentionDecoder.values`). Values and gradients, float64."""
    model = tiny_model("gru", attention).double().train()
    src, src_len = padded(SRC)
    memory, _ = model.encoder(src, src_len)  # (B, S, He)
    enc = model.encode(src, src_len)
    s = torch.randn(3, 2, 16, dtype=torch.float64)  # (B, T, Hd) decoder RNN outputs
    att, weights = model.decoder._attend(enc, s)
    context = torch.bmm(weights, memory)  # (B, T, He)
    expected = torch.tanh(model.decoder.combine(torch.cat([s, context], dim=-1)))
    torch.testing.assert_close(att, expected)
    combine = model.decoder.combine
    got = torch.autograd.grad(att.square().sum(), [combine.weight, combine.bias])
    want = torch.autograd.grad(expected.square().sum(), [combine.weight, combine.bias])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_word_dropout_hides_pieces_at_its_rate_and_never_special_tokens():
    torch.manual_seed(0)
    ids = torch.randint(EOS_ID + 1, 50, (200, 50))
    ids[:, 0], ids[:, -1], ids[:, -5:-1] = BOS_ID, EOS_ID, PAD_ID
    dropped = drop_words(ids, 0.2)
    changed = dropped != ids
    assert (dropped[changed] == UNK_ID).all()
    assert not changed[:, 0].any() and not changed[:, -5:].any()  # BOS, PAD, EOS stay
    assert 0.18 < changed[:, 1:-5].float().mean() < 0.22


def test_word_dropout_changes_training_forward_only():
    model = tiny_model()
    model.word_dropout = 0.5
    src, src_len = padded(SRC)
    tgt, _ = padded(TGT)
    plain = tiny_model()
    torch.testing.assert_close(model(src, src_len, tgt)[0], plain(src, src_len, tgt)[0])
    torch.manual_seed(1)
    assert not torch.allclose(model.train()(src, src_len, tgt)[0], plain(src, src_len, tgt)[0])


def test_word_dropout_is_built_from_the_config():
    cfg = ModelConfig(emb_size=8, hidden_size=8, dec_hidden_size=8, word_dropout=0.1)
    assert Seq2Seq.build(cfg, AttentionConfig(size=8), 20, 20).word_dropout == 0.1
