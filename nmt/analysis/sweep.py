"""Beam width × alpha sweep (the "beam search curse" made visible) and the calibration of
alpha and the word reward, jointly, on a dev set.

Each setting decodes the whole set once; the references' log P is computed once (it does
not depend on the search) and turned into each setting's objective by the same `Scorer`,
so every setting's class shares come from the numbers its own beam reported.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from nmt.analysis.classify import SEARCH, classify, shares
from nmt.analysis.records import Calibration, SweepRow
from nmt.config import DecodeConfig
from nmt.data.batching import make_batch, sentence_batches
from nmt.data.tokenizer import Tokenizer
from nmt.evaluate.metrics import MetricSettings, corpus_scores
from nmt.model import Seq2Seq
from nmt.search.decode import decode_nbest
from nmt.search.scoring import Scorer


@dataclass
class Scored:
    """Sources to decode and their references, each with log P(y*|x) and length."""

    src_ids: list[list[int]]  # without EOS
    refs: list[str]  # reference text
    ref_logprob: list[float]  # log P(y*|x), EOS included
    ref_len: list[int]  # T, EOS included


def score_references(
    model: Seq2Seq,
    src_ids: list[list[int]],
    refs: list[str],
    tgt: Tokenizer,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> Scored:
    """Score each reference (SentencePiece-encoded as training targets, EOS added)."""
    ref_ids = tgt.encode(refs)
    logprob = [0.0] * len(src_ids)
    model.eval()
    for index in sentence_batches([len(s) for s in src_ids], batch_size):
        batch = make_batch([src_ids[i] for i in index], [ref_ids[i] for i in index], index)
        batch = batch.to(device)
        _, lp, _ = Scorer().score(model, batch.src, batch.src_len, batch.tgt, batch.tgt_len)
        for i, value in zip(index, lp.tolist(), strict=True):
            logprob[i] = value
    return Scored(src_ids, refs, logprob, [len(r) + 1 for r in ref_ids])


def setting_row(
    model: Seq2Seq,
    tgt: Tokenizer,
    data: Scored,
    cfg: DecodeConfig,
    tol: float = 1e-6,
    short_ratio: float = 0.5,
    device: torch.device | str = "cpu",
) -> SweepRow:
    """Decode with cfg (nbest 1) and measure: BLEU, chrF, mean log P, length ratio, rates of
    empty and short outputs, class shares (the search-error rate among them), wall time."""
    start = time.perf_counter()
    results = decode_nbest(model, data.src_ids, replace(cfg, nbest=1), device)
    ids = [r.token_lists()[0] for r in results]
    hyps = tgt.decode(ids)
    scorer = Scorer.from_config(cfg)
    ref_obj = scorer.objective(torch.tensor(data.ref_logprob), torch.tensor(data.ref_len))
    refs_norm = tgt.decode(tgt.encode(data.refs))  # y* detokenised as the model sees it
    classes = [
        classify(h == r, ro, float(res.score[0]), rl, float(res.logprob[0]), tol)[0]
        for h, r, ro, rl, res in zip(
            hyps, refs_norm, ref_obj.tolist(), data.ref_logprob, results, strict=True
        )
    ]
    scores = corpus_scores(hyps, data.refs, MetricSettings(("bleu", "chrf")))
    n = max(len(hyps), 1)
    short = sum(len(i) < short_ratio * (t - 1) for i, t in zip(ids, data.ref_len, strict=True))
    return SweepRow(
        beam=cfg.beam_size,
        alpha=cfg.alpha,
        word_reward=cfg.word_reward,
        bleu=scores["bleu"].score,
        chrf=scores["chrf"].score,
        length_ratio=scores["bleu"].length.ratio,
        mean_logprob=sum(float(r.logprob[0]) for r in results) / n,
        empty_rate=sum(not i for i in ids) / n,
        short_rate=short / n,
        search_error_rate=shares(classes)[SEARCH],
        shares=shares(classes),
        seconds=round(time.perf_counter() - start, 2),
    )


def sweep(
    model: Seq2Seq,
    tgt: Tokenizer,
    data: Scored,
    cfg: DecodeConfig,
    beams: list[int],
    alphas: list[float],
    tol: float = 1e-6,
    short_ratio: float = 0.5,
    device: torch.device | str = "cpu",
    progress: Callable[[int], object] | None = None,
    word_rewards: Sequence[float] | None = None,
) -> list[SweepRow]:
    """setting_row for every beam width × alpha × word reward (beam search; penalty "none"
    becomes "norm", under which alpha means something; word_rewards None: cfg's alone)."""
    penalty = "norm" if cfg.length_penalty == "none" else cfg.length_penalty
    rewards = [cfg.word_reward] if word_rewards is None else list(word_rewards)
    rows = []
    for beam, alpha, reward in itertools.product(beams, alphas, rewards):
        setting = replace(
            cfg,
            strategy="beam",
            beam_size=beam,
            alpha=alpha,
            length_penalty=penalty,
            word_reward=reward,
        )
        rows.append(setting_row(model, tgt, data, setting, tol, short_ratio, device))
        if progress is not None:
            progress(1)
    return rows


def calibrate(rows: list[SweepRow], dev_src: str) -> Calibration:
    """The setting with the best BLEU on dev_src (ties: the smaller alpha, then the word
    reward nearer 0), with its search-error rate."""
    best = max(rows, key=lambda r: (r.bleu, -r.alpha, -abs(r.word_reward)))
    return Calibration(dev_src, best.alpha, best.word_reward, best.bleu, rows, best)
