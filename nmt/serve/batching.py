"""The micro-batching queue: concurrent requests become one model call.

Requests arrive on the event loop; the oldest one waiting opens a batch, and every request
with the same decode options that arrives within `max_wait_s` (or is already waiting) joins
it, up to `max_batch` sentences. The batch then runs on the one model thread, off the event
loop, so the server keeps answering (/health) while it translates. Requests whose options
differ are never mixed: they wait for a batch of their own, oldest first.

While a batch runs, new requests pile up; under load the next batch is full at once. But a
batch's rows leave as their sentences end, and its last, longest sentences cost almost a
full batch's time a step. So where `stream(key)` gives a step-wise search for a key (greedy
decoding: serve/streams.py), requests do not wait for the batch before them to end: their
sentences join the rows at the next step, up to max_batch of them, and each request is
answered when its last sentence ends. Sentences join a busy stream in groups (as many as
its rows, or whatever has waited HOLD_STEPS steps): encoding costs nearly as much for one
sentence as for eight. A stream stops taking new requests when an older one with other
options waits (it then runs once the stream has emptied): no starvation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

R = TypeVar("R")


class Stream(Protocol[R]):
    """A step-wise search (called on the model thread): rows join and leave between steps."""

    def __len__(self) -> int: ...  # sentences decoding

    def advance(self, new: list[tuple[Hashable, str]]) -> list[tuple[Hashable, R]]:
        """Admit new (tag, item) pairs, step once, return the (tag, result) of items ended."""
        ...


@dataclass
class _Request(Generic[R]):
    key: Hashable  # the decode options: only equal keys share a batch
    items: list[str]
    done: asyncio.Future[list[R]] = field(repr=False)


@dataclass
class BatchStats:
    """What the queue has done, for /health and the tests."""

    batches: int = 0  # model calls made (a stream's: one, however many steps it ran)
    requests: int = 0  # requests answered
    items: int = 0  # sentences translated
    largest: int = 0  # most sentences in one model call


class MicroBatcher(Generic[R]):
    """Collects (key, items) requests into batches for `run(key, items) -> results`.

    run is called on `executor` (one thread: the model is not re-entrant) with the items of
    every request in the batch, in arrival order, and must return one result per item.
    `stream(key)`, if given, is a Stream for the requests of key, or None to batch them
    whole (called on the executor too). `start()` and `stop()` are called on the event loop
    that serves the requests.
    """

    # a stream admits sentences in groups as large as this share of its rows, or once they
    # have waited HOLD_STEPS steps (see _admit); in process, 32 closed-loop clients: 1.0
    # gave 95 and 122 sentences/s, 0.5 86 and 98, 0.25 88 and 70, one at a time 63 and 76
    ADMIT_FRACTION = 1.0
    HOLD_STEPS = 16

    def __init__(
        self,
        run: Callable[[Hashable, list[str]], Sequence[R]],
        executor: Executor,
        max_wait_s: float = 0.005,
        max_batch: int = 64,
        stream: Callable[[Hashable], Stream[R] | None] | None = None,
    ) -> None:
        self.run = run
        self.stream = stream
        self.executor = executor
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._waiting: list[_Request[R]] = []  # oldest first
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.running = 0  # sentences in the model call under way

    @property
    def queued(self) -> int:
        """Sentences waiting for a batch."""
        return sum(len(r.items) for r in self._waiting)

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop batching; requests still waiting are failed (the server drained them first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in self._waiting:
            if not request.done.done():
                request.done.set_exception(RuntimeError("the server is shutting down"))
        self._waiting.clear()

    async def submit(self, key: Hashable, items: list[str]) -> list[R]:
        """The results for items, once the batch they joined has run."""
        if self._task is None or self._arrived is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if not items:
            return []
        request = _Request(key, list(items), asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._arrived.set()
        return await request.done

    def _take(self, key: Hashable, room: int, opening: bool = False) -> list[_Request[R]]:
        """Remove and return waiting requests with this key that fit in room sentences; an
        opening batch takes the oldest however large (the model call splits it)."""
        taken, kept = [], []
        for request in self._waiting:
            if request.done.cancelled():  # the client went away before its batch ran
                continue
            fits = len(request.items) <= room or (opening and not taken)
            if request.key == key and fits:
                taken.append(request)
                room -= len(request.items)
            else:
                kept.append(request)
        self._waiting = kept
        return taken

    async def _next_batch(self) -> list[_Request[R]]:
        """Wait for a request, then up to max_wait_s for others with its key to join it."""
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while not any(not r.done.cancelled() for r in self._waiting):
            self._waiting.clear()
            self._arrived.clear()
            await self._arrived.wait()
        first = next(r for r in self._waiting if not r.done.cancelled())
        batch = self._take(first.key, self.max_batch, opening=True)
        deadline = loop.time() + self.max_wait_s
        size = sum(len(r.items) for r in batch)
        while size < self.max_batch and (left := deadline - loop.time()) > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
            more = self._take(first.key, self.max_batch - size)
            batch += more
            size += sum(len(r.items) for r in more)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            key = batch[0].key
            stream = None
            if self.stream is not None:
                stream = await loop.run_in_executor(self.executor, self.stream, key)
            if stream is not None:
                await self._run_stream(stream, key, batch)
                continue
            items = [item for request in batch for item in request.items]
            self.running = len(items)
            try:
                results = await loop.run_in_executor(self.executor, self.run, key, items)
                if len(results) != len(items):
                    raise RuntimeError(f"{len(results)} results for {len(items)} items")
            except Exception as err:  # the requests of this batch fail; the server goes on
                _fail(batch, err)
                continue
            finally:
                self.running = 0
            self._count(len(batch), len(items), len(items))
            start = 0
            for request in batch:
                end = start + len(request.items)
                if not request.done.done():
                    request.done.set_result(list(results[start:end]))
                start = end

    async def _run_stream(self, stream: Stream[R], key: Hashable, batch: list) -> None:
        """Step stream until it is empty, admitting waiting requests of key between steps
        while no older request with other options waits."""
        loop = asyncio.get_running_loop()
        open_: dict[int, tuple[_Request[R], list]] = {}  # request number → it, its results
        taken, items, number, held, largest = 0, 0, 0, 0, 0  # held: steps requests waited
        try:
            while batch or len(stream):
                new = []
                for request in batch:
                    open_[number] = (request, [None] * len(request.items))
                    new += [((number, i), item) for i, item in enumerate(request.items)]
                    number += 1
                taken, items = taken + len(batch), items + len(new)
                self.running = len(stream) + len(new)
                largest = max(largest, self.running)
                ended = await loop.run_in_executor(self.executor, stream.advance, new)
                for (n, i), result in ended:
                    request, results = open_[n]
                    results[i] = result
                    if all(r is not None for r in results):
                        del open_[n]
                        if not request.done.done():
                            request.done.set_result(results)
                batch, held = [], held + 1 if self._waiting else 0
                if self._waiting and not self._older_other(key) and self._admit(key, stream, held):
                    batch, held = self._take(key, self.max_batch - len(stream)), 0
        except (Exception, asyncio.CancelledError) as err:  # they fail; the server goes on
            _fail([request for request, _ in open_.values()] + batch, err)
            if isinstance(err, asyncio.CancelledError):
                raise
            return
        finally:
            self.running = 0
        self._count(taken, items, largest)

    def _admit(self, key: Hashable, stream: Stream[R], held: int) -> bool:
        """Whether the requests of key waiting join the stream at this step, or wait for more.

        Encoding a group costs a few milliseconds however small it is (the encoder reads all
        its weights at every source position), so sentences join in groups: when they are at
        least ADMIT_FRACTION of the rows decoding, fill the rows, or have waited HOLD_STEPS
        steps (the latency bound); an empty stream takes whatever waits."""
        live = (r for r in self._waiting if r.key == key and not r.done.cancelled())
        waiting = sum(len(r.items) for r in live)
        room = self.max_batch - len(stream)
        return waiting >= min(room, self.ADMIT_FRACTION * len(stream)) or held >= self.HOLD_STEPS

    def _older_other(self, key: Hashable) -> bool:
        """Whether the oldest request waiting has options other than key."""
        live = (r for r in self._waiting if not r.done.cancelled())
        oldest = next(live, None)
        return oldest is not None and oldest.key != key

    def _count(self, requests: int, items: int, largest: int) -> None:
        """A model call (or a stream) answered requests with items, at most largest at once."""
        self.stats.batches += 1
        self.stats.requests += requests
        self.stats.items += items
        self.stats.largest = max(self.stats.largest, largest)


def _fail(requests: list[_Request], err: Exception) -> None:
    for request in requests:
        if not request.done.done():
            request.done.set_exception(err)
