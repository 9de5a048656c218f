"""Encoder, attention, decoder and the Seq2Seq model API (encode / step / forward / score)."""

from nmt.model.decoder import DecoderState, EncoderOutput
from nmt.model.seq2seq import Seq2Seq

__all__ = ["DecoderState", "EncoderOutput", "Seq2Seq"]
