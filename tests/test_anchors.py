"""Long-range anchors (upgrade 3): keyframes sampled first, then every window pinned to them.

The tiny bundle is the parity UNet (full-window attention over up to 24 positions), declared
anchor-capable (keyframes 8 frames apart in sequences of 3, overlapping by 1), with detail transfer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from talking import write_dub, write_face_clip
from lsray.pipeline.options import DubOptions, OptionError
from lsray.pipeline.records import ClipSpec

FAST = dict(steps=1, guidance=1.0)
FRAMES = 48  # three windows; keyframes 0, 8, ..., 40 -> anchor sequences [0, 8, 16], [16, 24, 32], [24, 32, 40]


@pytest.fixture(scope="module")
def anchor_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("anchors") / "bundle"
    shutil.copytree(tiny_bundle, dst, symlinks=True)
    config = json.loads((dst / "config.json").read_text())
    config["sampler"]["anchors"] = {"stride": 8, "sequence": 3, "overlap": 1}
    config["sampler"]["detail_transfer"] = True  # decodes the reference too: the context frame is not decoded
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="module")
def flow(anchor_bundle):
    from lsray.bundle import load_bundle
    from lsray.pipeline.flow import ClipFlow

    return ClipFlow(load_bundle(anchor_bundle, device="cpu"), encode_preset="ultrafast")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    return write_face_clip(root / "src.mp4", frames=FRAMES), write_dub(root / "dub.wav", FRAMES / 25)


@pytest.fixture(scope="module")
def plan(flow, clip, tmp_path_factory):
    """``plan(**options)``: the clip's plan with those options, tracked once per set of options
    (face tracking is most of a plan's cost; nothing is staged before render)."""
    video, audio = clip
    out = tmp_path_factory.mktemp("out") / "o.mp4"
    plans: dict = {}

    def make(**opts):
        key = tuple(sorted(opts.items()))
        if key not in plans:
            plans[key] = flow.prepare(ClipSpec("a", str(video), str(audio), str(out), DubOptions(**{**FAST, **opts})))
        return plans[key]
    return make


def generate(flow, plan, perturb=None):
    """Every shard's generated crops (anchor pass first when the plan's anchors are on);
    ``perturb(record)`` may change audio tokens after the audio step."""
    def audio(record):
        record = flow.audio(record)
        if perturb:
            perturb(record)
        return record

    keyframes = flow.keyframes(plan)
    anchors = flow.anchors(audio(keyframes)) if keyframes is not None else None
    shards = [flow.sample([audio(s)])[0] for s in flow.shard(plan, anchors)]
    return np.concatenate([s.generated for s in shards]), anchors, shards


def test_shards_agree_bit_for_bit_with_anchors_on(flow, plan):
    generated = {}
    for seconds in (10.0, 0.64):  # one shard, or three shards of one window each
        assert plan(segment_seconds=seconds).settings.anchors is not None
        generated[seconds], anchors, shards = generate(flow, plan(segment_seconds=seconds))
        assert len(shards) == (1 if seconds > 1 else 3)
        assert shards[0].sampling["anchors"]["sequences"] == 3
    assert np.array_equal(generated[10.0], generated[0.64])
    assert generated[10.0].shape[0] == FRAMES


def test_anchor_pass_runs_once_first_and_windows_pin_its_output(flow, plan, monkeypatch):
    from lsray.pipeline import sample as sample_mod

    calls: list[tuple[int, bool]] = []  # (frames, keyframe sequence?) per UNet call
    real_forward = sample_mod.CountingUNet.forward

    def forward(self, x, t, audio, **kw):
        calls.append((x.shape[2], kw.get("positions") is not None))
        return real_forward(self, x, t, audio, **kw)

    finished = []  # (window's first clip frame, its final latents c F h w)
    real_finish = sample_mod.SampleStage._finish

    def finish(self, w, latents):
        finished.append((w.shard.start + int(w.idx[0]), latents.clone()))
        return real_finish(self, w, latents)

    monkeypatch.setattr(sample_mod.CountingUNet, "forward", forward)
    monkeypatch.setattr(sample_mod.SampleStage, "_finish", finish)
    _, anchors, _ = generate(flow, plan(segment_seconds=0.64))
    steps = FAST["steps"]
    # 6 keyframes in 3 sequences of 3, each `steps` UNet calls, all before the first window
    assert calls[: 3 * steps] == [(3, True)] * (3 * steps)
    assert all(not keyframe for _, keyframe in calls[3 * steps:])
    # windows 0 and 1 see the next window's first keyframe as a 17th frame; the last has none
    assert [f for f, _ in calls[3 * steps:]] == [17] * steps + [17] * steps + [16] * steps
    assert list(anchors.frames) == [0, 8, 16, 24, 32, 40]
    assert len(finished) == 3
    for first, latents in finished:
        for k in range(latents.shape[1]):
            row = anchors.index(first + k)
            if row is not None:  # a pinned keyframe: exactly the anchor pass's latent
                assert torch.equal(latents[:, k], torch.from_numpy(anchors.latents[row]))


def _perturb_frame(frame: int):
    def perturb(record):
        times = getattr(record, "frames", None)
        frames = np.asarray(times) if isinstance(times, np.ndarray) else np.arange(record.start, record.stop)
        hit = np.nonzero(frames == frame)[0]
        if len(hit):
            rng = np.random.default_rng(0)
            record.tokens[hit[0]] += rng.normal(0, 1, record.tokens[hit[0]].shape).astype(np.float32)
    return perturb


@pytest.mark.parametrize("anchors", ["on", "off"])
def test_information_crosses_window_boundaries_only_through_anchors(flow, plan, anchors):
    """Frame 16 is window 1's first frame and a keyframe: changing its audio changes window 0's
    frames (through the anchor pass's keyframes 0 and 8) only with anchors on."""
    base, _, _ = generate(flow, plan(anchors=anchors))
    changed, _, _ = generate(flow, plan(anchors=anchors), perturb=_perturb_frame(16))
    window0 = np.abs(changed[:16].astype(int) - base[:16]).max()
    assert not np.array_equal(changed[16:32], base[16:32])  # its own window changes either way
    if anchors == "on":
        assert window0 > 0
    else:
        assert window0 == 0


def test_anchor_options_resolve(anchor_bundle, tiny_bundle):
    from lsray.bundle.config import BundleConfig

    capable = BundleConfig.read(anchor_bundle / "config.json")
    plain = BundleConfig.read(tiny_bundle / "config.json")
    assert DubOptions().resolve(capable).anchors.stride == 8
    assert DubOptions(anchors="off").resolve(capable).anchors is None
    assert DubOptions().resolve(plain).anchors is None  # a bundle without anchors samples as before
    assert DubOptions(anchor_stride=4, anchor_sequence=4).resolve(capable).anchors.sequence == 4
    with pytest.raises(OptionError, match="trained for long-range anchors"):
        DubOptions(anchors="on").resolve(plain)
    with pytest.raises(OptionError, match="divide the 16-frame window"):
        DubOptions(anchor_stride=3).resolve(capable)
    with pytest.raises(OptionError, match="temporal positions"):
        DubOptions(anchor_sequence=8).resolve(capable)  # 57 frames > the parity UNet's 24 positions


def test_a_bundle_trained_with_anchors_says_so(tiny_bundle, tmp_path):
    """Stage 2 with anchor training writes the sampler's anchors section (keyframes at the UNet's
    stride, sequences as long as its positions allow); without it the bundle samples as before."""
    from lsray.bundle.config import BundleConfig
    from lsray.train.config import Stage2Config
    from lsray.train.stage2 import exported_config

    base = BundleConfig.read(tiny_bundle / "config.json")
    job = {"bundle": str(tiny_bundle), "out": str(tmp_path / "o"), "data": {"shards": str(tmp_path)}}
    trained = exported_config(base, Stage2Config.model_validate({**job, "anchors": {}}))
    assert trained.sampler.anchors.model_dump() == {"stride": 8, "sequence": 8, "overlap": 1}  # 64 positions
    assert DubOptions().resolve(trained).anchors is not None
    assert exported_config(base, Stage2Config.model_validate(job)).sampler.anchors is None


def test_windows_with_and_without_anchors_batch_together(flow, plan):
    """A clip with anchors and one without share UNet calls (their 16-frame windows have one key)
    and each comes out exactly as when sampled alone."""
    import copy

    on, off = plan(), plan(anchors="off")
    anchors = flow.anchors(flow.audio(flow.keyframes(on)))
    [a] = [flow.audio(s) for s in flow.shard(on, anchors)]
    [b] = [flow.audio(s) for s in flow.shard(off)]
    alone = [flow.sample_stage.sample_many([copy.deepcopy(s)], max_windows=1)[0].generated for s in (a, b)]
    together = flow.sample_stage.sample_many([a, b], max_windows=8)
    assert all(np.array_equal(x, y.generated) for x, y in zip(alone, together))
