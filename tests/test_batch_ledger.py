"""Where a lost clip was lost: the attempt ledger's bookkeeping and the reason the report gives."""

from __future__ import annotations

from lsray.batch.job import lost_reason
from lsray.batch.ledger import AttemptLedger


def test_ledger_counts_attempts_and_remembers_the_last_unit():
    ledger = AttemptLedger()
    ledger.start("prepare", "a", 0, "node-head", 10)
    ledger.finish("prepare", "a", 0)
    ledger.start("render", "a", 1, "node-spot", 11)  # dies under it ...
    ledger.start("render", "a", 1, "node-spot", 12)  # ... and is run again
    ledger.start("render", "b", 0, "node-spot", 11)
    ledger.finish("render", "b", 0)
    seen = ledger.last_seen()
    assert seen["a"] == {"stage": "render", "unit": 1, "node_id": "node-spot", "attempts": 2, "finished": False}
    assert seen["b"]["finished"] and seen["b"]["attempts"] == 1
    assert ledger.retries() == {"a": {"render": 1}}


def test_each_way_of_being_lost_has_its_reason():
    unit = {"stage": "render", "unit": 2, "node_id": "f" * 40, "attempts": 3, "finished": False}
    assert lost_reason(unit, 3, None).startswith("render of shard 2 did not finish: its worker died under it 3 time(s)")
    gone = frozenset({"f" * 40})
    assert "was lost with node ffffffffffff, which left the cluster" in lost_reason(unit, 3, None, gone)
    done = {**unit, "finished": True}
    assert "finished on node ffffffffffff, which then left the cluster with its output" in lost_reason(done, 3, None, gone)
    assert "output was lost with a batch" in lost_reason(done, 3, None)
    assert "pipeline stopped (RuntimeError: boom)" in lost_reason(None, 3, "RuntimeError: boom")
    prepare = {"stage": "prepare", "unit": 0, "node_id": "a" * 40, "attempts": 1, "finished": False}
    assert lost_reason(prepare, 3, None).startswith("prepare did not finish")  # clips, not shards, at prepare
    for reason in (lost_reason(unit, 3, None), lost_reason(None, 3, None)):
        assert reason.endswith("rerun the job to retry this clip")
