"""The demo recipe (jobs/train_demo.py) at toy size: every step runs, a rerun resumes, the audio
check stops a UNet that ignores its audio, new decode settings are published without retraining,
and a work folder of another recipe is refused rather than silently reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lsray.errors import LsrayError
from lsray.train.recipe import RecipeConfig, run_recipe

pytestmark = pytest.mark.slow

TINY_VAE = {"block_out_channels": [8, 8, 16, 16], "layers_per_block": 1, "norm_num_groups": 8}


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
    assert list(bundle.vae.config.block_out_channels) == [8, 8, 16, 16]  # the recipe's own VAE (decoder fine-tuned)
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


def test_recipe_v2_ships_the_consistency_student_with_its_teacher_and_voice(tmp_path):
    """Recipe v2 at toy size: a phoneme-CTC model trained first and fused into the audio, stage 2
    with the lip discriminator, temporal losses and anchor training, then LCM distillation; the shipped bundle is the student (its own sampling, the
    recipe's decoding, the teacher inside for ``--sampler ddim``) and converts voices."""
    import torch

    from lsray.bundle import load_bundle
    from lsray.bundle.config import TEACHER_UNET_FILE
    from lsray.train.blend import blend_unets

    data = {"seq_len": 16, "stride": 8, "batch_size": 1}
    base = _config(tmp_path)
    cfg = _config(
        tmp_path, syncnet=None, syncnet_out=None,
        stage2={**base.stage2, "data": data, "smooth_weight": 0.1, "anchor_weight": 0.1,
                "discriminator": {"crop_size": 32, "num_scales": 1, "ndf": 8, "n_layers": 2, "max_channels": 16,
                                  "norm_groups": 4},
                "adv_weight": 0.1, "adv_warmup_steps": 1,
                "anchors": {"pin_probability": 0.75, "keyframe_probability": 0.25, "overlap": 1}},
        distill={"steps": 2, "lr": 1e-4, "time_cond_proj_dim": 16, "student_steps": 2, "teacher_guidance": 1.0,
                 "anchors": {"pin_probability": 0.75, "keyframe_probability": 0.25, "overlap": 1}, "data": data},
        sampler={**base.sampler.model_dump(), "anchors": {"stride": 8, "sequence": 8, "overlap": 1}},
        voice={"backend": "builtin"},
        phoneme={"steps": 2, "lr": 2e-3, "warmup_steps": 1, "stats_utterances": 4,
                 "model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                           "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4},
                 "data": {"train_utterances": 8, "test_utterances": 4, "batch_size": 4}},
    )
    out = run_recipe(cfg)
    student = load_bundle(out, device="cpu")
    sampler = student.config.sampler
    assert sampler.method == "lcm" and sampler.num_inference_steps == 2 and sampler.detail_transfer
    assert sampler.anchors is not None  # distilled with anchors: the student follows them
    assert student.config.lcm.teacher_unet == TEACHER_UNET_FILE and (out / TEACHER_UNET_FILE).is_file()
    assert student.config.voice.backend == "builtin"
    # upgrade 1: fused audio from the recipe's own phoneme model, shipped inside the bundle
    assert student.config.audio.encoder == "fused" and student.config.unet.cross_attention_dim == 32 + 128
    assert student.phoneme is not None and (out / "phoneme" / "eval.json").is_file()
    assert "LCM-distilled" in student.config.provenance.source and student.config.provenance.global_step == 4
    teacher = load_bundle(Path(cfg.work) / "teacher", device="cpu")
    assert teacher.config.sampler.method == "ddim" and teacher.config.lcm is None
    # the student's teacher is stage 2's UNet, as published
    assert (student.teacher_unet.state_dict()["conv_in.weight"] == teacher.unet.state_dict()["conv_in.weight"]).all()
    assert sorted(p.name for p in Path(cfg.work).glob("*.done.json")) == [
        "phoneme.done.json", "stage2.done.json", "student.done.json", "vae-decoder.done.json", "vae.done.json"]

    # vae_from: a trained autoencoder (here the one just shipped) taken as is, no VAE steps
    reuse = _config(tmp_path, work=str(tmp_path / "work-reuse"), out=str(tmp_path / "bundle-reuse"), syncnet=None,
                    syncnet_out=None, vae=None, vae_decoder=None, vae_from=str(out / "vae"),
                    stage2={**base.stage2, "steps": 1})
    reused = load_bundle(run_recipe(reuse), device="cpu")
    assert sorted(p.name for p in (tmp_path / "work-reuse").glob("*.done.json")) == ["stage2.done.json"]
    assert (reused.vae.state_dict()["decoder.conv_out.weight"] == student.vae.state_dict()["decoder.conv_out.weight"]).all()
    assert reused.config.vae.scaling_factor == student.config.vae.scaling_factor
    with pytest.raises(ValueError, match="exactly one of vae"):
        _config(tmp_path, vae_from=str(out / "vae"))

    # start_from: a round of upgrades as a fine-tune of a trained Whisper-only bundle (here the
    # first recipe's, published over itself): the phoneme branch widens its audio input with zero
    # columns, so the fine-tune starts from exactly what that bundle computes
    v1 = tmp_path / "bundle-v1"
    shutil.copytree(tmp_path / "bundle-reuse", v1)
    fields = base.model_dump(exclude={"unet", "whisper", "vae", "vae_decoder", "vae_from", "syncnet", "syncnet_out"})
    again = RecipeConfig.model_validate({**fields, "work": str(tmp_path / "work-again"), "out": str(v1),
                                         "start_from": str(v1), "phoneme": cfg.phoneme,
                                         "stage2": {**base.stage2, "steps": 1}})
    upgraded = load_bundle(run_recipe(again), device="cpu")
    assert upgraded.config.audio.encoder == "fused" and upgraded.config.unet.cross_attention_dim == 32 + 128
    assert "fine-tuned from (recipe demo" in upgraded.config.provenance.source
    assert upgraded.config.provenance.global_step == reused.config.provenance.global_step + 1
    kept = load_bundle(tmp_path / "work-again" / "start", device="cpu")  # the start, kept before publishing
    assert (kept.unet.state_dict()["conv_in.weight"] == reused.unet.state_dict()["conv_in.weight"]).all()
    assert (upgraded.vae.state_dict()["decoder.conv_out.weight"] == reused.vae.state_dict()["decoder.conv_out.weight"]).all()
    assert ((tmp_path / "work-again" / "assets" / "whisper" / "model.safetensors").read_bytes()
            == (tmp_path / "bundle-reuse" / "whisper" / "model.safetensors").read_bytes())
    assert RecipeConfig.read(tmp_path / "work-again" / "recipe.yaml").start_from == str(v1)  # as written, it reads back
    with pytest.raises(ValueError, match="start_from brings its own UNet, Whisper and VAE: drop unet, vae"):
        _config(tmp_path, start_from=str(v1))

    # blend: the same fine-tune published halfway back toward its start (a copy of the work folder,
    # so every step is found finished and only the blend and the publishing run)
    shutil.copytree(tmp_path / "work-again", tmp_path / "work-blend", ignore=shutil.ignore_patterns("recipe.yaml"))
    blend = RecipeConfig.model_validate({**again.model_dump(), "work": str(tmp_path / "work-blend"),
                                         "out": str(tmp_path / "bundle-blend"), "blend": 0.5})
    halfway = load_bundle(run_recipe(blend), device="cpu")
    want = blend_unets(kept.unet, load_bundle(tmp_path / "work-again" / "stage2", device="cpu", lazy=True).unet, 0.5)
    assert all(torch.equal(value, want.state_dict()[key]) for key, value in halfway.unet.state_dict().items())
    assert halfway.config.audio.encoder == "fused" and (tmp_path / "work-blend" / "blended" / "config.json").is_file()
    with pytest.raises(ValueError, match="blend moves stage 2's UNet back toward start_from's: it needs start_from"):
        _config(tmp_path, blend=0.5)

    # without stage2 (jobs/configs/demo_student.yaml): a consistency student of a trained bundle as
    # it is; its teacher is that bundle's UNet, unchanged, and only the distillation trains
    only = RecipeConfig.model_validate({**fields, "work": str(tmp_path / "work-student"), "out": str(tmp_path / "student"),
                                        "start_from": str(tmp_path / "bundle-reuse"), "stage2": None,
                                        "distill": cfg.distill})
    distilled = load_bundle(run_recipe(only), device="cpu")
    assert distilled.config.sampler.method == "lcm" and distilled.config.sampler.detail_transfer
    assert (distilled.teacher_unet.state_dict()["conv_in.weight"] == reused.unet.state_dict()["conv_in.weight"]).all()
    assert distilled.config.provenance.global_step == reused.config.provenance.global_step + 2  # the distillation's
    assert sorted(p.name for p in (tmp_path / "work-student").glob("*.done.json")) == ["student.done.json"]
    with pytest.raises(ValueError, match="needs start_from and distill"):
        _config(tmp_path, stage2=None)
    with pytest.raises(ValueError, match="phoneme, blend and audio_check act on stage 2"):
        RecipeConfig.model_validate({**only.model_dump(), "blend": 0.5})


