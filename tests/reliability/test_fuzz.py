"""Property-based tests: any Unicode text gives one output line per input line, and the
tokenizer gives back what it was given, up to its normalisation (NFKC, whitespace)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from nmt.config import AttentionConfig, ModelConfig, TrainRunConfig
from nmt.data.tokenizer import Tokenizer, Vocabularies, one_line
from nmt.model import Seq2Seq
from nmt.translator import Translator
from tests.helpers import toy_pairs

# Lines as read_lines gives them: no "\n" (it ends lines), no surrogates (not UTF-8).
LINE = st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), max_size=40)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def build_translator(folder: Path, seed: int = 0) -> Translator:
    """A randomly initialised tiny model and a SentencePiece model trained here."""
    sentences = [s for pair in toy_pairs(60) for s in pair] + ["Grüße, 日本語 ψ ok"]
    tokenizer = Tokenizer.train(sentences, folder / "spm.model", vocab_size=300)
    vocabs = Vocabularies(tokenizer, tokenizer, joint=True)
    torch.manual_seed(seed)
    model = Seq2Seq.build(
        ModelConfig(emb_size=8, hidden_size=8, dec_hidden_size=16, dropout=0.0),
        AttentionConfig(size=8),
        tokenizer.vocab_size,
        tokenizer.vocab_size,
    )
    config = OmegaConf.structured(TrainRunConfig)
    config.decode.max_len_b = 6  # random models rarely stop; keep the outputs short
    config.decode.max_len_a = 0.5
    return Translator(model, vocabs, config, torch.device("cpu"))


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> Translator:
    return build_translator(tmp_path_factory.mktemp("fuzz"))


@SETTINGS
@given(lines=st.lists(LINE, max_size=6))
def test_every_input_line_gets_exactly_one_output(translator, lines):
    out = translator.translate_text(lines)
    assert len(out) == len(lines)
    assert all(isinstance(o, str) for o in out)
    assert [o for o, line in zip(out, lines, strict=True) if not line.strip()] == [
        "" for line in lines if not line.strip()
    ]


def test_output_lines_never_contain_a_line_break(translator):
    # the model is biased towards the byte piece that decodes to "\n"
    newline = translator.vocabs.tgt.sp.piece_to_id("<0x0A>")
    with torch.no_grad():
        translator.model.decoder.output.bias[newline] += 100.0
    try:
        out = translator.translate_text(["alpha bravo", "charlie"])
    finally:
        with torch.no_grad():
            translator.model.decoder.output.bias[newline] -= 100.0
    assert len("".join(o + "\n" for o in out).splitlines()) == 2, out


@SETTINGS
@given(text=st.text(max_size=20))
def test_one_line_leaves_nothing_str_splitlines_would_split(text):
    has_break = len((text + ".").splitlines()) > 1
    assert len((one_line(text) + ".").splitlines()) == 1
    assert (one_line(text) != text) == has_break


@pytest.fixture(scope="module")
def tokenizer(translator) -> Tokenizer:
    return translator.vocabs.src


@SETTINGS
@given(text=LINE)
def test_tokenizer_round_trips_text_up_to_its_normalisation(tokenizer, text):
    (ids,) = tokenizer.encode([text])
    (back,) = tokenizer.decode([ids])
    # SentencePiece's normaliser (NFKC, whitespace squeezed and trimmed) writes spaces as ▁
    assert back == tokenizer.sp.normalize(text).replace("\u2581", " ").strip(" ")


NORMAL = st.characters(categories=("L", "M", "N", "P", "S"), exclude_characters="\u2581")


@SETTINGS
@given(words=st.lists(st.text(NORMAL, min_size=1, max_size=8), min_size=1, max_size=6))
def test_tokenizer_round_trips_nfkc_normalised_text_exactly(tokenizer, words):
    text = unicodedata.normalize("NFKC", " ".join(words))
    text = " ".join(text.split())  # NFKC may produce spaces (e.g. from "¨")
    (ids,) = tokenizer.encode([text])
    assert tokenizer.decode([ids]) == [text]
