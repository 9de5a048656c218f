"""The micro-batching queue alone, with a stand-in model: who shares a call, and who does not."""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from nmt.serve.batching import MicroBatcher


class Model:
    """Upper-cases items; records each call; the first call waits until released."""

    def __init__(self, hold_first: bool = True) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, key, items):
        self.release.wait(10)
        self.calls.append((key, list(items)))
        if "boom" in items:
            raise ValueError("boom")
        return [f"{key}:{x.upper()}" for x in items]


async def _with_batcher(model, fn, **kwargs):
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(model, pool, **kwargs)
        batcher.start()
        try:
            return await asyncio.wait_for(fn(batcher), 20)
        finally:
            model.release.set()
            await batcher.stop()


async def _queued(batcher, n: int) -> None:
    while batcher.queued < n:
        await asyncio.sleep(0.001)


def test_requests_waiting_together_share_one_call_in_arrival_order():
    model = Model()

    async def go(b):
        first = asyncio.ensure_future(b.submit("k", ["a"]))
        await asyncio.sleep(0.05)  # the first call runs (held); the next ones queue
        rest = [asyncio.ensure_future(b.submit("k", [x, x + x])) for x in "bcd"]
        await _queued(b, 6)
        model.release.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(_with_batcher(model, go, max_wait_s=0.001))
    assert answers == [["k:A"], ["k:B", "k:BB"], ["k:C", "k:CC"], ["k:D", "k:DD"]]
    assert model.calls == [("k", ["a"]), ("k", ["b", "bb", "c", "cc", "d", "dd"])]


