"""The micro-batching queue: concurrent requests become one model call.

Requests arrive on the event loop; the oldest one waiting opens a batch, and every request
with the same decode options that arrives within `max_wait_s` (or is already waiting) joins
it, up to `max_batch` sentences. The batch then runs on the one model thread, off the event
loop, so the server keeps answering (/health) while it translates. Requests whose options
differ are never mixed: they wait for a batch of their own, oldest first.

While a batch runs, new requests pile up; under load the next batch is full at once, which
is how the server's throughput approaches the batched CLI's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass
class _Request(Generic[R]):
    key: Hashable  # the decode options: only equal keys share a batch
    items: list[str]
    done: asyncio.Future[list[R]] = field(repr=False)


@dataclass
class BatchStats:
    """What the queue has done, for /health and the tests."""

    batches: int = 0  # model calls made
    requests: int = 0  # requests answered
    items: int = 0  # sentences translated
    largest: int = 0  # most sentences in one model call


class MicroBatcher(Generic[R]):
    """Collects (key, items) requests into batches for `run(key, items) -> results`.

    run is called on `executor` (one thread: the model is not re-entrant) with the items of
    every request in the batch, in arrival order, and must return one result per item.
    `start()` and `stop()` are called on the event loop that serves the requests.
    """

    def __init__(
        self,
        run: Callable[[Hashable, list[str]], Sequence[R]],
        executor: Executor,
        max_wait_s: float = 0.005,
        max_batch: int = 64,
    ) -> None:
        self.run = run
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
            items = [item for request in batch for item in request.items]
            self.running = len(items)
            try:
                results = await loop.run_in_executor(self.executor, self.run, key, items)
                if len(results) != len(items):
                    raise RuntimeError(f"{len(results)} results for {len(items)} items")
            except Exception as err:  # the requests of this batch fail; the server goes on
                for request in batch:
                    if not request.done.done():
                        request.done.set_exception(err)
                continue
            finally:
                self.running = 0
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.items += len(items)
            self.stats.largest = max(self.stats.largest, len(items))
            start = 0
            for request in batch:
                end = start + len(request.items)
                if not request.done.done():
                    request.done.set_result(list(results[start:end]))
                start = end
