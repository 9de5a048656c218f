"""SentencePiece training, special ids, byte fallback and the vocabulary layouts."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from nmt import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.config import DataConfig
from nmt.data.tokenizer import Tokenizer, Vocabularies
from nmt.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
WORDS = "zero one two three four five six seven eight nine ten eleven twelve"
WORTE = "null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf"


def sentences(words: str, n: int = 200, seed: int = 0) -> list[str]:
    """n random sentences of 2-7 of the space-separated `words`."""
    rng, words = random.Random(seed), words.split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 7))) for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    path = tmp_path_factory.mktemp("spm") / "spm.model"
    return Tokenizer.train(sentences(WORDS) + [""], path, vocab_size=300)


def test_special_ids_are_fixed(tokenizer):
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert tokenizer.pieces([PAD_ID, UNK_ID, BOS_ID, EOS_ID]) == ["<pad>", "<unk>", "<s>", "</s>"]


def test_encode_adds_no_bos_or_eos_and_roundtrips(tokenizer):
    lines = ["three four five", "twelve eleven ten nine"]
    ids = tokenizer.encode(lines)
    assert len(ids) == 2 and all(ids)
    assert not {BOS_ID, EOS_ID, PAD_ID, UNK_ID} & {i for seq in ids for i in seq}
    assert tokenizer.decode(ids) == lines


def test_save_load_gives_identical_ids(tokenizer):
    loaded = Tokenizer.load(tokenizer.model_path)
    lines = sentences(WORDS, 20, seed=1) + ["unseen words ÿ"]
    assert loaded.encode(lines) == tokenizer.encode(lines)
    assert loaded.vocab_size == tokenizer.vocab_size


def test_byte_fallback_encodes_anything_without_unk(tokenizer):
    lines = ["one 😀 two", "Привет мир", "日本語のテキスト", "ナ ψ ∑ 🇩🇪 x"]
    ids = tokenizer.encode(lines)
    assert all(UNK_ID not in seq for seq in ids)
    assert all(0 <= i < tokenizer.vocab_size for seq in ids for i in seq)
    assert tokenizer.decode(ids) == lines


def test_decode_skips_specials_and_out_of_range_ids(tokenizer):
    (ids,) = tokenizer.encode(["seven eight"])
    noisy = [BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID, tokenizer.vocab_size + 5, -1]
    assert tokenizer.decode([noisy, []]) == ["seven eight", ""]
    assert tokenizer.decode([]) == []


def test_small_corpus_gets_smaller_vocab_not_an_error(tmp_path):
    # hard_vocab_limit=False: SentencePiece shrinks the vocabulary instead of failing
    tok = Tokenizer.train(sentences(WORDS, 50), tmp_path / "big.model", vocab_size=5000)
    assert 260 < tok.vocab_size < 5000


def test_vocab_below_byte_fallback_minimum_is_config_error(tmp_path):
    corpus = sentences(WORDS, 50)
    with pytest.raises(ConfigError) as e:
        Tokenizer.train(corpus, tmp_path / "small.model", vocab_size=100)
    message = str(e.value)
    assert "data.vocab_size=100" in message
    # 4 specials + 256 bytes + the distinct characters, the space marker "▁" among them
    chars = len(set("".join(corpus)))
    assert f"at least {4 + 256 + chars}" in message
    assert not (tmp_path / "small.model").exists()


def test_training_on_no_text_is_data_error(tmp_path):
    with pytest.raises(DataError, match="no non-empty sentences"):
        Tokenizer.train(["", ""], tmp_path / "x.model", vocab_size=300)


def test_training_is_reproducible_across_processes_when_sampling(tmp_path):
    # SentencePiece's own sampling differs between processes; ours must not
    script = (
        "import random, sys; from nmt.data.tokenizer import Tokenizer; "
        "from tests.data.test_tokenizer import WORDS, sentences; "
        "Tokenizer.train(sentences(WORDS, 400), sys.argv[1], 300, max_sentences=120, seed=3)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for name in ("a.model", "b.model"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], env=env, check=True)
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()


def test_training_is_quiet(tmp_path, capfd):
    Tokenizer.train(sentences(WORDS, 50), tmp_path / "q.model", vocab_size=300)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_load_missing_model_names_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.model"):
        Tokenizer.load(tmp_path / "nope.model")


def test_joint_vocabulary_is_one_model_for_both_sides(tmp_path):
    cfg = DataConfig(vocab_size=320, joint_vocab=True)
    vocabs = Vocabularies.train(sentences(WORTE), sentences(WORDS), tmp_path, cfg)
    assert vocabs.joint and vocabs.src is vocabs.tgt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spm.model"]
    loaded = Vocabularies.load(tmp_path)
    assert loaded.joint and loaded.src is loaded.tgt
    assert loaded.src.encode(["fünf five"]) == vocabs.src.encode(["fünf five"])


def test_separate_vocabularies_write_two_models(tmp_path):
    cfg = DataConfig(vocab_size=300, joint_vocab=False, spm_model_type="bpe")
    vocabs = Vocabularies.train(sentences(WORTE), sentences(WORDS), tmp_path, cfg)
    assert not vocabs.joint and vocabs.src is not vocabs.tgt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spm.src.model", "spm.tgt.model"]
    loaded = Vocabularies.load(tmp_path)
    assert not loaded.joint
    assert loaded.src.encode(["zwölf"]) == vocabs.src.encode(["zwölf"])
    assert loaded.tgt.encode(["twelve"]) == vocabs.tgt.encode(["twelve"])
    assert vocabs.src.decode(vocabs.src.encode(["fünf elf"])) == ["fünf elf"]


def test_load_from_folder_without_models_is_data_error(tmp_path):
    with pytest.raises(DataError, match="is this a run directory written by nmt-train"):
        Vocabularies.load(tmp_path)
