"""Run the whole analysis of one test set: the core comparison, n-best oracle, sweep, exact
search, alpha × word reward calibration and attention maps, each timed; → per-sentence records + summary."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt import EOS_ID
from nmt.analysis.classify import CLASSES, MATCH, classify
from nmt.analysis.compare import Compared, compare
from nmt.analysis.exact import exact_search
from nmt.analysis.records import (
    AnalysisSummary,
    ExactRecord,
    MetricScore,
    NbestEntry,
    OracleSummary,
    SentenceRecord,
)
from nmt.analysis.sentences import Pairs, analysed, attention_pairs, compared_lines
from nmt.analysis.summary import (
    class_summary,
    exact_summary,
    fallout_summary,
    worst_per_class,
)
from nmt.analysis.sweep import Scored, calibrate, score_references, sweep
from nmt.config import DecodeConfig
from nmt.data.batching import make_batch
from nmt.data.corpus import read_lines
from nmt.data.tokenizer import Vocabularies
from nmt.errors import ConfigError, DataError
from nmt.evaluate.manifest import build_manifest
from nmt.evaluate.metrics import MetricSettings, corpus_scores, sentence_scores
from nmt.evaluate.plots import AttentionMap
from nmt.model import Seq2Seq

METRICS = MetricSettings(("bleu", "chrf"))


@dataclass
class Analysis:
    """What the report is written from: one record per sentence, the summary, the maps."""

    records: list[SentenceRecord]
    summary: AnalysisSummary
    attention: list[AttentionMap] = field(default_factory=list)
    sentences: Path | None = None  # the sentences.jsonl the records were streamed to


def read_pair(src_path: str, ref_path: str, limit: int = 0) -> tuple[list[str], list[str]]:
    """Source and reference lines, checked to be aligned; the first `limit` (0 = all)."""
    src, ref = read_lines(src_path), read_lines(ref_path)
    if len(src) != len(ref):
        raise DataError(
            f"{src_path} has {len(src):,} lines but {ref_path} has {len(ref):,}; source and "
            "reference must be aligned line by line"
        )
    if not src:
        raise DataError(f"{src_path}: no sentences to analyse")
    return (src[:limit], ref[:limit]) if limit else (src, ref)


def check_analysis(cfg: DictConfig, decode: DecodeConfig) -> None:
    """Refuse analysis settings that cannot work, naming the key."""
    a = cfg.analysis
    if a.nbest < 0 or a.nbest > decode.beam_size:
        raise ConfigError(
            f"analysis.nbest={a.nbest} must be between 0 (= decode.beam_size) and "
            f"decode.beam_size={decode.beam_size}"
        )
    if any(b < 1 for b in a.sweep_beams):
        raise ConfigError(f"analysis.sweep_beams={list(a.sweep_beams)}: widths must be >= 1")
    for key in ("sweep_alphas", "calibrate_alphas"):
        if any(x < 0 for x in a[key]):
            raise ConfigError(f"analysis.{key}={list(a[key])}: alphas must be >= 0")
    if a.calibrate_alphas and not a.calibrate_word_rewards:
        raise ConfigError(
            "analysis.calibrate_word_rewards=[] leaves no setting to try: give at least one "
            "(analysis.calibrate_word_rewards=[0] calibrates alpha alone)"
        )
    for key in ("exact_sentences", "examples", "tie_tolerance", "short_ratio"):
        if a[key] < 0:
            raise ConfigError(f"analysis.{key}={a[key]} must be 0 or more")
    for key in ("exact_nodes", "exact_seconds"):
        if a[key] <= 0:
            raise ConfigError(f"analysis.{key}={a[key]} must be greater than 0")
    if cfg.data.max_sentences < 0:
        raise ConfigError(f"data.max_sentences={cfg.data.max_sentences} must be 0 or more")
    if bool(cfg.data.dev_src) != bool(cfg.data.dev_ref):
        raise ConfigError("alpha calibration needs both data.dev_src and data.dev_ref")


def _plain(value: object) -> str | list[str]:
    """A run or checkpoint setting as JSON keeps it: one path, or an ensemble's list."""
    return value if isinstance(value, str) else [str(v) for v in value]


