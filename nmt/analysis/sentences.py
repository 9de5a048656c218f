"""sentences.jsonl: the per-sentence part of an analysis, a buffer of decode.buffer_size test
sentences at a time (beam search and reference scoring, metrics and class, exact search on
the first analysis.exact_sentences), streamed to the file through nmt.data.stream: written as
sentences.jsonl.part and renamed when complete, so a killed analysis resumes (resume=true)
from its last complete buffer. The rest of the analysis is computed from the records read
back; the few sentences whose attention is drawn are searched again in their own batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from nmt import EOS_ID
from nmt.analysis.classify import LABELS
from nmt.analysis.compare import Compared, compare_batch
from nmt.analysis.records import ExactRecord, NbestEntry, SentenceRecord
from nmt.config import DecodeConfig
from nmt.data.batching import make_batch, sentence_batches
from nmt.data.stream import Source, open_output, stream
from nmt.data.tokenizer import Vocabularies
from nmt.evaluate.plots import AttentionMap
from nmt.model import Seq2Seq


@dataclass
class Pairs:
    """The test sentences analysed and their references: text and ids (without EOS)."""

    src: list[str]
    refs: list[str]
    src_ids: list[list[int]]
    ref_ids: list[list[int]]


def records_text(records: list[SentenceRecord]) -> str:
    """Lines of sentences.jsonl: one JSON object a record, keys in field order."""
    return "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)


def read_records(path: str | Path) -> list[SentenceRecord]:
    """The records of a sentences.jsonl, equal to those written (floats round-trip)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            d["class_"] = d.pop("class")
            d["nbest"] = [NbestEntry(**h) for h in d["nbest"]]
            d["exact"] = None if d["exact"] is None else ExactRecord(**d["exact"])
            out.append(SentenceRecord(**d))
    return out


def _settings(cfg: DictConfig, decode: DecodeConfig, device, run_info: dict | None) -> dict:
    """What a resumed analysis must find as the interrupted one had it."""
    run = run_info or {}
    return {
        "decode": dataclasses.asdict(decode),
        "analysis": OmegaConf.to_container(cfg.analysis, resolve=True),
        "max_sentences": cfg.data.max_sentences,
        "model": [*run.get("spm_models", {}).values(), *run.get("checkpoint", {}).values()],
        "device": str(device),
        "kernels": OmegaConf.select(cfg, "kernels"),
        "threads": OmegaConf.select(cfg, "threads"),
    }


def analysed(
    buffer: Callable[[int, int], list[SentenceRecord]],
    cfg: DictConfig,
    decode: DecodeConfig,
    test: Pairs,
    device: torch.device | str,
    path: Path | None = None,
    run_info: dict | None = None,
) -> list[SentenceRecord]:
    """Every sentence's record, buffer(first, n) giving those of sentences first..first+n-1;
    with a path, streamed there (resumed with cfg.resume) and read back."""
    size = decode.buffer_size
    if path is None:
        n = len(test.src)
        return [r for first in range(0, n, size) for r in buffer(first, min(size, n - first))]
    resume = bool(OmegaConf.select(cfg, "resume", default=False))
    out = open_output(str(path), resume, lambda: _settings(cfg, decode, device, run_info))
    source = Source(zip(test.src, test.refs, strict=True), [cfg.data.test_src, cfg.data.test_ref])
    work = lambda items, first: records_text(buffer(first, len(items)))  # noqa: E731
    stream(source, out, size, work, keep_progress=True)  # kept until the report is written
    return read_records(path)


def compared_lines(
    model: Seq2Seq,
    test: Pairs,
    lines: list[int],
    decode: DecodeConfig,
    nbest: int,
    device: torch.device | str,
) -> dict[int, Compared]:
    """{i: Compared} for the 1-based `lines` (i = line - 1), each searched again in the very
    batch its buffer searched it in (same rows, same order), so equal to what it wrote."""
    size, out = decode.buffer_size, {}
    for line in sorted(set(lines)):
        if line - 1 in out:
            continue
        first = (line - 1) // size * size
        ids = test.src_ids[first : first + size]
        batch = next(
            b
            for b in sentence_batches([len(s) for s in ids], decode.batch_size)
            if line - 1 - first in b
        )
        rows = [first + j for j in batch]
        src, ref = [test.src_ids[i] for i in rows], [test.ref_ids[i] for i in rows]
        t = make_batch(src, ref, batch).to(device)
        found = compare_batch(model, t.src, t.src_len, t.tgt, t.tgt_len, decode, nbest)
        out.update(zip(rows, found, strict=True))
    return out


def attention_pairs(
    model: Seq2Seq,
    compared: list[Compared] | dict[int, Compared],  # [line - 1] of each line at least
    records: list[SentenceRecord],
    src_ids: list[list[int]],
    lines: list[int],
    vocabs: Vocabularies,
    device: torch.device | str,
) -> list[AttentionMap]:
    """Two maps per chosen line: the beam's output ŷ and the reference y* forced."""
    maps = []
    for line in lines:
        i, c, rec = line - 1, compared[line - 1], records[line - 1]
        src_tokens = vocabs.src.pieces([*src_ids[i], EOS_ID])
        batch = make_batch([src_ids[i]], [c.ref_tokens[:-1]], [i]).to(device)
        with torch.inference_mode():
            _, forced = model(batch.src, batch.src_len, batch.tgt)  # attention (1, T, S)
        label = LABELS[rec.class_]
        maps.append(
            AttentionMap(
                line,
                c.nbest.attention[0, : rec.hyp_len].float().cpu().numpy(),
                src_tokens,
                rec.hyp_tokens,
                rec.src,
                rec.hyp,
                f"beam output ŷ, {label}",
            )
        )
        maps.append(
            AttentionMap(
                line,
                forced[0].float().cpu().numpy(),
                src_tokens,
                rec.ref_tokens,
                rec.src,
                rec.ref,
                f"reference y* forced, {label}",
            )
        )
    return maps