def test_different_keys_are_never_mixed_and_the_oldest_goes_first():
    model = Model()

    async def go(b):
        first = asyncio.ensure_future(b.submit("x", ["0"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(b.submit(k, [k])) for k in ["y", "x", "y", "z"]]
        await _queued(b, 4)
        model.release.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(_with_batcher(model, go))
    assert answers == [["x:0"], ["y:Y"], ["x:X"], ["y:Y"], ["z:Z"]]
    assert model.calls == [("x", ["0"]), ("y", ["y", "y"]), ("x", ["x"]), ("z", ["z"])]


def test_a_batch_holds_at_most_max_batch_items_but_a_large_request_is_not_refused():
    model = Model()

    async def go(b):
        first = asyncio.ensure_future(b.submit("k", ["0"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(b.submit("k", items)) for items in (["a"] * 5, ["b"] * 2)]
        rest += [asyncio.ensure_future(b.submit("k", ["c"] * 2))]
        await _queued(b, 9)
        model.release.set()
        return await asyncio.gather(first, *rest)

    asyncio.run(_with_batcher(model, go, max_batch=4))
    assert [len(items) for _, items in model.calls] == [1, 5, 4]


def test_a_failing_call_fails_its_own_requests_only():
    model = Model()

    async def go(b):
        first = asyncio.ensure_future(b.submit("k", ["0"]))
        await asyncio.sleep(0.05)
        bad = asyncio.ensure_future(b.submit("bad", ["boom"]))
        good = asyncio.ensure_future(b.submit("k", ["fine"]))
        await _queued(b, 2)
        model.release.set()
        assert await first == ["k:0"] and await good == ["k:FINE"]
        with pytest.raises(ValueError, match="boom"):
            await bad
        return await b.submit("k", ["after"])  # the queue goes on

    assert asyncio.run(_with_batcher(model, go)) == ["k:AFTER"]


def test_a_cancelled_request_is_not_sent_to_the_model():
    model = Model()

    async def go(b):
        first = asyncio.ensure_future(b.submit("k", ["0"]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(b.submit("k", ["gone"]))
        kept = asyncio.ensure_future(b.submit("k", ["kept"]))
        await _queued(b, 2)
        gone.cancel()  # the client disconnected
        model.release.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(_with_batcher(model, go)) == [["k:0"], ["k:KEPT"]]
    assert model.calls == [("k", ["0"]), ("k", ["kept"])]


class Rows:
    """A stand-in step-wise search: an item of n letters ends after n steps, upper-cased.
    Records, per step, the items it admitted and the rows it held; "boom" fails its step.
    Its first step waits until released, like Model's first call."""

    def __init__(self, key, model: Model, log: list) -> None:
        self.key, self.model, self.log = key, model, log
        self.rows: dict = {}  # tag → [item, steps left]

    def __len__(self) -> int:
        return len(self.rows)

    def advance(self, new):
        self.model.release.wait(10)
        self.log.append(("step", self.key, [item for _, item in new], len(self.rows)))
        if any(item == "boom" for _, item in new):
            raise ValueError("boom")
        self.rows.update({tag: [item, len(item)] for tag, item in new})
        ended = []
        for tag, row in list(self.rows.items()):
            row[1] -= 1
            if row[1] == 0:
                ended.append((tag, f"{self.key}:{row[0].upper()}"))
                del self.rows[tag]
        return ended


def streamed(model: Model, log: list, keys=("g",)):
    """A stream factory: Rows for the keys given, None (batched whole) for the others."""

    def stream(key):
        return Rows(key, model, log) if key in keys else None

    return stream


def test_a_request_arriving_while_the_stream_decodes_joins_it_at_the_next_step():
    model, log = Model(), []

    async def go(b):
        first = asyncio.ensure_future(b.submit("g", ["aaaa", "a"]))
        await asyncio.sleep(0.05)  # the first step runs (held)
        second = asyncio.ensure_future(b.submit("g", ["bb"]))
        await _queued(b, 1)
        model.release.set()
        return await asyncio.gather(first, second)

    answers = asyncio.run(_with_batcher(model, go, stream=streamed(model, log)))
    assert answers == [["g:AAAA", "g:A"], ["g:BB"]]  # each request's own, in its order
    # step 2 admits "bb" beside "aaaa" (still decoding); nothing waited for the stream to empty
    assert log[:2] == [("step", "g", ["aaaa", "a"], 0), ("step", "g", ["bb"], 1)]
    assert len(log) == 4 and model.calls == []  # one stream, no whole-batch call


def test_an_older_request_with_other_options_closes_the_stream_to_newcomers():
    model, log = Model(), []

    async def go(b):
        first = asyncio.ensure_future(b.submit("g", ["aaa"]))
        await asyncio.sleep(0.05)
        beam = asyncio.ensure_future(b.submit("beam", ["x"]))  # older than the next greedy
        late = asyncio.ensure_future(b.submit("g", ["c"]))
        await _queued(b, 2)
        model.release.set()
        return await asyncio.gather(first, beam, late)

    answers = asyncio.run(_with_batcher(model, go, stream=streamed(model, log)))
    assert answers == [["g:AAA"], ["beam:X"], ["g:C"]]
    # "c" did not join the first stream: the beam request ran once it emptied, then "c"
    assert [entry[2] for entry in log] == [["aaa"], [], [], ["c"]]
    assert model.calls == [("beam", ["x"])]


def test_a_failing_step_fails_the_streams_requests_and_the_next_stream_runs():
    model, log = Model(hold_first=False), []

    async def go(b):
        with pytest.raises(ValueError, match="boom"):
            await b.submit("g", ["boom"])
        return await b.submit("g", ["ok"])

    assert asyncio.run(_with_batcher(model, go, stream=streamed(model, log))) == ["g:OK"]


class Gated(Rows):
    """Rows whose every step waits for a permit the test gives; `asked` counts the steps the
    batcher has called for (once it is n, its choice of who joins step n is made)."""

    def __init__(self, key, model: Model, log: list) -> None:
        super().__init__(key, model, log)
        self.permits, self.asked = threading.Semaphore(0), 0

    def advance(self, new):
        self.asked += 1
        assert self.permits.acquire(timeout=10), "the test gave no permit for this step"
        return super().advance(new)


async def _asked(made: list, n: int) -> None:
    """Until the (one) gated stream has been asked for step n (and waits for its permit)."""
    while not made or made[0].asked < n:
        await asyncio.sleep(0.001)


async def _step(made: list) -> None:
    """Let the stream run one step; return once the batcher has chosen the next one's rows."""
    asked = made[0].asked
    made[0].permits.release()
    await _asked(made, asked + 1)


def _gated(model: Model, log: list, made: list):
    def stream(key):
        made.append(Gated(key, model, log))
        return made[-1]

    return stream


async def _finish(made: list, *requests):
    for _ in range(200):
        made[0].permits.release()
    return await asyncio.gather(*requests)


def test_sentences_join_a_busy_stream_in_groups_not_one_at_a_time():
    model, log, made = Model(hold_first=False), [], []
    rows = 8
    group = math.ceil(MicroBatcher.ADMIT_FRACTION * rows)  # sentences that make a group
    assert group >= 2, "the test needs groups of 2 or more sentences"

    async def go(b):
        first = asyncio.ensure_future(b.submit("g", ["a" * 20] * rows))
        await _asked(made, 1)
        second = asyncio.ensure_future(b.submit("g", ["bbb"] * (group - 1)))
        await _queued(b, group - 1)
        await _step(made)  # one sentence short of a group: they wait
        third = asyncio.ensure_future(b.submit("g", ["cc"]))
        await _queued(b, group)
        await _step(made)  # a group: they join together
        return await _finish(made, first, second, third)

    answers = asyncio.run(_with_batcher(model, go, stream=_gated(model, log, made)))
    assert answers == [["g:" + "A" * 20] * rows, ["g:BBB"] * (group - 1), ["g:CC"]]
    joined = [entry[2] for entry in log[:3]]
    assert joined == [["a" * 20] * rows, [], ["bbb"] * (group - 1) + ["cc"]]


def test_a_lone_sentence_waits_for_company_at_most_hold_steps():
    model, log, made = Model(hold_first=False), [], []
    hold = MicroBatcher.HOLD_STEPS

    async def go(b):
        first = asyncio.ensure_future(b.submit("g", ["a" * (hold + 4)] * 8))
        await _asked(made, 1)
        lone = asyncio.ensure_future(b.submit("g", ["bbb"]))
        await _queued(b, 1)
        for _ in range(hold):
            await _step(made)
        return await _finish(made, first, lone)

    answers = asyncio.run(_with_batcher(model, go, stream=_gated(model, log, made)))
    assert answers[1] == ["g:BBB"]
    # it waited while `hold` steps of 8 busy rows ran, then joined alone
    assert [entry[2] for entry in log[1 : hold + 1]] == [[]] * (hold - 1) + [["bbb"]]


def test_an_idle_stream_takes_a_lone_sentence_at_once():
    model, log, made = Model(hold_first=False), [], []

    async def go(b):
        first = asyncio.ensure_future(b.submit("g", ["aaa"]))
        await _asked(made, 1)
        second = asyncio.ensure_future(b.submit("g", ["b"]))
        await _queued(b, 1)
        await _step(made)
        return await _finish(made, first, second)

    answers = asyncio.run(_with_batcher(model, go, stream=_gated(model, log, made)))
    assert answers == [["g:AAA"], ["g:B"]]
    # one row decoding: a single sentence is already a group
    assert [entry[2] for entry in log[:2]] == [["aaa"], ["b"]]
