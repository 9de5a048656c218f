"""nmt-prepare's data directory: the same ids as encoding in memory, the same bytes on 1 or 2
workers, reused when nothing changed, atomic when killed, and refused when damaged."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from nmt.data import prepare as prepare_module
from nmt.data.batching import make_batch
from nmt.data.corpus import filter_pairs, read_parallel
from nmt.data.prepare import OtherCorpusError, prepare
from nmt.data.prepared import HEADER, PreparedCorpus, check_settings, read_header, token_dtype
from nmt.data.tokenizer import Reservoir, Vocabularies
from nmt.errors import ConfigError, DataError
from tests.helpers import compose_config, files_overrides, toy_pairs, write_parallel


def _pairs(n: int) -> list[tuple[str, str]]:
    pairs = toy_pairs(n, seed=4)
    pairs[3] = ("", pairs[3][1])  # empty source: dropped
    pairs[7] = (" ".join(["alpha"] * 60), "ahpla")  # ratio far above max_ratio: dropped
    return pairs


def _data_cfg(tmp_path, n=300, *extra):
    train = write_parallel(tmp_path / "data", "train", _pairs(n))
    valid = write_parallel(tmp_path / "data", "valid", toy_pairs(20, seed=9))
    overrides = files_overrides(tmp_path / "data", train, valid) + ["data.max_ratio=3", *extra]
    return compose_config("train", overrides).data


def _files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.name != "prepare.log"}


def test_prepared_ids_are_the_corpus_encoded_and_filtered(tmp_path):
    cfg = _data_cfg(tmp_path)
    corpus = prepare(cfg, tmp_path / "out", workers=1, progress=False)
    vocabs = Vocabularies.load(tmp_path / "out")
    text = read_parallel(cfg.train, "xx", "yy")
    src, tgt = vocabs.src.encode(text.src), vocabs.tgt.encode(text.tgt)
    keep, report = filter_pairs(src, tgt, cfg.max_tokens, cfg.max_ratio)
    assert report.empty == 1 and report.bad_ratio == 1 and len(corpus) == len(keep) == 298
    assert corpus.header["filter"]["kept"] == 298 and corpus.src.dtype == np.uint16
    for row, i in enumerate(keep):
        assert corpus.src[corpus.src_offsets[row] : corpus.src_offsets[row + 1]].tolist() == src[i]
        assert corpus.tgt[corpus.tgt_offsets[row] : corpus.tgt_offsets[row + 1]].tolist() == tgt[i]
        assert corpus.lengths[row].tolist() == [len(src[i]), len(tgt[i])]
    rows = [5, 0, 297, 40]
    expected = make_batch([src[keep[r]] for r in rows], [tgt[keep[r]] for r in rows], rows)
    batch = corpus.batch(np.array(rows))
    for name in ("src", "src_len", "tgt", "tgt_len", "index"):
        assert torch.equal(getattr(batch, name), getattr(expected, name)), name


def test_two_workers_write_the_ids_their_model_gives_and_the_same_bytes_each_time(
    tmp_path, monkeypatch
):
    """Chunks encoded in two processes, several in flight, are written in order; the
    SentencePiece model (trained on `workers` threads) is the only thing workers change."""
    monkeypatch.setattr(prepare_module, "CHUNK_PAIRS", 37)
    cfg = _data_cfg(tmp_path, 500)
    first = prepare(cfg, tmp_path / "one", workers=2, progress=False)
    prepare(cfg, tmp_path / "two", workers=2, progress=False)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    h1, h2 = json.loads(one.pop(HEADER)), json.loads(two.pop(HEADER))
    assert one == two and h1["fingerprint"] == h2["fingerprint"] and h1["workers"] == 2
    vocabs = Vocabularies.load(tmp_path / "one")
    text = read_parallel(cfg.train, "xx", "yy")
    src, tgt = vocabs.src.encode(text.src), vocabs.tgt.encode(text.tgt)
    keep, _ = filter_pairs(src, tgt, cfg.max_tokens, cfg.max_ratio)
    assert first.src.tolist() == [i for k in keep for i in src[k]]
    assert first.tgt.tolist() == [i for k in keep for i in tgt[k]]


def test_the_sentencepiece_sample_is_drawn_across_the_whole_corpus():
    reservoir = Reservoir(100, seed=0)
    for i in range(10_000):
        reservoir.add(f"line {i}")
        reservoir.add("   ")  # blank lines are never sampled
    numbers = [int(line.split()[1]) for line in reservoir.lines]
    assert len(numbers) == 100 == len(set(numbers))
    assert sum(n >= 5000 for n in numbers) > 30  # not the first 100 lines


def test_every_line_is_equally_likely_to_be_in_the_sample():
    # algorithm L skips ahead between replacements: each tenth of the input must still hold
    # a tenth of what is drawn, over many seeds (expected 3,000 a tenth, sd about 52)
    tenths = [0] * 10
    for seed in range(300):
        reservoir = Reservoir(100, seed=seed)
        for i in range(10_000):
            reservoir.add(str(i))
        assert len(reservoir.lines) == 100 == len(set(reservoir.lines))
        for line in reservoir.lines:
            tenths[int(line) // 1000] += 1
    assert all(2800 < n < 3200 for n in tenths), tenths


def test_a_sample_drawn_in_blocks_is_the_sample_drawn_line_by_line():
    lines = [f"line {i}" if i % 7 else " " for i in range(5_000)]
    one_by_one, in_blocks = Reservoir(300, seed=5), Reservoir(300, seed=5)
    for line in lines:
        one_by_one.add(line)
    sizes = iter([1, 299, 2, 0, 1000, 17] * 100)
    start = 0
    while start < len(lines):
        size = next(sizes)
        in_blocks.extend(lines[start : start + size])
        start += size
    assert in_blocks.lines == one_by_one.lines and in_blocks.seen == one_by_one.seen


def test_the_header_hashes_the_training_pairs_text(tmp_path):
    cfg = _data_cfg(tmp_path, 25_000)  # more than one hashed batch of 10,000 pairs
    corpus = prepare(cfg, tmp_path / "out", progress=False)
    text = read_parallel(cfg.train, "xx", "yy")
    pairs = "".join(f"{s}\t{t}\n" for s, t in zip(text.src, text.tgt, strict=True))
    assert corpus.header["inputs"]["train"]["pairs"] == 25_000
    assert corpus.header["inputs"]["train"]["sha256"] == hashlib.sha256(pairs.encode()).hexdigest()


def test_a_second_run_reuses_the_directory_and_other_data_is_refused(tmp_path, caplog):
    cfg = _data_cfg(tmp_path)
    out = tmp_path / "out"
    prepare(cfg, out, progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    os.utime(tmp_path / "data" / "train.xx")  # touched, same contents: still reused
    with caplog.at_level("INFO"):
        prepare(cfg, out, progress=False)
    assert "reusing" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    other = _data_cfg(tmp_path / "b", 200)
    with pytest.raises(OtherCorpusError, match="holds another prepared corpus"):
        prepare(other, out, progress=False)
    cfg.vocab_size = 200
    with pytest.raises(OtherCorpusError, match="give out= another directory"):
        prepare(cfg, out, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes  # untouched


def test_a_killed_preparation_leaves_no_complete_looking_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare_module, "CHUNK_PAIRS", 50)
    cfg = _data_cfg(tmp_path)
    calls = []
    real = prepare_module.encode_chunk

    def dies_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(prepare_module, "encode_chunk", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, tmp_path / "out", workers=1, progress=False)
    with pytest.raises(DataError, match="prepared.json: missing"):
        PreparedCorpus.open(tmp_path / "out")
    monkeypatch.setattr(prepare_module, "encode_chunk", real)
    corpus = prepare(cfg, tmp_path / "out", workers=1, progress=False)
    assert len(corpus) == 298
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_a_folder_of_other_files_is_not_prepared_into(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("mine")
    with pytest.raises(ConfigError, match=r"thesis\.tex.*new or empty directory"):
        prepare(_data_cfg(tmp_path), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "thesis.tex").read_text() == "mine"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "train.tgt.bin").write_bytes(b"\0\0"), r"train\.tgt\.bin: 2 bytes"),
        (lambda root: (root / "train.src.idx").unlink(), r"train\.src\.idx: missing"),
        (lambda root: (root / HEADER).write_text('{"magic": "nmt-prepared'), "not a readable"),
        (lambda root: (root / HEADER).write_text('{"a": 1}'), "not written by nmt-prepare"),
        (
            lambda root: (root / HEADER).write_text(
                (root / HEADER).read_text().replace('"format": 1', '"format": 7')
            ),
            "format 7, but this nmt reads format 1",
        ),
    ],
)
def test_a_damaged_directory_is_refused_naming_the_file(tmp_path, damage, message):
    prepare(_data_cfg(tmp_path), tmp_path / "out", progress=False)
    damage(tmp_path / "out")
    with pytest.raises(DataError, match=message):
        PreparedCorpus.open(tmp_path / "out")


def test_invalid_utf8_names_the_file_and_line(tmp_path):
    cfg = _data_cfg(tmp_path)
    path = tmp_path / "data" / "train.yy"
    lines = path.read_bytes().split(b"\n")
    lines[41] = b"caf\xe9"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"train\.yy, line 42: invalid UTF-8"):
        prepare(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / HEADER).exists()


def test_settings_that_change_the_ids_must_match_the_config(tmp_path):
    cfg = _data_cfg(tmp_path)
    corpus = prepare(cfg, tmp_path / "out", progress=False)
    check_settings(corpus.header, cfg, corpus.root)  # the same: accepted
    cfg.max_tokens = 50
    with pytest.raises(ConfigError, match=r"data\.max_tokens=50 \(prepared with 100\)"):
        check_settings(corpus.header, cfg, corpus.root)
    cfg.max_tokens, cfg.batch_tokens = 100, 999  # batching does not change the ids
    check_settings(corpus.header, cfg, corpus.root)


def test_ids_beyond_uint16_are_stored_as_int32():
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.int32


def test_the_header_records_inputs_counts_and_hashes(tmp_path):
    cfg = _data_cfg(tmp_path)
    prepare(cfg, tmp_path / "out", progress=False)
    header = read_header(tmp_path / "out")
    assert header["inputs"]["train"]["pairs"] == 300 and header["inputs"]["valid"]["pairs"] == 20
    assert header["splits"]["train"]["pairs"] == 298
    assert set(header["spm"]) == {"spm.model"} and len(header["fingerprint"]) == 64
    assert header["settings"]["vocab_size"] == 300