@pytest.mark.parametrize("name", ["demo.yaml", "demo_v2.yaml", "demo_student.yaml"])
def test_shipped_recipes_validate_every_job_they_run(name, tmp_path):
    """A typo in a recipe's job section would surface hours into training: every section must be
    a valid job config as the recipe fills it in."""
    from lsray.train.config import load_job_config
    from lsray.train.recipe import section_job

    cfg = RecipeConfig.read(Path(__file__).parents[1] / "jobs" / "configs" / name, work=str(tmp_path))
    data = {"shards": str(tmp_path), "image_size": cfg.resolution}
    sections = {"vae": ("vae", {"out": "o"}), "stage2": ("stage2", {"bundle": "b", "out": "o"}),
                "vae_decoder": ("vae", {"decoder_only": True, "init": "i", "out": "o"}),
                "distill": ("distill", {"teacher": "t", "out": "o"}), "syncnet": ("syncnet", {"out": "o"}),
                "phoneme": ("phoneme", {"out": "o"})}
    for key, (kind, fields) in sections.items():
        section = getattr(cfg, key)
        if section is not None:
            job = section_job(section, kind, {"root": str(tmp_path)} if kind == "phoneme" else data, **fields)
            load_job_config(job)


def test_an_ablation_is_the_shipped_recipe_without_one_upgrade(tmp_path):
    """``--without`` (jobs/train_demo.py): demo_v2.yaml minus the settings named, each dotted key
    removed where it is, the rest as the file says; the bundle's provenance names the variant, and
    a key the file lacks is refused instead of training the full recipe under the variant's name."""
    from lsray.bundle.config import BundleConfig
    from lsray.train.recipe import _publish_settings

    path = Path(__file__).parents[1] / "jobs" / "configs" / "demo_v2.yaml"
    full = RecipeConfig.read(path, work=str(tmp_path))
    cfg = RecipeConfig.read(path, without=["phoneme", "distill", "sampler.anchors", "stage2.anchors"], work=str(tmp_path))
    assert full.phoneme is not None and full.distill is not None and full.sampler.anchors is not None
    assert cfg.phoneme is None and cfg.distill is None and cfg.sampler.anchors is None
    assert "anchors" in full.stage2 and "anchors" not in cfg.stage2
    assert cfg.stage2 == {k: v for k, v in full.stage2.items() if k != "anchors"}
    assert cfg.sampler.guidance_scale == full.sampler.guidance_scale and cfg.world == full.world
    config = BundleConfig.read(Path(__file__).parents[1] / "lsray" / "demo" / "bundle" / "config.json")
    _publish_settings(cfg, config, 10, None)
    assert "(jobs/configs/demo_v2.yaml) without phoneme, distill, sampler.anchors, stage2.anchors:" in config.provenance.source
    with pytest.raises(ValueError, match="no setting 'stage2.anchor' to leave out"):
        RecipeConfig.read(path, without=["stage2.anchor"], work=str(tmp_path))
    with pytest.raises(ValueError, match="no setting 'sampler.anchors.stride.x'"):
        RecipeConfig.read(path, without=["sampler.anchors.stride.x"], work=str(tmp_path))


