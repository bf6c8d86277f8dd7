"""The sample stage's decode: LatentSync's paste vs detail transfer (SamplerDefaults.detail_transfer)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lsray.models import load_bundle
from lsray.pipeline.sample import SampleStage, _Window
from lsray.pipeline.stages import build_stage
from lsray.sampling import WindowConditioning

FRAMES = 2


@pytest.fixture(scope="module")
def stage(tiny_bundle) -> SampleStage:
    return build_stage("sample", load_bundle(tiny_bundle, device="cpu"))


def _window(stage: SampleStage, seed: int = 0) -> _Window:
    """A window of smooth random faces (f 3 S S in [-1, 1]) with their reference latents."""
    s = stage.mask.shape[-1]
    g = torch.Generator().manual_seed(seed)
    pixels = torch.nn.functional.interpolate(torch.rand(FRAMES, 3, s // 8, s // 8, generator=g), size=(s, s),
                                             mode="bilinear") * 1.6 - 0.8
    ref = stage._encode(pixels).permute(1, 0, 2, 3)[None]  # 1 c f h w
    cond = WindowConditioning(mask=torch.zeros(1), masked=ref, ref=ref, audio=torch.zeros(1))
    shard = SimpleNamespace(generated=np.zeros((FRAMES, s, s, 3), np.uint8), timings={"vae": 0.0})
    return _Window(shard, np.arange(FRAMES), pixels, stage._mask_for(s), cond, None, None, ())


def _run(stage: SampleStage, detail: bool, latents_of=lambda ref: ref) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output crops, source crops, regenerated-region mask) for one window decoded from
    ``latents_of(reference latents)``."""
    w = _window(stage)
    original = stage.settings
    stage.settings = dataclasses.replace(original, detail_transfer=detail)
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
    z, zr = stage._unscale(w.cond.ref[0] + 0.5), stage._unscale(w.cond.ref[0])
    with torch.no_grad():
        expected = (w.pixels + stage.vae.decode(z).sample - stage.vae.decode(zr).sample).clamp(-1, 1)
    expected = ((expected + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(out[:, regen].astype(int) - expected[:, regen].astype(int)).max() <= 1
    assert np.abs(out[:, regen].astype(int) - source[:, regen].astype(int)).mean() > 1  # the change shows
    assert np.array_equal(out[:, ~regen], source[:, ~regen])
