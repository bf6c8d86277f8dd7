"""The demo recipe (jobs/train_demo.py) at toy size: every step runs, a rerun resumes, the audio
check stops a UNet that ignores its audio, new decode settings are published without retraining,
and a work folder of another recipe is refused rather than silently reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsray.errors import LsrayError
from lsray.train.recipe import RecipeConfig, run_recipe

pytestmark = pytest.mark.slow

TINY_VAE = {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 8}


def _config(tmp: Path, **over) -> RecipeConfig:
    data = {"seq_len": 4, "stride": 4, "batch_size": 1}
    cfg = {
        "work": str(tmp / "work"), "out": str(tmp / "bundle"), "syncnet_out": str(tmp / "syncnet"),
        "world": {"clips": 2, "seed": 0, "frame_size": 256, "fps": 25},
        "whisper": {"d_model": 32, "encoder_layers": 1, "seed": 0},
        "unet": {"block_out_channels": [16, 32], "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"],
                 "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"], "layers_per_block": 1, "norm_num_groups": 8,
                 "attention_head_dim": 8, "motion_module_resolutions": [1, 2],
                 "motion_module_kwargs": {"num_attention_heads": 2, "norm_num_groups": 8},
                 "temporal": {"band": 2, "anchor_stride": 8, "max_len": 64}},
        "sampler": {"num_inference_steps": 2, "guidance_scale": 1.0, "scheduler": {"prediction_type": "sample"},
                    "detail_transfer": True},
        "vae": {"steps": 2, "model": TINY_VAE, "data": data},
        "stage2": {"steps": 2, "lr": 1e-4, "trainable": [""], "unet_overrides": {}, "discriminator": None, "data": data},
        "vae_decoder": {"steps": 1, "data": data},
        "syncnet": {"steps": 2, "model": {"num_frames": 5, "image_size": 64, "visual_channels": [8, 16],
                                          "audio_channels": [8, 16], "embed_dim": 16, "norm_groups": 4},
                    "data": {"image_size": 64, "seq_len": 5, "stride": 5, "batch_size": 2}},
    }
    cfg.update(over)
    return RecipeConfig.model_validate(cfg)


def test_recipe_builds_a_bundle_resumes_and_guards_its_work_folder(tmp_path):
    from lsray.bundle import load_bundle
    from lsray.models.syncnet import SyncNet

    cfg = _config(tmp_path)
    out = run_recipe(cfg)
    bundle = load_bundle(out, device="cpu")
    assert bundle.config.sampler.detail_transfer and bundle.config.resolution == 128
    assert "recipe demo" in bundle.config.provenance.source and bundle.config.provenance.global_step == 2
    assert list(bundle.vae.config.block_out_channels) == [8, 16]  # the recipe's own VAE (decoder fine-tuned)
    SyncNet.from_pretrained(tmp_path / "syncnet")

    work = Path(cfg.work)
    done = {p.name: p.stat().st_mtime_ns for p in work.glob("*.done.json")}
    assert sorted(done) == ["stage2.done.json", "syncnet.done.json", "vae-decoder.done.json", "vae.done.json"]
    run_recipe(cfg)  # resume: every step is found finished, the bundle is only re-published
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("*.done.json")} == done
    assert (load_bundle(out, device="cpu").unet.state_dict()["conv_in.weight"]
            == bundle.unet.state_dict()["conv_in.weight"]).all()

    # the audio check changes no artefact: it may be added to a finished work folder; a UNet of
    # two steps cannot make the wrong audio 1000 % worse, so the recipe stops before publishing
    strict = _config(tmp_path, audio_check={"sequences": 4, "min_gain": 10.0})
    published = (out / "unet.safetensors").stat().st_mtime_ns
    with pytest.raises(LsrayError, match=r"ignores its audio: x0 error at t=999 over 4 sequences"):
        run_recipe(strict)
    assert (out / "unet.safetensors").stat().st_mtime_ns == published
    run_recipe(_config(tmp_path, audio_check={"sequences": 4, "min_gain": -1.0}))

    # how the bundle samples and decodes is applied at publishing, without retraining; the noise
    # schedule trained the UNet, so changing it is a different recipe
    decode = {"num_inference_steps": 3, "guidance_scale": 1.0, "scheduler": {"prediction_type": "sample"},
              "detail_transfer": True, "detail_gate": 0.2}
    run_recipe(_config(tmp_path, sampler=decode))
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("*.done.json")} == done
    sampler = load_bundle(out, device="cpu").config.sampler
    assert sampler.detail_gate == 0.2 and sampler.num_inference_steps == 3
    with pytest.raises(ValueError, match=r"differs in sampler"):
        run_recipe(_config(tmp_path, sampler={**decode, "scheduler": {"prediction_type": "epsilon"}}))

    bigger = _config(tmp_path, world={"clips": 3, "seed": 0, "frame_size": 256, "fps": 25})
    with pytest.raises(ValueError, match=r"differs in world"):
        run_recipe(bigger)
    assert len((work / "world" / "catalog.jsonl").read_text().splitlines()) == 2  # nothing was touched