@contextlib.contextmanager
def timed(timings: dict, part: str) -> Iterator[None]:
    """Add the wall time of the block to timings[part] (seconds)."""
    start = time.perf_counter()
    yield
    timings[part] = round(timings.get(part, 0.0) + time.perf_counter() - start, 2)


def _ids(row: torch.Tensor, length: int) -> list[int]:
    return row[:length].tolist()


def sentence_records(
    compared: list[Compared],
    src: list[str],
    refs: list[str],
    vocabs: Vocabularies,
    tol: float,
    first: int = 0,
) -> list[SentenceRecord]:
    """One record per sentence: both scores, lengths, class, metrics, n-best oracle, fall-off;
    first: the 0-based position of src[0] in the test set (line numbers count from it)."""
    tgt = vocabs.tgt
    nbest_ids = [c.nbest.token_lists() for c in compared]
    nbest_text = [tgt.decode(ids) for ids in nbest_ids]
    refs_norm = tgt.decode([c.ref_tokens for c in compared])  # y* detokenised as the model sees it
    hyps = [texts[0] for texts in nbest_text]
    per = sentence_scores(hyps, refs, METRICS)
    flat_h = [h for texts in nbest_text for h in texts]
    flat_r = [r for r, texts in zip(refs, nbest_text, strict=True) for _ in texts]
    flat_bleu = sentence_scores(flat_h, flat_r, MetricSettings(("bleu",)))["bleu"]
    records, at = [], 0
    for i, c in enumerate(compared):
        r = c.nbest
        hyp_len = int(r.lengths[0])
        cls, tie = classify(
            hyps[i] == refs_norm[i],
            c.ref_score,
            float(r.score[0]),
            c.ref_logprob,
            float(r.logprob[0]),
            tol,
        )
        bleus = flat_bleu[at : at + r.nbest]
        at += r.nbest
        hyp_rows = [_ids(r.tokens[j], int(r.lengths[j])) for j in range(r.nbest)]
        best = max(range(len(bleus)), key=lambda j: bleus[j])
        records.append(
            SentenceRecord(
                line=first + i + 1,
                class_=cls,
                tie=tie,
                src=src[i],
                ref=refs[i],
                hyp=hyps[i],
                ref_logprob=c.ref_logprob,
                hyp_logprob=float(r.logprob[0]),
                ref_score=c.ref_score,
                hyp_score=float(r.score[0]),
                ref_len=len(c.ref_tokens),
                hyp_len=hyp_len,
                limit=c.limit,
                ref_over_limit=len(c.ref_tokens) > c.limit,
                bleu=per["bleu"][i],
                chrf=per["chrf"][i],
                ref_tokens=tgt.pieces(c.ref_tokens),
                hyp_tokens=tgt.pieces(hyp_rows[0]),
                ref_ranks=c.ranks,
                fell_off_step=c.fell_off,
                fell_off_reason=c.fell_off_reason,
                ref_nbest_rank=next(
                    (j + 1 for j, h in enumerate(hyp_rows) if h == c.ref_tokens), None
                ),
                oracle_bleu=bleus[best],
                oracle_rank=best + 1,
                oracle_hyp=nbest_text[i][best],
                nbest=[
                    NbestEntry(t, float(lp), float(s), b)
                    for t, lp, s, b in zip(
                        nbest_text[i], r.logprob.tolist(), r.score.tolist(), bleus, strict=True
                    )
                ],
            )
        )
    return records


def exact_records(
    model: Seq2Seq,
    compared: list[Compared],
    src_ids: list[list[int]],
    a: DictConfig,
    decode: DecodeConfig,
    vocabs: Vocabularies,
    device: torch.device | str,
    progress: bool,
) -> list[ExactRecord]:
    """Exact search on the first a.exact_sentences sentences (a: cfg.analysis), seeded with
    the best log P among the beam's n-best and the reference (when the beam could produce it).

    It runs on one torch thread: its steps have batch size 1, where more intra-op threads
    only add synchronisation (measured 10x slower with 2 threads on a busy 2-core machine).
    """
    out = []
    n = min(a.exact_sentences, len(compared))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in tqdm(range(n), desc="exact search", unit="sent", disable=not progress):
            out.append(_exact_one(model, compared[i], src_ids[i], a, decode, vocabs, device))
    finally:
        torch.set_num_threads(threads)
    return out


