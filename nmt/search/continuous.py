"""Greedy decoding that sentences join and leave between steps (continuous batching).

A server receives sentences a request at a time. Decoding each group of requests as one
batch leaves the model stepping a shrinking batch: rows leave as their sentences end, and a
step costs nearly as much for the few long sentences left as for the full batch (on a
2-core CPU: 3.3 ms a step for 1 row, 7.5 ms for 32; bench/README.md, "Server"). Here a
sentence that arrives while others decode is encoded and joins them at the next step, so
the rows stay full while requests keep coming.

Every row follows greedy_search: the same masking (PAD and BOS never, EOS not before
min_len), the same length limit, the same result fields; its tokens are those of decoding
it alone (tests/search/test_continuous.py).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

from nmt import BOS_ID, EOS_ID
from nmt.data.batching import make_batch
from nmt.model import Seq2Seq
from nmt.model.decoder import cat_padded
from nmt.search.greedy import best_tokens
from nmt.search.result import NEVER_OUTPUT, SearchResult, max_lengths
from nmt.search.scoring import Scorer

# the per-row buffers, each (N, ...): rows admitted are appended, rows ended removed
ROWS = ("y", "logprob", "length", "limit", "src_len", "tokens", "token_lps", "attention")


class GreedyStream:
    """The rows decoding now, N of them, each a sentence tagged by its caller.

    `admit(sources, tags)` encodes new sentences (id lists without EOS); `step()` advances
    every row one token and returns the (tag, result) of the sentences that ended. Not
    thread-safe: one thread drives it (the server's model thread).
    """

    def __init__(
        self,
        model: Seq2Seq,
        scorer: Scorer,
        max_len_a: float,
        max_len_b: int,
        min_len: int = 0,
        device: torch.device | str = "cpu",
        tune_every: int = 16,
    ) -> None:
        self.model, self.scorer, self.min_len = model, scorer, min_len
        self.max_len_a, self.max_len_b = max_len_a, max_len_b
        self.device = torch.device(device)
        self.tags: list[Hashable] = []  # (N,) the caller's tag of each row
        self.enc = self.state = None  # N rows of model.encode / model.step's state
        self.y = self.logprob = self.length = self.limit = self.src_len = None  # (N,) each
        self.tokens = self.token_lps = None  # (N, T) output so far, T = the longest limit
        self.attention = None  # (N, T, S)
        self.never = NEVER_OUTPUT.to(self.device)
        # the thread tuner (nmt.kernels.threads) gets units of tune_every steps: one step,
        # a few milliseconds whose cost changes as rows come and go, is too noisy a unit
        self.tuner, self.tune_every = model.kernels.tuner, tune_every
        self._unit: list = []  # [threads, seconds, work, steps] of the unit under way

    def __len__(self) -> int:
        return len(self.tags)

    @torch.inference_mode()
    def admit(self, sources: Sequence[list[int]], tags: Sequence[Hashable]) -> None:
        """Encode sources (id lists without EOS; none empty) and add them as rows."""
        if not sources:
            return
        batch = make_batch(list(sources), None, range(len(sources))).to(self.device)
        n = len(sources)
        enc = self.model.encode(batch.src, batch.src_len)
        limit = max_lengths(batch.src_len, self.max_len_a, self.max_len_b)
        new = {  # every name of ROWS
            "y": batch.src.new_full((n,), BOS_ID),
            "logprob": torch.zeros(n, device=self.device),
            "length": torch.zeros(n, dtype=torch.long, device=self.device),
            "limit": limit,
            "src_len": batch.src_len,
            "tokens": batch.src.new_zeros(n, int(limit.max())),
            "token_lps": torch.zeros(n, int(limit.max()), device=self.device),
            "attention": torch.zeros(n, int(limit.max()), batch.src.size(1), device=self.device),
        }
        state = self.model.init_state(enc)
        if self.tags:
            enc, state = type(enc).cat([self.enc, enc]), type(state).cat([self.state, state])
            new = {name: cat_padded([getattr(self, name), value]) for name, value in new.items()}
        self.enc, self.state = enc, state
        for name, value in new.items():
            setattr(self, name, value)
        self.tags.extend(tags)

    @torch.inference_mode()
    def step(self) -> list[tuple[Hashable, SearchResult]]:
        """One token for every row; the sentences that ended leave, with their results."""
        if not self.tags:
            return []
        self._start_unit()
        start = time.perf_counter()
        log_probs, self.state, attn = self.model.step(self.enc, self.state, self.y)
        early = self.length + 1 < self.min_len  # (N,) EOS not yet allowed
        best_lp, self.y = best_tokens(log_probs, self.never, early if bool(early.any()) else None)
        rows = torch.arange(len(self.tags), device=self.device)
        self.tokens[rows, self.length] = self.y
        self.token_lps[rows, self.length] = best_lp
        self.attention[rows, self.length, : attn.size(1)] = attn
        self.logprob += best_lp
        self.length += 1
        done = (self.y == EOS_ID) | (self.limit <= self.length)  # (N,)
        ended = self._leave(done) if bool(done.any()) else []
        self._end_unit(time.perf_counter() - start, len(rows))
        return ended

    def _leave(self, done: Tensor) -> list[tuple[Hashable, SearchResult]]:
        """Results of the rows done (N,) bool; the rest stay, in order."""
        gone = done.nonzero().squeeze(1).tolist()
        score = self.scorer.objective(self.logprob[done], self.length[done])
        ended = []
        for j, i in enumerate(gone):
            t, s = int(self.length[i]), int(self.src_len[i])
            result = SearchResult(
                self.tokens[i : i + 1, :t].clone(),
                self.length[i : i + 1].clone(),
                self.logprob[i : i + 1].clone(),
                self.attention[i : i + 1, :t, :s].clone(),
                score[j : j + 1],
                self.token_lps[i : i + 1, :t].clone(),
            )
            ended.append((self.tags[i], result))
        keep = (~done).nonzero().squeeze(1)
        self.tags = [self.tags[i] for i in keep.tolist()]
        if not self.tags:
            self.enc = self.state = None
            return ended
        self.enc, self.state = self.enc.select(keep), self.state.select(keep)
        for name in ROWS:
            setattr(self, name, getattr(self, name)[keep])
        return ended

    def _start_unit(self) -> None:
        if self.tuner is not None and not self._unit:
            threads = self.tuner.choose()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
            self._unit = [threads, 0.0, 0.0, 0]

    def _end_unit(self, seconds: float, rows: int) -> None:
        if self.tuner is None:
            return
        self._unit[1] += seconds
        self._unit[2] += rows
        self._unit[3] += 1
        if self._unit[3] >= self.tune_every:
            self.tuner.record(*self._unit[:3])
            self._unit = []
