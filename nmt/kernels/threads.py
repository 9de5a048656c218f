"""How many threads torch's CPU kernels run on: the CPUs the process may use, and a tuner
that measures, unit of work by unit of work, whether fewer threads are faster right now.

Beside another busy process, a parallel region of torch's 2-thread kernels waits at its
barrier for whichever thread the OS has just descheduled, and OpenMP's workers spin while
they wait: on 2 cores one busy neighbour made 2-thread decoding and training several times
slower, where 1 thread lost little (bench/README.md, "Under load"). No thread count is right
for both an idle and a loaded machine, and the load changes while a job runs, so decoding
measures: `ThreadTuner` times each decoding batch per unit of work (source tokens × beam)
under the count it chose, keeps the fastest, and tries the others again now and then. A
batch, not a step: a step takes a millisecond and its cost per row changes as sentences
end, too noisy to compare counts by.

Training keeps one count for the whole run: a gradient summed by 1 thread and by 2 differs
in its last bits, and a run must resume bit-identically (nmt/train). Decoding's kernels have
no such reduction across threads: its outputs are the same under every count
(tests/kernels/test_threads.py holds them so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from nmt.config_checks import thread_count
from nmt.resources import available_cpus


def resolve_threads(threads: str | int, processes: int = 1) -> tuple[int, bool]:
    """The config key `threads` (auto | N ≥ 1; 0 = torch's own default) → (count, tune).

    auto: the CPUs available to the process (`available_cpus`), shared among `processes`
    (a torchrun node's ranks), with decoding tuned (`ThreadTuner`); N: exactly N, untuned.
    """
    count = thread_count(threads)
    if count is None:
        return max(1, available_cpus() // max(1, processes)), True
    return count or torch.get_num_threads(), False


def set_threads(threads: str | int, processes: int = 1) -> ThreadTuner | None:
    """Set torch's intra-op thread count as `threads` says; the tuner decoding then uses
    (None when the count is fixed)."""
    count, tune = resolve_threads(threads, processes)
    torch.set_num_threads(count)
    return ThreadTuner(count) if tune and count > 1 else None


class ThreadTuner:
    """Picks the thread count of each unit of work (a decoding batch) by its measured speed.

    Candidates are `most` threads, half of them and 1, `most` first. After one warm-up unit
    each count runs a trial of `trial` units in a row; the cost of a count is its seconds
    per unit of work (source tokens × beam) averaged over its trial, and the running count's
    is a moving average (each unit weighing `smooth`). The fastest runs; every other count
    is tried again after `every` units, a wait doubled each time it loses (up to 16 times),
    so a count that is far slower under load (2 threads beside a busy process) costs little
    to keep checking, and a change of load is still noticed. Fewer threads take over only
    when `down` faster (noise idle must not trade the second core away), more threads when
    `up` faster. A running count whose cost has moved by half since the last decision
    (the load changed) has every other count tried at once.
    """

    def __init__(
        self,
        most: int,
        every: int = 8,
        trial: int = 1,
        smooth: float = 0.5,
        down: float = 0.8,
        up: float = 0.95,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.candidates = sorted({most, max(1, most // 2), 1}, reverse=True)
        self.cost: dict[int, float] = {}  # seconds per unit of work, each count's
        self.wait = dict.fromkeys(self.candidates, every)  # units before the next trial
        self.last_trial = dict.fromkeys(self.candidates, 0)  # the unit each trial began at
        self.every, self.trial, self.smooth, self.down, self.up = every, trial, smooth, down, up
        self.clock = clock
        self.units = 0
        self.best = most
        self.trying: int | None = None  # the count on trial, and its measurements so far
        self.trial_costs: list[float] = []
        self.decided_at: float | None = None  # the best's cost when it was last chosen

    def choose(self) -> int:
        """The thread count the next unit runs with."""
        if self.units == 0 or self.best not in self.cost:
            return self.best  # warm-up (one-off costs, not measured), then the first figure
        if self.trying is None:
            due = [c for c in self.candidates if c != self.best and self._due(c)]
            if due:
                self.trying, self.trial_costs = due[0], []
                self.last_trial[due[0]] = self.units
        return self.trying if self.trying is not None else self.best

    def _due(self, count: int) -> bool:
        return count not in self.cost or self.units - self.last_trial[count] >= self.wait[count]

    def record(self, threads: int, seconds: float, work: float) -> None:
        """What the unit run with `threads` cost: seconds for `work` units of work."""
        self.units += 1
        if self.units == 1 or work <= 0:
            return
        cost = seconds / work
        if threads == self.trying:
            self.trial_costs.append(cost)
            if len(self.trial_costs) >= self.trial:
                self._decide(threads, sum(self.trial_costs) / len(self.trial_costs))
            return
        old = self.cost.get(threads)
        self.cost[threads] = cost if old is None else old + self.smooth * (cost - old)
        if self.decided_at is None:
            self.decided_at = self.cost[threads]
        elif not self.decided_at / 1.5 < self.cost[threads] < 1.5 * self.decided_at:
            self.wait = dict.fromkeys(self.candidates, 0)  # the load changed: look again
            self.decided_at = self.cost[threads]

    def _decide(self, count: int, cost: float) -> None:
        """A trial of `count` ended at `cost`: it takes over, or waits twice as long."""
        self.cost[count], self.trying = cost, None
        best = self.cost.get(self.best)
        need = self.down if count < self.best else self.up
        if best is None or cost < need * best:
            self.best, self.decided_at = count, cost
            self.wait = dict.fromkeys(self.candidates, self.every)
            self.last_trial = dict.fromkeys(self.candidates, self.units)
        else:
            self.wait[count] = min(max(self.every, 2 * self.wait[count]), 16 * self.every)

    @contextmanager
    def unit(self, work: float) -> Iterator[int]:
        """Run one unit of `work` (> 0) under the chosen count, timing it; restores nothing:
        the count stays until the next unit's choice."""
        threads = self.choose()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        start = self.clock()
        yield threads
        self.record(threads, self.clock() - start, work)

    def describe(self) -> str:
        costs = ", ".join(f"{c}: {1e6 * s:.3g} µs" for c, s in sorted(self.cost.items()))
        return f"threads tuned among {self.candidates}, now {self.best} ({costs} per unit)"
