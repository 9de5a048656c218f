"""The encoder–decoder model and the one API every later feature uses.

- `encode(src, src_len)` → EncoderOutput, computed once per source batch;
- `init_state(enc)` → DecoderState before the first target token;
- `step(enc, state, y_prev)` → log-probabilities of the next token, new state, attention;
- `forward(src, src_len, tgt)` → teacher forcing up to the output layer: the attentional
  vectors ã of every target position and the attention weights;
- `logits(x)` → the output layer over such vectors;
- `score(src, src_len, tgt, tgt_len)` → log P(y|x) per sentence (EOS included) and per token.

Targets `tgt` are the gold outputs y_1 … y_T with y_T = EOS, padded with PAD; the decoder's
inputs are the same shifted right behind BOS.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from nmt import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.config import AttentionConfig, ModelConfig
from nmt.kernels import Kernels
from nmt.kernels.quantize import int8_copy
from nmt.model.attention import build_attention
from nmt.model.decoder import AttentionDecoder, DecoderState, EncoderOutput
from nmt.model.encoder import RNNEncoder


def shift_right(tgt: Tensor) -> Tensor:
    """tgt: (B, T) gold outputs → decoder inputs (B, T): BOS, y_1 … y_{T-1}."""
    bos = tgt.new_full((tgt.size(0), 1), BOS_ID)
    return torch.cat([bos, tgt[:, :-1]], dim=1)


def drop_words(ids: Tensor, p: float) -> Tensor:
    """ids: (B, L) token ids → the same with each word piece replaced by UNK with probability
    p (word dropout as in Bowman et al. 2016; Sennrich et al. 2016 zero the embedding
    instead); PAD, BOS and EOS stay."""
    words = ids > EOS_ID  # (B, L): not a special token (the specials are ids 0 … EOS_ID)
    drop = torch.rand(ids.shape, device=ids.device) < p
    return ids.masked_fill(words & drop, UNK_ID)


def token_logprobs(log_probs: Tensor, tgt: Tensor, tgt_len: Tensor) -> tuple[Tensor, Tensor]:
    """log_probs: (B, T, V) at each target position; tgt: (B, T) gold outputs; tgt_len: (B,)
    lengths including EOS → log P(y|x) per sentence (B,) and per token (B, T), 0 at padding."""
    token = log_probs.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)  # (B, T)
    positions = torch.arange(tgt.size(1), device=tgt.device)
    token = token.masked_fill(positions.unsqueeze(0) >= tgt_len.unsqueeze(1), 0.0)
    return token.sum(dim=1), token


class Seq2Seq(nn.Module):
    """Recurrent encoder + attention decoder, with an optional encoder→decoder bridge."""

    def __init__(
        self,
        encoder: RNNEncoder,
        decoder: AttentionDecoder,
        bridge: bool,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.bridge = nn.Linear(encoder.output_size, decoder.hidden_size) if bridge else None
        self.word_dropout = word_dropout  # in training, source and decoder inputs (drop_words)
        self.kernels = Kernels()  # the plain path until `use` says otherwise

    @classmethod
    def build(
        cls, model: ModelConfig, attention: AttentionConfig, src_vocab: int, tgt_vocab: int
    ) -> Seq2Seq:
        """A freshly initialised model as the config describes."""
        encoder = RNNEncoder(
            src_vocab,
            model.emb_size,
            model.hidden_size,
            model.enc_layers,
            model.bidirectional,
            model.cell,
            model.dropout,
        )
        attn = build_attention(
            attention.type, model.dec_hidden_size, encoder.output_size, attention.size
        )
        decoder = AttentionDecoder(
            tgt_vocab,
            model.emb_size,
            model.dec_hidden_size,
            model.dec_layers,
            model.cell,
            model.dropout,
            model.input_feeding,
            attn,
            encoder.output_size,
            model.tie_embeddings,
            model.output_bias,
        )
        return cls(encoder, decoder, model.bridge, model.word_dropout)

    def encode(self, src: Tensor, src_len: Tensor) -> EncoderOutput:
        """src: (B, S) ids ending in EOS, padded; src_len: (B,) → what the decoder reads."""
        memory, final = self.encoder(src, src_len)  # (B, S, He), (B, He)
        keys = self.decoder.attention.keys(memory)  # (B, S, K)
        mask = src != PAD_ID  # (B, S)
        return EncoderOutput(self.decoder.values(memory), keys, mask, final)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """The decoder state before the first target token."""
        init = torch.tanh(self.bridge(enc.final)) if self.bridge is not None else None
        return self.decoder.initial_state(init, enc.mask.size(0))

    def step(
        self, enc: EncoderOutput, state: DecoderState, y_prev: Tensor
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """y_prev: (N,) → log P(y_t | x, y_<t) (N, V), new state, attention (N, S).

        N = B·K state rows for enc's B sources: K hypotheses of each, consecutive."""
        logits, state, attn = self.decoder.step(enc, state, y_prev)
        return torch.log_softmax(logits.float(), dim=-1), state, attn.float()

    def forward(self, src: Tensor, src_len: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher forcing. tgt: (B, T) gold outputs → attentional vectors ã (B, T, Hd), the
        output layer's inputs, and attention (B, T, S); `logits` turns ã into logits. In
        training, word dropout (if any) hides pieces of the source and the decoder inputs."""
        tgt_in = shift_right(tgt)  # (B, T)
        if self.training and self.word_dropout > 0:
            src, tgt_in = drop_words(src, self.word_dropout), drop_words(tgt_in, self.word_dropout)
        enc = self.encode(src, src_len)
        return self.decoder(enc, self.init_state(enc), tgt_in)

    def logits(self, x: Tensor) -> Tensor:
        """x: (..., Hd) attentional vectors → logits (..., V)."""
        return self.decoder.logits(x)

    def int8(self) -> Seq2Seq:
        """A copy for CPU decoding with int8 weights (nmt.kernels.quantize) in the RNNs, the
        attention's query projection and the output layer, computed by the plain path (on
        this model's thread tuner); this model is unchanged."""
        names = ["encoder.rnn", "decoder.rnn", "decoder.output"]
        if isinstance(getattr(self.decoder.attention, "query_proj", None), nn.Linear):
            names.append("decoder.attention.query_proj")
        quantized = int8_copy(self, names)
        return quantized.use(Kernels(tuner=self.kernels.tuner))

    def in_dtype(self, dtype: torch.dtype) -> Seq2Seq:
        """A copy for decoding with every parameter in dtype (bf16, fp16), computed by the
        plain products (on this model's thread tuner); this model is unchanged."""
        cast = copy.deepcopy(self).to(dtype)
        k = self.kernels
        return cast.use(Kernels(rnn_path=k.rnn_path, rnn_decode=k.rnn_decode, tuner=k.tuner))

    def use(self, kernels: Kernels) -> Seq2Seq:
        """Compute the heavy operations the way `kernels` says (nmt.kernels.select); the
        default, `Kernels()`, is the plain path. Changes no parameter."""
        self.kernels = self.encoder.kernels = self.decoder.kernels = kernels
        return self

    def score(
        self, src: Tensor, src_len: Tensor, tgt: Tensor, tgt_len: Tensor
    ) -> tuple[Tensor, Tensor]:
        """log P(y|x) of given targets: per sentence (B,) and per token (B, T), 0 at padding.

        tgt: (B, T) gold outputs ending in EOS, tgt_len: (B,) lengths including EOS.
        """
        states, _ = self(src, src_len, tgt)  # (B, T, Hd)
        log_probs = torch.log_softmax(self.logits(states).float(), dim=-1)  # (B, T, V)
        return token_logprobs(log_probs, tgt, tgt_len)
