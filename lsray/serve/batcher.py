"""Batches formed when the worker is free: calls that queue while a batch runs share the next one.

Why not ``@serve.batch``: Ray Serve (2.60) forms each batch when its first call arrives, waits at
most ``batch_wait_timeout_s`` for more, and only then queues that batch for the
``max_concurrent_batches`` semaphore. Shards of concurrent requests reach the sample replica a few
hundred milliseconds apart (face tracking is serialised per prepare replica), so each became a
batch of one and they ran one after another: measured batch sizes [1, 1, 1, 1, 1] for 4
concurrent ``/v1/dub`` requests (``benchmarks/serve_bench.py``). Here the next batch is cut when
the previous one has finished, from everything that queued meanwhile (up to ``max_size``); an
idle worker still waits ``wait_s`` after a first call for company.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Sequence


class FreeWorkerBatcher:
    """``await submit(item)`` -> ``run(batch)``'s result for ``item``. ``run`` takes a list of
    items and returns one result per item, in order (an Exception instance as a result is
    raised to that caller only); it runs in a worker thread, one batch at a time."""

    def __init__(self, run: Callable[[list], Sequence[Any]], max_size: int = 4, wait_s: float = 0.05) -> None:
        self.run = run
        self.max_size, self.wait_s = max_size, wait_s
        self.sizes: list[int] = []  # sizes of the last batches run (observability, benchmark)
        self._queue: list[tuple[Any, asyncio.Future, float]] = []  # (item, its caller's future, arrival time)
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None

    def configure(self, max_size: int, wait_s: float) -> None:
        if max_size < 1 or wait_s < 0:
            raise ValueError(f"max_size must be >= 1 and wait_s >= 0 (got {max_size}, {wait_s})")
        self.max_size, self.wait_s = max_size, wait_s

    async def submit(self, item: Any) -> Any:
        if self._loop_task is None or self._loop_task.done():
            self._arrived = asyncio.Event()
            self._loop_task = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, time.monotonic()))
        self._arrived.set()
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def _serve(self) -> None:
        assert self._arrived is not None
        while True:
            await self._arrived.wait()
            self._queue = [q for q in self._queue if not q[1].done()]  # callers that gave up
            if not self._queue:
                self._arrived.clear()
                continue
            # An idle worker waits a little for company; a busy one found its company queued.
            wait = self._queue[0][2] + self.wait_s - time.monotonic()
            if wait > 0 and len(self._queue) < self.max_size:
                await asyncio.sleep(wait)
            batch, self._queue = self._queue[: self.max_size], self._queue[self.max_size:]
            if not self._queue:
                self._arrived.clear()
            self.sizes = (self.sizes + [len(batch)])[-1000:]
            try:
                results = await asyncio.to_thread(self.run, [item for item, _, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
            except Exception as exc:  # noqa: BLE001 - every caller of this batch gets it
                results = [exc] * len(batch)
            except BaseException:  # the loop itself is stopped: its callers must not wait forever
                for _, future, _ in batch:
                    future.cancel()
                raise
            for (_, future, _), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