def test_an_ablation_can_give_a_setting_another_value(tmp_path):
    """``--set KEY=VALUE`` (jobs/train_demo.py): a setting whose default is on (the lip
    discriminator) is switched off by value, parsed as YAML; the bundle's provenance names the
    change; the work folder sees the same recipe as a file saying the same (so a rerun resumes);
    a missing key or a malformed item is refused."""
    import yaml

    from lsray.bundle.config import BundleConfig
    from lsray.train.recipe import _artefact_settings, _publish_settings

    path = Path(__file__).parents[1] / "jobs" / "configs" / "demo_v2.yaml"
    full = RecipeConfig.read(path, work=str(tmp_path))
    cfg = RecipeConfig.read(path, without=["distill"], changed=["stage2.adv_weight=0", "stage2.discriminator=null"],
                            work=str(tmp_path))
    assert full.stage2["adv_weight"] == 0.1 and full.stage2["discriminator"] is not None
    assert cfg.stage2["adv_weight"] == 0 and cfg.stage2["discriminator"] is None
    assert {k: v for k, v in cfg.stage2.items() if k not in ("adv_weight", "discriminator")} == \
        {k: v for k, v in full.stage2.items() if k not in ("adv_weight", "discriminator")}
    edited = yaml.safe_load(path.read_text())
    edited["stage2"].update(adv_weight=0, discriminator=None)
    del edited["distill"]
    edited_path = tmp_path / "edited.yaml"
    edited_path.write_text(yaml.safe_dump(edited))
    same = RecipeConfig.read(edited_path, work=str(tmp_path))
    assert _artefact_settings(cfg.model_dump(mode="json")) == _artefact_settings(same.model_dump(mode="json"))
    assert _artefact_settings(cfg.model_dump(mode="json")) != _artefact_settings(full.model_dump(mode="json"))
    config = BundleConfig.read(Path(__file__).parents[1] / "lsray" / "demo" / "bundle" / "config.json")
    _publish_settings(cfg, config, 10, None)
    assert "(jobs/configs/demo_v2.yaml) without distill with stage2.adv_weight=0, stage2.discriminator=null:" \
        in config.provenance.source
    with pytest.raises(ValueError, match="no setting 'stage2.adv' to leave out or change"):
        RecipeConfig.read(path, changed=["stage2.adv=0"], work=str(tmp_path))
    with pytest.raises(ValueError, match="is not KEY=VALUE"):
        RecipeConfig.read(path, changed=["stage2.adv_weight"], work=str(tmp_path))
