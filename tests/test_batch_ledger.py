"""Where a lost clip was lost: the attempt ledger's bookkeeping and the reason the report gives."""

from __future__ import annotations

from lsray.batch.ledger import AttemptLedger, given_up, lost_reason


def test_ledger_counts_deaths_not_reruns_and_remembers_the_last_unit():
    ledger = AttemptLedger()
    assert ledger.start("prepare", "a", 0, "node-head", 10) == 0
    ledger.finish("prepare", "a", 0)
    assert ledger.start("prepare", "a", 0, "node-head", 10) == 0  # re-run after a finished attempt: no death
    ledger.finish("prepare", "a", 0)
    assert ledger.start("render", "a", 1, "node-spot", 11) == 0
    assert ledger.start("render", "a", 1, "node-spot", 12) == 1  # the worker died under the first attempt
    assert ledger.start("render", "b", 0, "node-spot", 11) == 0
    ledger.finish("render", "b", 0)
    seen = ledger.last_seen()
    assert seen["a"] == {"stage": "render", "unit": 1, "node_id": "node-spot", "attempts": 2, "finished": False}
    assert seen["b"]["finished"] and seen["b"]["attempts"] == 1
    assert ledger.retries() == {"a": {"prepare": 1, "render": 1}}


def test_each_way_of_being_lost_has_its_reason():
    assert given_up("render", 2, 3) == ("render of shard 2 did not finish: its worker died under it 3 time(s), "
                                        "the most allowed; rerun the job to retry this clip")
    assert given_up("prepare", 0, 2).startswith("prepare did not finish")  # clips, not shards, at prepare
    unit = {"stage": "render", "unit": 2, "node_id": "f" * 40, "attempts": 3, "finished": False}
    gone = frozenset({"f" * 40})
    assert "render of shard 2 was lost with node ffffffffffff, which left the cluster" in lost_reason(unit, None, gone)
    done = {**unit, "finished": True}
    assert "finished on node ffffffffffff, which then left the cluster with its output" in lost_reason(done, None, gone)
    assert "output was lost with a batch that failed" in lost_reason(done, None)
    assert "pipeline stopped (RuntimeError: boom)" in lost_reason(None, "RuntimeError: boom")
    assert "was running when the job's pipeline stopped" in lost_reason(unit, "RuntimeError: boom")
    for reason in (lost_reason(unit, None), lost_reason(None, None), lost_reason(done, None, gone)):
        assert reason.endswith("rerun the job to retry this clip")


def test_a_stalled_pipeline_stops_the_wait_and_errors_pass_through():
    import threading
    import time

    import pytest

    from lsray.batch.job import Stalled, watched

    hang = threading.Event()

    def rows():
        yield 1
        yield 2
        hang.wait()  # a stage no node can host: Ray Data would wait forever

    got, t0 = [], time.monotonic()
    with pytest.raises(Stalled, match="no progress for 0.5 s"):
        for row in watched(rows(), 0.5):
            got.append(row)
    assert got == [1, 2] and time.monotonic() - t0 < 5
    hang.set()

    def broken():
        yield "a"
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(watched(broken(), 5))
    assert list(watched(iter(range(3)), 5)) == [0, 1, 2]