def _exact_one(
    model: Seq2Seq,
    c: Compared,
    src_ids: list[int],
    a: DictConfig,
    decode: DecodeConfig,
    vocabs: Vocabularies,
    device: torch.device | str,
) -> ExactRecord:
    """Exact search on one sentence, compared with the beam's n-best and the reference."""
    rows = [_ids(c.nbest.tokens[j], int(c.nbest.lengths[j])) for j in range(c.nbest.nbest)]
    known = list(zip(rows, c.nbest.logprob.tolist(), strict=True))
    if decode.min_len <= len(c.ref_tokens) <= c.limit:
        known.append((c.ref_tokens, c.ref_logprob))
    batch = make_batch([src_ids], None, [0]).to(device)
    found = exact_search(
        model,
        batch.src,
        batch.src_len,
        c.limit,
        decode.min_len,
        max(known, key=lambda k: k[1]),
        a.exact_nodes,
        a.exact_seconds,
    )
    text_ids = found.tokens[:-1] if found.tokens[-1:] == [EOS_ID] else found.tokens
    return ExactRecord(
        finished=found.finished,
        mode_text=vocabs.tgt.decode([text_ids])[0],
        mode_tokens=vocabs.tgt.pieces(found.tokens),
        mode_logprob=found.logprob,
        mode_empty=found.empty,
        beam_is_mode=rows[0] == found.tokens,
        mode_in_nbest=found.tokens in rows,
        reference_is_mode=found.tokens == c.ref_tokens,
        nodes=found.nodes,
        seconds=round(found.seconds, 3),
    )


def _buffer(
    model: Seq2Seq,
    vocabs: Vocabularies,
    test: Pairs,
    cfg: DictConfig,
    decode: DecodeConfig,
    nbest: int,
    device: torch.device | str,
    timings: dict,
    progress: Callable[[int], object],
) -> Callable[[int, int], list[SentenceRecord]]:
    """records(first, n): the records of test sentences first..first+n-1, exact search run
    on those among the first analysis.exact_sentences; the time of each part added up."""
    a = cfg.analysis

    def records(first: int, n: int) -> list[SentenceRecord]:
        src, refs, ids = (x[first : first + n] for x in (test.src, test.refs, test.src_ids))
        with timed(timings, "beam search + reference scoring"):
            ref_ids = test.ref_ids[first : first + n]
            compared = compare(model, ids, ref_ids, decode, nbest, device, progress)
        with timed(timings, "metrics + classes"):
            out = sentence_records(compared, src, refs, vocabs, a.tie_tolerance, first)
        if (k := min(n, a.exact_sentences - first)) > 0:
            with timed(timings, "exact search"):
                found = exact_records(
                    model, compared[:k], ids[:k], a, decode, vocabs, device, cfg.progress
                )
            for rec, res in zip(out, found, strict=False):
                rec.exact = res
        return out

    return records


