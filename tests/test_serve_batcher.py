"""The sample replica's batcher: calls that queue while a batch runs share the next batch."""

from __future__ import annotations

import asyncio
import time

import pytest

from lsray.serve.batcher import FreeWorkerBatcher


def test_calls_that_arrive_while_a_batch_runs_share_the_next_one():
    """Arrivals 80 ms apart (longer than the 20 ms wait, as shards of concurrent requests are):
    the first runs alone, the three that came during it run together (Ray's @serve.batch ran
    each alone here)."""
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(list(items))
        time.sleep(0.4)
        return [i * 10 for i in items]

    async def main() -> list[int]:
        batcher = FreeWorkerBatcher(run, max_size=4, wait_s=0.02)
        calls = []
        for i in range(4):
            calls.append(asyncio.create_task(batcher.submit(i)))
            await asyncio.sleep(0.08)
        out = await asyncio.gather(*calls)
        assert batcher.sizes == [1, 3]
        return out

    assert asyncio.run(main()) == [0, 10, 20, 30]
    assert seen == [[0], [1, 2, 3]]


def test_an_idle_worker_waits_for_company_and_keeps_to_max_size():
    def run(items: list[int]) -> list[int]:
        return list(items)

    async def main() -> FreeWorkerBatcher:
        batcher = FreeWorkerBatcher(run, max_size=2, wait_s=0.2)
        assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 1, 2, 3, 4]
        return batcher

    assert asyncio.run(main()).sizes == [2, 2, 1]


def test_a_failed_item_fails_its_caller_only_and_a_failed_batch_fails_all():
    def run(items: list[int]) -> list:
        if -1 in items:
            raise RuntimeError("the batch broke")
        return [ValueError(f"bad {i}") if i == 2 else i for i in items]

    async def main() -> None:
        batcher = FreeWorkerBatcher(run, max_size=4, wait_s=0.05)
        out = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)), return_exceptions=True)
        assert out[0] == 1 and out[2] == 3 and isinstance(out[1], ValueError) and str(out[1]) == "bad 2"
        out = await asyncio.gather(batcher.submit(-1), batcher.submit(5), return_exceptions=True)
        assert all(isinstance(o, RuntimeError) and "broke" in str(o) for o in out)
        assert await batcher.submit(7) == 7  # the batcher goes on

    asyncio.run(main())


def test_configure_checks_its_values():
    batcher = FreeWorkerBatcher(list)
    batcher.configure(8, 0.0)
    assert (batcher.max_size, batcher.wait_s) == (8, 0.0)
    with pytest.raises(ValueError):
        batcher.configure(0, 0.1)
