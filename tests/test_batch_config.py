"""Batch layer pieces that need no Ray cluster: stage config, row encoding, CLI wiring."""

from __future__ import annotations

import pytest

from lsray.batch.config import BatchConfigError, load_batch_config


def test_yaml_overrides_merge_stage_by_stage(tmp_path):
    path = tmp_path / "stages.yaml"
    path.write_text("sample:\n  num_gpus: 1\n  resources: {accelerator: 1}\nrender:\n  max_size: 4\n")
    cfg = load_batch_config(path, overrides={"render": {"num_cpus": 2}})
    assert cfg.sample.num_gpus == 1 and cfg.sample.resources == {"accelerator": 1}
    assert cfg.sample.remote_args() == {"num_cpus": 1.0, "num_gpus": 1.0, "resources": {"accelerator": 1}}
    assert cfg.render.max_size == 4 and cfg.render.num_cpus == 2
    assert cfg.prepare.max_size == 2  # untouched stages keep their own defaults


def test_bad_config_is_a_clear_error(tmp_path):
    path = tmp_path / "stages.yaml"
    path.write_text("sample:\n  min_size: 3\n  max_size: 1\n")
    with pytest.raises(BatchConfigError, match="max_size"):
        load_batch_config(path)
    path.write_text("sampel:\n  num_cpus: 1\n")
    with pytest.raises(BatchConfigError, match="sampel"):
        load_batch_config(path)


def test_local_cluster_has_cpus_for_every_pool():
    from lsray.batch.cluster import local_num_cpus

    cfg = load_batch_config()
    assert local_num_cpus(cfg) >= 4  # 1 + 0.5 * 3 + 1 + 0.25 rounded up


def test_rows_round_trip_through_numpy_batches():
    from lsray.batch.records import ClipTicket, decode, encode, rows_of, to_batch

    t = ClipTicket(clip_id="a", row_json="{}", line=3, out_uri="o")
    batch = to_batch([encode("row", "a", t), encode("report", "b", (t, None))])
    rows = list(rows_of(batch))
    assert [decode(r)[:2] for r in rows] == [("a", "row"), ("b", "report")]
    assert decode(rows[0])[2] == t


def test_cli_registers_dub_and_submit():
    from lsray.cli import build_parser

    args = build_parser().parse_args(["dub", "cat.jsonl", "--out", "o", "--model", "m", "--steps", "1"])
    assert args.steps == 1 and args.address is None
    args = build_parser().parse_args(["submit", "cat.jsonl", "--out", "o", "--model", "m", "--address", "http://x:1"])
    from lsray.batch.submit import job_arguments

    argv = job_arguments(args)
    assert argv[:5] == ["cat.jsonl", "--out", "o", "--model", "m"] and "--quiet" in argv


def test_metric_names_are_documented():
    import lsray.batch.metrics as m

    for name in m.METRIC_NAMES:
        assert f"``{name}``" in m.__doc__


def test_a_pool_runs_torch_on_its_configured_threads(monkeypatch):
    """`sample: {threads: 3}` reaches the sample actor's torch (before its models load) and no
    other stage's; 0 threads is refused when the config loads."""
    import torch

    import lsray.batch.ledger as ledger
    from lsray.batch.actors import RenderWorker, SampleWorker, WorkerContext

    class NoLedger:  # a worker outside Ray: no runtime context to ask for its node
        def __init__(self, name):
            self.handle = None

    monkeypatch.setattr(ledger, "LedgerClient", NoLedger)
    cfg = load_batch_config(overrides={"sample": {"threads": 3}})
    assert cfg.threads() == {"sample": 3}
    ctx = WorkerContext(bundle="unused", out_root="o", staging_root="s", template="{clip_id}.mp4",
                        model_id="m", threads=cfg.threads())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        RenderWorker(ctx)
        assert torch.get_num_threads() == 1
        SampleWorker(ctx)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    with pytest.raises(BatchConfigError, match="threads"):
        load_batch_config(overrides={"sample": {"threads": 0}})
