"""Exact search: the most probable translation under the model, by depth-first search.

After Stahlberg & Byrne (2019), "On NMT search errors and model errors: cat got your
tongue?": log-probabilities only fall as a sequence grows, so a prefix whose log P is
already no better than the best complete translation found so far can be pruned. Seeded
with the beam's result (and the reference) as that lower bound, the search visits children
best first and ends either having proven the mode of log P(y|x) or at its node/time budget.

The space searched is the beam's: outputs ending in EOS of length T ≤ the length limit
(T counts EOS; EOS not before min_len), and outputs cut at the limit without EOS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from nmt import BOS_ID, EOS_ID
from nmt.model import Seq2Seq
from nmt.model.decoder import DecoderState
from nmt.search.result import NEVER_OUTPUT


@dataclass
class ExactResult:
    """The best translation exact search found, and whether it is proven to be the mode."""

    tokens: list[int]  # ids, EOS included where produced ([EOS] = the empty translation)
    logprob: float  # log P(tokens|x)
    finished: bool  # the search space was exhausted: tokens is the mode
    nodes: int  # model steps taken
    seconds: float

    @property
    def empty(self) -> bool:
        """Whether this is the empty translation (EOS alone)."""
        return self.tokens == [EOS_ID]


@dataclass
class _Frame:
    """An expanded prefix: its decoder state and its children not yet visited, best first."""

    state: DecoderState  # after reading the prefix's last token (1 row)
    tokens: list[int]  # the prefix, without EOS
    child_logprob: list[float]  # log P of prefix + child, descending
    child_token: list[int]
    next: int = field(default=0)


@torch.inference_mode()
def exact_search(
    model: Seq2Seq,
    src: Tensor,
    src_len: Tensor,
    limit: int,
    min_len: int = 0,
    incumbent: tuple[list[int], float] | None = None,
    max_nodes: int = 10_000,
    max_seconds: float = 10.0,
) -> ExactResult:
    """The mode of log P(y|x) for one source src: (1, S), src_len: (1,), or the best found.

    incumbent: (tokens with EOS, log P) of a known translation, e.g. the beam's; only
    strictly better translations replace it, so a proven incumbent is returned as it is.
    """
    start = time.perf_counter()
    enc = model.encode(src, src_len)
    best_tokens, best = incumbent if incumbent is not None else ([], float("-inf"))
    never = NEVER_OUTPUT.to(src.device)
    nodes = 0

    def expand(state: DecoderState, y_prev: int, tokens: list[int], logprob: float):
        """Step on y_prev; update the best with complete children; the frame of the rest."""
        nonlocal best, best_tokens, nodes
        nodes += 1
        y = torch.tensor([y_prev], device=src.device)
        log_probs, state, _ = model.step(enc, state, y)  # (1, V)
        total = (logprob + log_probs[0]).index_fill(0, never, float("-inf"))  # (V,)
        t = len(tokens) + 1  # length T of every child
        if t < min_len:
            total[EOS_ID] = float("-inf")
        if t >= limit:  # at the length limit every child is complete, EOS or not
            value, token = total.max(0)
            if float(value) > best:
                best, best_tokens = float(value), [*tokens, int(token)]
            return None
        if float(total[EOS_ID]) > best:
            best, best_tokens = float(total[EOS_ID]), [*tokens, EOS_ID]
        total[EOS_ID] = float("-inf")
        keep = (total > best).nonzero().squeeze(1)  # children that could still win
        values, order = total[keep].sort(descending=True)
        return _Frame(state, tokens, values.tolist(), keep[order].tolist())

    root = expand(model.init_state(enc), BOS_ID, [], 0.0)
    stack = [root] if root is not None else []
    finished = True
    while stack:
        frame = stack[-1]
        if frame.next >= len(frame.child_token) or frame.child_logprob[frame.next] <= best:
            stack.pop()  # children are sorted: none of the rest can win either
            continue
        if nodes >= max_nodes or time.perf_counter() - start > max_seconds:
            finished = False
            break
        token, logprob = frame.child_token[frame.next], frame.child_logprob[frame.next]
        frame.next += 1
        child = expand(frame.state, token, [*frame.tokens, token], logprob)
        if child is not None:
            stack.append(child)
    return ExactResult(best_tokens, best, finished, nodes, time.perf_counter() - start)