def analyze(
    model: Seq2Seq,
    vocabs: Vocabularies,
    cfg: DictConfig,
    device: torch.device | str = "cpu",
    run_info: dict | None = None,
    sentences: Path | None = None,
) -> Analysis:
    """Everything nmt-analyze computes, from a loaded model and its vocabularies; with
    sentences (a path), the records are streamed to that sentences.jsonl as they are made."""
    decode = OmegaConf.to_object(cfg.decode) if isinstance(cfg.decode, DictConfig) else cfg.decode
    check_analysis(cfg, decode)
    a, progress, timings = cfg.analysis, cfg.progress, {}
    src, refs = read_pair(cfg.data.test_src, cfg.data.test_ref, cfg.data.max_sentences)
    lines = list(a.attention_lines)
    bad = [n for n in lines if not 1 <= n <= len(src)]
    if bad:
        raise ConfigError(
            f"analysis.attention_lines={lines}: line {bad[0]} is not among the {len(src):,} "
            "sentences analysed; give 1-based line numbers"
        )
    src_ids, ref_ids = vocabs.src.encode(src), vocabs.tgt.encode(refs)
    test, nbest = Pairs(src, refs, src_ids, ref_ids), a.nbest or decode.beam_size
    model.eval()
    desc = f"beam {decode.beam_size} + references"
    with tqdm(total=len(src), desc=desc, disable=not progress) as bar:
        buffer = _buffer(model, vocabs, test, cfg, decode, nbest, device, timings, bar.update)
        records = analysed(buffer, cfg, decode, test, device, sentences, run_info)
    scored = Scored(src_ids, refs, [r.ref_logprob for r in records], [r.ref_len for r in records])
    tol, short, rows = a.tie_tolerance, a.short_ratio, []
    # each setting of a sweep or of the calibration decoded over a set: sweep's rows
    settings = functools.partial(
        sweep, model, vocabs.tgt, cfg=decode, tol=tol, short_ratio=short, device=device
    )
    if a.sweep_beams and a.sweep_alphas:
        total = len(a.sweep_beams) * len(a.sweep_alphas)
        with timed(timings, "sweep"), tqdm(total=total, desc="sweep", disable=not progress) as bar:
            beams, alphas = list(a.sweep_beams), list(a.sweep_alphas)
            rows = settings(scored, beams=beams, alphas=alphas, progress=bar.update)
    exact = None
    if a.exact_sentences:
        exact = exact_summary([r.exact for r in records if r.exact is not None], a)
    calibration = None
    if cfg.data.dev_src and a.calibrate_alphas:
        total = len(a.calibrate_alphas) * len(a.calibrate_word_rewards)
        with (
            timed(timings, "calibration"),
            tqdm(total=total, desc="alpha × word reward", disable=not progress) as bar,
        ):
            dsrc, dref = read_pair(cfg.data.dev_src, cfg.data.dev_ref)
            dev = score_references(
                model, vocabs.src.encode(dsrc), dref, vocabs.tgt, decode.batch_size, device
            )
            alphas, rewards = list(a.calibrate_alphas), list(a.calibrate_word_rewards)
            cal = settings(
                dev,
                beams=[decode.beam_size],
                alphas=alphas,
                progress=bar.update,
                word_rewards=rewards,
            )
            calibration = calibrate(cal, cfg.data.dev_src)
    worst = worst_per_class(records)
    if not lines:  # the worst sentence of each class that missed
        lines = [worst[c][0] for c in CLASSES if c != MATCH and worst[c]]
    with timed(timings, "attention"):
        compared = compared_lines(model, test, lines, decode, nbest, device)
        maps = attention_pairs(model, compared, records, src_ids, lines, vocabs, device)
    scores = corpus_scores([r.hyp for r in records], refs, METRICS)
    oracle = corpus_scores([r.oracle_hyp for r in records], refs, MetricSettings(("bleu",)))
    n = len(records)
    summary = AnalysisSummary(
        run=_plain(cfg.run),
        checkpoint=_plain(cfg.checkpoint),
        test_src=cfg.data.test_src,
        test_ref=cfg.data.test_ref,
        sentences=n,
        decode=decode,
        nbest=nbest,
        scores={m: MetricScore(s.score, s.signature) for m, s in scores.items()},
        classes=class_summary(records, refs),
        ties=sum(r.tie for r in records),
        tie_tolerance=a.tie_tolerance,
        ref_over_limit=sum(r.ref_over_limit for r in records),
        fallout=fallout_summary(records),
        oracle=OracleSummary(
            bleu=oracle["bleu"].score,
            better_in_nbest=sum(r.oracle_bleu > r.bleu for r in records) / n,
            mean_rank=sum(r.oracle_rank for r in records) / n,
        ),
        examples={c: worst[c][: a.examples] for c in CLASSES},
        sweep=rows,
        exact=exact,
        calibration=calibration,
        attention_lines=lines,
        timings=timings,
        manifest=build_manifest(
            OmegaConf.to_container(cfg, resolve=True),
            [cfg.data.test_src, cfg.data.test_ref, cfg.data.dev_src, cfg.data.dev_ref],
            {m: s.signature for m, s in scores.items()},
            run_info,
        ),
    )
    return Analysis(records, summary, maps, sentences)
