"""Model bundles: convert a LatentSync checkpoint folder, load it back, fail clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler
from safetensors.torch import load_file

from bundles import make_latentsync_src
from lsray.errors import BundleError, MissingWeightError
from lsray.bundle import BundleConfig, load_bundle, resolve_bundle
from lsray.models.unet import LipSyncUNet
from lsray.bundle.load import register_resolver
from lsray.bundle.convert import convert_latentsync, default_mask

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def loaded(tiny_bundle):
    return load_bundle(tiny_bundle, device=CPU)


def test_round_trip_matches_upstream_loader(loaded, parity_dir):
    small = parity_dir / "unet_small"
    upstream = LipSyncUNet.from_latentsync(small / "latentsync_unet.pt", small / "config.json")
    cases = load_file(small / "cases.safetensors")
    args = (cases["case0.sample"], cases["case0.timestep"], cases["case0.audio"])
    with torch.no_grad():
        ours, ref = loaded.unet(*args), upstream(*args)
    assert (ours - ref).abs().max().item() <= 1e-5
    assert (ours - cases["case0.out"]).abs().max().item() <= 1e-4
    assert not loaded.unet.training


def test_bundle_contents(loaded, tiny_bundle, parity_dir):
    cfg = loaded.config
    assert cfg.resolution == 256 and cfg.format_version == 1
    assert cfg.unet.block_out_channels == (32, 64, 64, 64)
    assert cfg.audio.whisper.encoder_layers == 1 and cfg.audio.whisper.dim == 384
    assert cfg.provenance.global_step == 4242
    assert cfg.mask.source == "latentsync"
    assert cfg.sampler.num_inference_steps == 20 and cfg.sampler.guidance_scale == 1.5
    assert cfg.vae.scaling_factor == 0.18215 and cfg.vae.shift_factor == 0.0
    # whisper reloads with the same weights as the OpenAI checkpoint
    from lsray.audio.whisper import WhisperEncoder

    ref = WhisperEncoder.from_openai(tiny_bundle.with_name(tiny_bundle.name + "-src") / "whisper" / "tiny.pt", device=CPU).encoder.state_dict()
    ours = loaded.whisper.encoder.state_dict()
    assert set(ours) == set(ref) and all(torch.equal(ours[k], ref[k]) for k in ref)
    # mask: float (S, S), 1 = keep, the upstream file byte for byte
    assert loaded.mask.shape == (256, 256) and loaded.mask.dtype == np.float32
    assert 0.3 < (loaded.mask < 0.5).mean() < 0.5
    assert (tiny_bundle / "mask.png").read_bytes() == (parity_dir / "mask.png").read_bytes()
    vae = loaded.require_vae()
    assert vae.config.latent_channels == 4


def test_schedulers(loaded):
    ddim = loaded.make_scheduler("ddim")
    assert isinstance(ddim, DDIMScheduler)
    ddim.set_timesteps(4)
    assert ddim.timesteps.tolist() == [751, 501, 251, 1]  # upstream's visited timesteps (fixture README)
    assert ddim.config.beta_schedule == "scaled_linear" and not ddim.config.set_alpha_to_one
    assert isinstance(loaded.make_scheduler("lcm"), LCMScheduler)
    assert isinstance(loaded.make_scheduler("ddim"), DDIMScheduler)
    with pytest.raises(BundleError):
        loaded.make_scheduler("euler")  # type: ignore[arg-type]


def test_upgraded_bundle_has_512_audio(tmp_path, parity_dir):
    src = make_latentsync_src(tmp_path / "src", parity_dir, vae=False, mask=False)
    out = convert_latentsync(src, tmp_path / "wide", upgrades={"cross_attention_dim": 512, "temporal": {"band": 2, "anchor_stride": 8}})
    bundle = load_bundle(out, device=CPU)
    assert bundle.config.unet.cross_attention_dim == 512
    assert bundle.config.unet.temporal.band == 2 and bundle.config.unet.temporal.anchor_stride == 8
    kv = [m for n, m in bundle.unet.named_modules() if n.endswith("attn2.to_k")]
    assert kv and all(m.in_features == 512 for m in kv)
    # no vae/ in SRC: the bundle loads, require_vae names the folder expected
    assert bundle.vae is None
    with pytest.raises(MissingWeightError, match=r"wide/vae"):
        bundle.require_vae()
    # no mask.png in SRC: a generated lower-face mask, recorded as such
    assert bundle.config.mask.source == "generated"
    assert bundle.mask[10, 128] == 1.0 and bundle.mask[180, 128] == 0.0


@pytest.mark.parametrize("missing, expected", [("unet", "latentsync_unet.pt"), ("whisper", "whisper/tiny.pt")])
def test_missing_source_weight_is_named(tmp_path, parity_dir, missing, expected):
    src = make_latentsync_src(tmp_path / "src", parity_dir, vae=False, **{missing: False})
    with pytest.raises(MissingWeightError, match=expected) as info:
        convert_latentsync(src, tmp_path / "out")
    assert info.value.path == str(src / expected)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("out.partial-*"))


def test_default_architecture_when_src_has_no_config(tmp_path, parity_dir):
    # The small fixture checkpoint does not fit the released stage2 architecture: a strict,
    # named mismatch instead of a silently half-loaded model.
    from lsray.errors import CheckpointMismatchError

    src = make_latentsync_src(tmp_path / "src", parity_dir, config=False, vae=False)
    with pytest.raises(CheckpointMismatchError, match="misshaped"):
        convert_latentsync(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_not_overwritten(tmp_path, tiny_bundle, parity_dir):
    out = tmp_path / "out"
    out.mkdir()
    src = make_latentsync_src(tmp_path / "src", parity_dir, vae=False)
    with pytest.raises(BundleError, match="already exists"):
        convert_latentsync(src, out)


def _copy(bundle: Path, dst: Path) -> Path:
    shutil.copytree(bundle, dst)
    return dst


def test_corrupt_config_is_bundle_error(tmp_path, tiny_bundle):
    broken = _copy(tiny_bundle, tmp_path / "b")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(BundleError, match="config.json"):
        load_bundle(broken, device=CPU)
    data = json.loads((tiny_bundle / "config.json").read_text())
    data["resolution"] = 384
    (broken / "config.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="resolution"):
        load_bundle(broken, device=CPU)
    data["resolution"] = 256
    data["format_version"] = 99
    (broken / "config.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="format_version"):
        load_bundle(broken, device=CPU)


@pytest.mark.parametrize("remove", ["config.json", "unet.safetensors", "whisper/model.safetensors", "mask.png"])
def test_missing_bundle_file_is_named(tmp_path, tiny_bundle, remove):
    broken = _copy(tiny_bundle, tmp_path / "b")
    (broken / remove).unlink()
    with pytest.raises(MissingWeightError) as info:
        load_bundle(broken, device=CPU, load_vae=False)
    assert Path(info.value.path).name == Path(remove).name


def test_weights_that_do_not_fit_config(tmp_path, tiny_bundle):
    broken = _copy(tiny_bundle, tmp_path / "b")
    data = json.loads((broken / "config.json").read_text())
    data["unet"]["cross_attention_dim"] = 512
    (broken / "config.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle(broken, device=CPU, load_vae=False)


def test_resolvers(tmp_path, tiny_bundle):
    assert resolve_bundle(f"file://{tiny_bundle}") == tiny_bundle
    with pytest.raises(BundleError, match="gs://"):  # s3:// has a resolver (tests/test_k8s_fetch.py)
        resolve_bundle("gs://models/tiny")
    register_resolver("memtest", lambda uri: tiny_bundle)
    assert BundleConfig.read(resolve_bundle("memtest://x") / "config.json").resolution == 256


def test_default_mask_covers_lower_face():
    m = default_mask(256)
    assert m.shape == (256, 256) and m.dtype == np.uint8
    assert (m[:80] == 255).all()  # eyes and above are kept
    assert m[200, 128] == 0  # mouth / chin regenerated
    assert 0.35 < (m == 0).mean() < 0.6


def test_stage2_yaml_config_and_resolution(tmp_path, parity_dir):
    import yaml

    src = make_latentsync_src(tmp_path / "src", parity_dir, config=False, vae=False)
    model = json.loads((parity_dir / "unet_small" / "config.json").read_text())
    (src / "stage2_512.yaml").write_text(yaml.safe_dump({"data": {"resolution": 512}, "model": model}))
    out = convert_latentsync(src, tmp_path / "b512")
    cfg = BundleConfig.read(out / "config.json")
    assert cfg.resolution == 512 and cfg.unet.block_out_channels == (32, 64, 64, 64)
    assert load_bundle(out, device=CPU, load_vae=False).mask.shape == (512, 512)
