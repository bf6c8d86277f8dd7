"""The sample stage's decode: LatentSync's paste vs detail transfer (SamplerDefaults.detail_transfer)
and its gate (SamplerDefaults.detail_gate)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lsray.bundle import load_bundle
from lsray.pipeline.sample import SampleStage, _Window
from lsray.pipeline.flow import ClipFlow
from lsray.sampling.window import WindowConditioning

FRAMES = 2


@pytest.fixture(scope="module")
def stage(tiny_bundle) -> SampleStage:
    return ClipFlow(load_bundle(tiny_bundle, device="cpu")).sample_stage


def _window(stage: SampleStage, seed: int = 0) -> _Window:
    """A window of smooth random faces (f 3 S S in [-1, 1]) with their reference latents."""
    s = stage.mask.shape[-1]
    g = torch.Generator().manual_seed(seed)
    pixels = torch.nn.functional.interpolate(torch.rand(FRAMES, 3, s // 8, s // 8, generator=g), size=(s, s),
                                             mode="bilinear") * 1.6 - 0.8
    ref = stage.codec.encode(pixels).permute(1, 0, 2, 3)[None]  # 1 c f h w
    cond = WindowConditioning(mask=torch.zeros(1), masked=ref, ref=ref, audio=torch.zeros(1))
    shard = SimpleNamespace(generated=np.zeros((FRAMES, s, s, 3), np.uint8), timings={"vae": 0.0})
    return _Window(shard, np.arange(FRAMES), pixels, stage.mask_for(s), cond, None, None, ())


def _run(stage: SampleStage, detail: bool, latents_of=lambda ref: ref,
         gate: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output crops, source crops, regenerated-region mask) for one window decoded from
    ``latents_of(reference latents)``."""
    w = _window(stage)
    original = stage.settings
    stage.settings = dataclasses.replace(original, detail_transfer=detail, detail_gate=gate)
    try:
        stage._finish(w, latents_of(w.cond.ref[0]))
    finally:
        stage.settings = original
    source = ((w.pixels + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return w.shard.generated, source, (w.mask.numpy() < 0.5)


def test_paste_shows_the_vae_reconstruction_in_the_mouth_region(stage):
    out, source, regen = _run(stage, detail=False)
    diff = np.abs(out.astype(int) - source.astype(int))
    assert diff[:, ~regen].max() == 0  # outside the mask: the source itself
    assert diff[:, regen].mean() > 5  # inside: the (random) VAE's reconstruction, far from the source


def test_detail_transfer_keeps_the_source_where_the_unet_changes_nothing(stage):
    out, source, _ = _run(stage, detail=True)
    assert np.abs(out.astype(int) - source.astype(int)).max() <= 1  # rounding only: the VAE error cancels


def test_detail_transfer_adds_the_decoded_change(stage):
    """Latents that differ from the reference: the regenerated region is source + D(z) - D(z_ref)."""
    out, source, regen = _run(stage, detail=True, latents_of=lambda ref: ref + 0.5)
    w = _window(stage)
    z, zr = (w.cond.ref[0] + 0.5).transpose(0, 1), w.cond.ref[0].transpose(0, 1)
    with torch.no_grad():
        expected = (w.pixels + stage.codec.decode(z) - stage.codec.decode(zr)).clamp(-1, 1)
    expected = ((expected + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(out[:, regen].astype(int) - expected[:, regen].astype(int)).max() <= 1
    assert np.abs(out[:, regen].astype(int) - source[:, regen].astype(int)).mean() > 1  # the change shows
    assert np.array_equal(out[:, ~regen], source[:, ~regen])


def _decoded(stage: SampleStage, shift: float) -> np.ndarray:
    """decode(reference latents + shift) as uint8 crops: what a plain paste would show."""
    w = _window(stage)
    with torch.no_grad():
        d = stage.codec.decode((w.cond.ref[0] + shift).transpose(0, 1)).clamp(-1, 1)
    return ((d + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def test_detail_gate_drops_the_source_detail_only_where_the_mouth_changes(stage):
    from lsray.pipeline.sample import detail_gate

    # no change: the gate is open, the source comes through exactly as with plain detail transfer
    out, source, _ = _run(stage, detail=True, gate=0.2)
    assert np.abs(out.astype(int) - source.astype(int)).max() <= 1
    # a large change against a tiny threshold: closed gate, the regenerated region is the decode
    shifted = lambda ref: ref + 0.5  # noqa: E731
    closed, source, regen = _run(stage, detail=True, latents_of=shifted, gate=1e-4)
    plain = _decoded(stage, 0.5)
    w = _window(stage)
    with torch.no_grad():
        change = stage.codec.decode((w.cond.ref[0] + 0.5).transpose(0, 1)) - stage.codec.decode(w.cond.ref[0].transpose(0, 1))
    shut = (detail_gate(change, 1e-4)[:, 0] == 0).numpy() & regen  # f S S: where the gate closed
    assert shut.sum() > 0.9 * regen.sum() * len(shut)
    assert np.abs(closed[shut].astype(int) - plain[shut].astype(int)).max() <= 1
    assert np.array_equal(closed[:, ~regen], source[:, ~regen])
    # a threshold far above any change: ungated detail transfer
    wide, _, _ = _run(stage, detail=True, latents_of=shifted, gate=1e4)
    ungated, _, _ = _run(stage, detail=True, latents_of=shifted)
    assert np.abs(wide.astype(int) - ungated.astype(int)).max() <= 1


def test_detail_gate_falls_linearly_with_the_local_change():
    from lsray.pipeline.sample import GATE_WINDOW, detail_gate

    change = torch.zeros(1, 3, 21, 21)
    change[..., 10, 10] = 0.5  # one changed pixel: 0.5 in every colour
    g = detail_gate(change, threshold=0.1)[0, 0]  # 21 21
    assert g[0, 0] == 1 and g.min() > 0  # far away untouched; one pixel in the window's mean stays below 0.1
    assert torch.isclose(g[10, 10], torch.tensor(1 - 0.5 / GATE_WINDOW**2 / 0.1))
    assert detail_gate(torch.full((1, 3, 4, 4), 0.3), threshold=0.2).max() == 0  # beyond: closed
    assert detail_gate(torch.full((1, 3, 4, 4), -0.3), threshold=0.2).max() == 0  # darker or lighter alike


def test_detail_gate_keeps_redrawn_texture_and_drops_a_changed_shape():
    from lsray.pipeline.sample import detail_gate

    # texture redrawn unlike the source's rebuild: +-0.3 in a fine checkerboard, zero-mean nearby
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    texture = (0.3 * (1 - 2 * ((yy + xx) % 2))).float().expand(1, 3, 32, 32)
    assert detail_gate(texture, threshold=0.2)[0, 0, 8:24, 8:24].min() > 0.9  # the source's detail stays
    # a mouth that opened: the interior 0.3 darker over a patch; the gate closes inside it
    shape = torch.zeros(1, 3, 32, 32)
    shape[..., 10:22, 6:26] = -0.3
    g = detail_gate(shape, threshold=0.2)[0, 0]
    assert g[16, 16] == 0 and g[0, 0] == 1


def test_detail_gate_needs_detail_transfer():
    from pydantic import ValidationError

    from lsray.bundle.config import SamplerDefaults

    with pytest.raises(ValidationError, match="only applies with sampler.detail_transfer"):
        SamplerDefaults(detail_gate=0.2)
    assert SamplerDefaults(detail_transfer=True, detail_gate=0.2).detail_gate == 0.2
