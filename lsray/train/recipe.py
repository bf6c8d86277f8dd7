"""A bundle trained from nothing on the synthetic world: the demo bundle's recipe.

No pretrained weight can be downloaded here, so the recipe builds every part itself, each step a
project job or stage, each skipped when its output already exists (rerun = resume):

1. ``world``: talking-head clips of the synthetic world's *train* split (identities, sentences
   and voices disjoint from the test split the demo and the benchmarks use);
1a. ``phoneme`` (optional, upgrade 1): the phoneme-CTC job (``job: phoneme``) on the world's
   speech; its Wav2Vec2 is the fused audio branch, frozen, and ships in the bundle as ``phoneme/``;
2. ``shards``: ``prepare_training`` on them (mediapipe tracking, alignment, audio features from
   the recipe's randomly initialised Whisper, which stays frozen and ships in the bundle, and
   with ``phoneme`` the phoneme branch's features too);
3. ``vae``: the autoencoder job (``job: vae``), or with ``vae_from`` a trained one taken as is;
4. ``init``: a fresh UNet plus that Whisper, VAE (latent scaling from its statistics) and mask;
   or, with ``start_from``, a trained bundle instead of steps 3-4: its Whisper makes the shards,
   its UNet and VAE start stage 2 (an audio input widened for the phoneme branch is zero-padded,
   so the fine-tune starts from exactly what that bundle computes);
5. ``stage2``: the stage-2 job from ``init`` (or ``start_from``; a recipe with ``start_from`` and
   ``distill`` may leave it out: the start bundle as it is is then the teacher of step 6a);
5a. ``blend`` (optional, with ``start_from``): stage 2's UNet blended in weight space toward the
   start's, ``start + blend * (tuned - start)`` (:mod:`lsray.train.blend`); the steps after it
   (audio check, publishing, distillation) see the blended UNet;
5b. ``audio_check`` (optional): the stage-2 UNet must do clearly worse with the wrong audio
   (:mod:`lsray.train.audio_check`); a UNet that learned to ignore its audio fails the recipe
   here, before anything is published;
5c. ``vae_decoder`` (optional): the autoencoder job again, decoder only: the encoder (so every
   latent stage 2 saw) is unchanged, the decoder sharpens; the bundle ships that VAE;
6. the teacher bundle (stage 2's UNet, the shipped VAE, the recipe's sampler) is published: to
   ``out``, or, with ``distill``, to the work folder as the teacher of
6a. ``distill`` (optional, upgrade 4): the LCM distillation job; ``out`` is then the consistency
   student, which samples in its few steps by default and carries the teacher for ``--sampler ddim``;
7. ``syncnet`` (optional): the SyncNet job on the same shards, written to ``syncnet_out``: the
   scorer behind LSE-C / LSE-D for this world (no pretrained ``syncnet_v2.model`` is available).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lsray.bundle.config import BundleConfig, Provenance, SamplerDefaults, VoiceDefaults
from lsray.models.config import UNetConfig
from lsray.resolution import Resolution


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorldSettings(_Strict):
    clips: int = Field(48, ge=1)
    seed: int = 0
    frame_size: int = 256  # square frames; the face is aligned to the bundle's resolution from them
    fps: int = 25


class WhisperSettings(_Strict):
    """The recipe's random, frozen Whisper (:func:`lsray.train.tiny.tiny_whisper`)."""

    d_model: int = 64
    encoder_layers: int = 1
    seed: int = 0
    conv_gain: float = 4.0  # the mel must reach the features ...
    position_scale: float = 0.1  # ... and not drown in the position table


class AudioCheckSettings(_Strict):
    """:func:`lsray.train.audio_check.audio_reliance` on the train shards after stage 2."""

    timestep: int = Field(999, ge=0)
    sequences: int = Field(64, ge=2)
    min_gain: float = 0.25  # the wrong audio must raise the x0 error by at least this fraction


class RecipeConfig(_Strict):
    recipe: str = "demo"
    work: str  # intermediate data (world, shards, checkpoints)
    out: str  # the finished bundle
    resolution: Resolution = 128
    world: WorldSettings = Field(default_factory=WorldSettings)
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    # UNetConfig fields (cross_attention_dim is the Whisper width); not with start_from
    unet: dict[str, Any] | None = None
    # a trained bundle stage 2 fine-tunes (its UNet, Whisper and VAE) instead of a fresh UNet: a
    # round of upgrades costs a fine-tune instead of the whole recipe
    start_from: str | None = None
    sampler: SamplerDefaults = Field(default_factory=SamplerDefaults)
    vae: dict[str, Any] | None = None  # a ``job: vae`` config without out / data.shards
    # ... or an autoencoder folder (diffusers + latent_stats.json, e.g. a bundle's vae/) used as is:
    # no vae / vae_decoder steps (the VAE is most of the recipe's CPU time on a CPU machine)
    vae_from: str | None = None
    stage2: dict[str, Any] | None = None  # a ``job: stage2`` config without bundle / out / data.shards
    # publish start_from + blend * (stage 2's UNet - start_from's) instead of stage 2's UNet (WiSE-FT)
    blend: float | None = Field(default=None, ge=0.0, le=1.0)
    # a ``job: phoneme`` config without out (data.root defaults to the work folder): fused audio
    phoneme: dict[str, Any] | None = None
    vae_decoder: dict[str, Any] | None = None  # a ``job: vae`` config (decoder_only) without init / out / data.shards
    syncnet: dict[str, Any] | None = None  # a ``job: syncnet`` config without out / data.shards
    syncnet_out: str | None = None
    audio_check: AudioCheckSettings | None = None
    # a ``job: distill`` config without teacher / out / data.shards: the shipped bundle is its student
    distill: dict[str, Any] | None = None
    voice: VoiceDefaults = Field(default_factory=VoiceDefaults)  # the shipped bundle's voice conversion
    # settings :meth:`read` took out of the file (dotted keys: an ablation of one upgrade, e.g.
    # ``phoneme`` or ``sampler.anchors``) or gave another value (``stage2.adv_weight=0``); kept so
    # the bundle's provenance names the variant
    without: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_start(self) -> "RecipeConfig":
        if self.stage2 is None:  # a distillation of start_from as it is
            if self.start_from is None or self.distill is None:
                raise ValueError("without stage2 a recipe distils start_from as it is: it needs start_from and distill")
            if self.phoneme is not None or self.audio_check is not None or self.blend is not None:
                raise ValueError("phoneme, blend and audio_check act on stage 2: drop them, or add stage2")
        if self.start_from is not None:
            clash = [k for k in ("unet", "vae", "vae_from", "vae_decoder") if getattr(self, k) is not None]
            clash += ["whisper"] if self.whisper != WhisperSettings() else []  # (a dumped recipe has the default)
            if clash:
                raise ValueError(f"start_from brings its own UNet, Whisper and VAE: drop {', '.join(clash)}")
            return self
        if self.blend is not None:
            raise ValueError("blend moves stage 2's UNet back toward start_from's: it needs start_from")
        if self.unet is None:
            raise ValueError("a recipe needs unet (a fresh UNet's config) or start_from (a trained bundle)")
        if (self.vae is None) == (self.vae_from is None):
            raise ValueError("a recipe needs exactly one of vae (train an autoencoder) and vae_from (use a trained one)")
        if self.vae_from is not None and self.vae_decoder is not None:
            raise ValueError("vae_decoder fine-tunes the recipe's own VAE; with vae_from the VAE is used as is")
        return self

    @classmethod
    def read(cls, path: str | Path, without: list[str] | tuple[str, ...] = (), changed: list[str] | tuple[str, ...] = (),
             **overrides: Any) -> "RecipeConfig":
        """The recipe in ``path`` with ``overrides`` set, the dotted keys in ``without`` removed
        (``stage2.anchors``: the stage-2 section's ``anchors``) and each ``KEY=VALUE`` in
        ``changed`` given its YAML value (``stage2.discriminator=null``: a setting whose default
        is on), so an ablation is the shipped recipe minus one upgrade rather than a copy of it. A
        key the file does not have is an error: a typo would otherwise train the full recipe under
        the variant's name."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        data.update({k: v for k, v in overrides.items() if v is not None})

        def section(key: str) -> tuple[dict, str]:
            *parents, leaf = key.split(".")
            node = data
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or leaf not in node:
                raise ValueError(f"{path} has no setting {key!r} to leave out or change")
            return node, leaf

        for key in without:
            node, leaf = section(key)
            del node[leaf]
        for item in changed:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not KEY=VALUE (e.g. stage2.adv_weight=0)")
            node, leaf = section(key)
            node[leaf] = yaml.safe_load(value)
        if without:
            data["without"] = [*data.get("without", []), *without]
        if changed:
            data["changed"] = [*data.get("changed", []), *changed]
        return cls.model_validate(data)


def _log(msg: str) -> None:
    print(f"[recipe {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_world(cfg: RecipeConfig, root: Path) -> Path:
    """Train-split clips + a catalog (each clip's own speech is its audio)."""
    from lsray.media.atomic import atomic_output
    from lsray.synth import world
    from lsray.synth.render import write_clip, write_speech_wav

    catalog = root / "catalog.jsonl"
    if catalog.is_file():
        return catalog
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, pair in enumerate(world.sample_pairs(cfg.world.seed, cfg.world.clips, "train")):
        speech = pair.speech()
        video = write_clip(root / f"w{i:04d}.mp4", pair.identity, speech, fps=cfg.world.fps, size=cfg.world.frame_size)
        audio = write_speech_wav(root / f"w{i:04d}.wav", speech)
        rows.append({"clip_id": f"w{i:04d}", "video": str(video), "audio": str(audio)})
    with atomic_output(catalog) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return catalog


def build_assets(cfg: RecipeConfig, root: Path, start: Path | None = None) -> Path:
    """The frozen Whisper (random, seeded; or the ``start`` bundle's, which its UNet was trained
    on) and the generated inpainting mask."""
    from PIL import Image

    from lsray.bundle.convert import default_mask
    from lsray.train.tiny import tiny_whisper

    if (root / "whisper" / "config.json").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    if start is not None:
        shutil.copytree(start / "whisper", root / "whisper")
        return root
    w = cfg.whisper
    whisper = tiny_whisper(d_model=w.d_model, seed=w.seed, encoder_layers=w.encoder_layers,
                           conv_gain=w.conv_gain, position_scale=w.position_scale)
    whisper.encoder.save_pretrained(str(root / "whisper"), safe_serialization=True)
    Image.fromarray(default_mask(256)).save(root / "mask.png")
    return root


def build_shards(cfg: RecipeConfig, catalog: Path, assets: Path, out: Path, phoneme: Path | None = None) -> Path:
    """Training shards; with ``phoneme`` (a PhonemeEncoder folder) they hold its features too."""
    import torch

    from lsray.audio.whisper import WhisperEncoder
    from lsray.train.data import INDEX_FILE, prepare_training

    if (out / INDEX_FILE).is_file():
        return out
    whisper = WhisperEncoder.from_pretrained(str(assets / "whisper"))
    encoder = None
    if phoneme is not None:
        from lsray.audio.phoneme import PhonemeEncoder

        encoder = PhonemeEncoder.from_pretrained(phoneme, device=torch.device("cpu"))
    summary = prepare_training(str(catalog), str(out), whisper=whisper, phoneme=encoder, resolutions=(cfg.resolution,))
    _log(f"shards: {summary.clips_written} clips written, {summary.dropped_no_face} without a face")
    return out


def init_bundle(cfg: RecipeConfig, assets: Path, vae_dir: Path, out: Path, phoneme: Path | None = None) -> Path:
    """A random UNet with the recipe's config around the trained parts; with ``phoneme`` its audio
    is fused (Whisper + the 128-d phoneme branch) and the bundle carries that encoder."""
    import torch

    from lsray.audio.phoneme import PHONEME_DIM
    from lsray.bundle.config import AudioConfig, MaskInfo, VAEConfig, WhisperLayout
    from lsray.models.unet import LipSyncUNet
    from lsray.train.export import save_inference_bundle
    from lsray.train.vae import read_latent_stats

    if (out / "config.json").is_file():
        return out
    base = out.with_name(out.name + "-assets")
    if base.exists():
        shutil.rmtree(base)
    shutil.copytree(assets, base)
    shutil.copytree(vae_dir, base / "vae")
    width = cfg.whisper.d_model + (PHONEME_DIM if phoneme is not None else 0)
    unet_cfg = UNetConfig.model_validate({**cfg.unet, "cross_attention_dim": width})
    torch.manual_seed(cfg.world.seed)
    unet = LipSyncUNet(unet_cfg)
    stats = read_latent_stats(vae_dir)
    config = BundleConfig(
        resolution=cfg.resolution, unet=unet_cfg, sampler=cfg.sampler,
        audio=AudioConfig(encoder="whisper" if phoneme is None else "fused",
                          whisper=WhisperLayout(encoder_layers=cfg.whisper.encoder_layers, dim=cfg.whisper.d_model)),
        vae=VAEConfig(scaling_factor=stats["scaling_factor"], shift_factor=stats["shift_factor"]),
        mask=MaskInfo(source="generated"), provenance=Provenance(source=f"recipe {cfg.recipe}: random init", converted_by="lsray recipe"),
    )
    save_inference_bundle(out, unet, base, config, phoneme_dir=phoneme)
    shutil.rmtree(base)
    return out


def _keep_start(cfg: RecipeConfig, kept: Path) -> Path | None:
    """A copy of ``start_from`` in the work folder, made once: the recipe may publish over the
    bundle it started from (v2 replaces v1 in the package), and a rerun must still start from v1."""
    from lsray.media.atomic import atomic_directory

    if cfg.start_from is None:
        return None
    if not (kept / "config.json").is_file():
        with atomic_directory(kept) as tmp:
            shutil.copytree(Path(cfg.start_from).expanduser(), tmp, dirs_exist_ok=True)
    return kept


def _widen_for_phoneme(cfg: RecipeConfig, start: Path, phoneme: Path | None) -> dict[str, Any]:
    """Stage-2 fields that turn ``start_from``'s Whisper-only UNet into a fused-audio one: the
    phoneme encoder and the wider audio input (the new columns start at zero)."""
    from lsray.audio.phoneme import PHONEME_DIM

    if phoneme is None:
        return {}
    width = BundleConfig.read(start / "config.json").audio.whisper.dim + PHONEME_DIM
    overrides = {**cfg.stage2.get("unet_overrides", {}), "cross_attention_dim": width}
    return {"phoneme": str(phoneme), "unet_overrides": overrides}


def section_job(section: dict[str, Any], kind: str, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A recipe section as the ``job: kind`` config the recipe runs: the section's settings, the
    ``fields`` the recipe decides (``out``, ``bundle``, ``teacher``, ...) and ``data`` (where the
    shards are) over the section's own data settings."""
    return {**section, "job": kind, **fields, "data": {**section.get("data", {}), **data}}


def _train(name: str, job: dict[str, Any], done: Path, every: int) -> None:
    """Run ``job`` in-process unless ``done`` says an earlier run finished it (rerun = resume);
    ``done`` then holds the last step's metrics."""
    from lsray.train.config import load_job_config
    from lsray.train.runner import train_local

    if done.is_file():
        return
    _log(name)
    _, history = train_local(load_job_config(job), on_step=_progress(name, every))
    done.write_text(json.dumps(history[-1]))


def _progress(name: str, every: int) -> Callable[[int, dict], None]:
    t0 = time.perf_counter()

    def report(step: int, metrics: dict) -> None:
        if (step + 1) % every == 0:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k in ("total", "l1", "psnr", "noise", "recon"))
            _log(f"{name} step {step + 1}: {shown} ({(time.perf_counter() - t0) / (step + 1):.2f} s/step)")

    return report


#: Settings that change no file in the work folder (where things go, what is checked; ``without``
#: and ``changed`` only name what the other settings already say).
_NO_ARTEFACT = ("work", "out", "syncnet_out", "audio_check", "voice", "without", "changed")


def _artefact_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """The parts of a recipe (as dumped) that shape the work folder's files. Of the sampler only
    its noise schedule trains anything (stage 2's loss, the audio check); the rest is how the
    bundle samples and decodes, which publishing applies (:func:`run_recipe`)."""
    out = {k: v for k, v in recipe.items() if k not in _NO_ARTEFACT}
    if isinstance(out.get("sampler"), dict):
        out["sampler"] = {"scheduler": out["sampler"].get("scheduler")}
    return out


def _publish_settings(cfg: RecipeConfig, config: BundleConfig, steps: int, start: Provenance | None) -> None:
    """What publishing sets on a bundle whatever trained it: voice conversion and provenance
    (``start``: the provenance of the bundle it was fine-tuned from)."""
    config.voice = cfg.voice
    distilled = ", LCM-distilled" if config.lcm is not None else ""
    if start is not None:
        distilled = f", fine-tuned from ({start.source}){distilled}"
    variant = f" without {', '.join(cfg.without)}" if cfg.without else ""
    variant += f" with {', '.join(cfg.changed)}" if cfg.changed else ""
    config.provenance = Provenance(source=f"recipe {cfg.recipe} (jobs/configs/{cfg.recipe}.yaml){variant}: synthetic "
                                          f"world, {cfg.world.clips} train clips{distilled}", global_step=steps,
                                   converted_by="lsray recipe")


def check_audio_use(cfg: RecipeConfig, bundle: Path, shards: Path) -> None:
    """Fail the recipe when the stage-2 UNet ignores its audio (:mod:`lsray.train.audio_check`)."""
    from lsray.errors import LsrayError
    from lsray.train.audio_check import audio_reliance
    from lsray.train.config import DataSettings

    check = cfg.audio_check
    # stage 2's sequences and noise, defaults included
    data = DataSettings.model_validate({**cfg.stage2.get("data", {}), "shards": str(shards)})
    result = audio_reliance(bundle, shards, timestep=check.timestep, sequences=check.sequences,
                            seq_len=data.seq_len, noise_share=data.shared_noise)
    _log(f"audio check: {result.describe()}")
    if result.gain < check.min_gain:
        raise LsrayError(f"the stage-2 UNet in {bundle} ignores its audio: {result.describe()}, below the "
                         f"{100 * check.min_gain:.0f} % the recipe asks (audio_check.min_gain); nothing was published")


def _claim_work(cfg: RecipeConfig, record: Path) -> None:
    """Resume only what this recipe made: a work folder holding another recipe's steps would be
    silently reused (e.g. a 48-clip world under a 192-clip config), so that is refused."""
    mine = cfg.model_dump(mode="json")
    if record.is_file():
        ours, theirs = _artefact_settings(mine), _artefact_settings(yaml.safe_load(record.read_text()) or {})
        changed = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if changed:
            raise ValueError(f"{record.parent} holds a recipe that differs in {', '.join(changed)}; "
                             "pass another --work (or delete that folder) to start over")
    record.write_text(yaml.safe_dump(mine, sort_keys=False))


def run_recipe(cfg: RecipeConfig) -> Path:
    """Every step (skipping finished ones); returns the bundle directory ``cfg.out``."""
    from lsray.media.atomic import atomic_directory
    from lsray.train.blend import blend_bundles

    work = Path(cfg.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    _claim_work(cfg, work / "recipe.yaml")
    start = _keep_start(cfg, work / "start")
    _log("world")
    catalog = build_world(cfg, work / "world")
    assets = build_assets(cfg, work / "assets", start)
    phoneme = None
    if cfg.phoneme is not None:
        phoneme = work / "phoneme"
        job = section_job(cfg.phoneme, "phoneme", {}, out=str(phoneme))
        job["data"].setdefault("root", str(work / "phoneme-data"))  # the synthesised speech, unless the section says
        _train("phoneme", job, work / "phoneme.done.json", 100)
        per = json.loads((phoneme / "eval.json").read_text())
        _log(f"phoneme: held-out phoneme error rate {per['per']:.3f} over {per['utterances']} utterances")
    _log("shards")
    shards = build_shards(cfg, catalog, assets, work / "shards", phoneme)
    data = {"shards": str(shards), "image_size": cfg.resolution}
    start_fields: dict[str, Any] = {}
    if start is not None:
        init = start
        start_fields = _widen_for_phoneme(cfg, init, phoneme)
    else:
        if cfg.vae_from is None:
            vae_dir = work / "vae"
            _train("vae", section_job(cfg.vae, "vae", data, out=str(vae_dir)), work / "vae.done.json", 50)
        else:
            vae_dir = Path(cfg.vae_from)
        init = init_bundle(cfg, assets, vae_dir, work / "init", phoneme)
    stage2_dir = work / "stage2"
    if cfg.stage2 is None:  # distil the start bundle as it is (the validator made sure there is one)
        stage2_dir = init
    else:
        _train("stage2", section_job(cfg.stage2, "stage2", data, bundle=str(init), out=str(stage2_dir), **start_fields),
               work / "stage2.done.json", 50)
        if cfg.blend is not None:
            blended = work / "blended"
            if not (blended / "config.json").is_file():
                _log(f"blend: start + {cfg.blend:g} x (stage 2 - start)")
                blend_bundles(start, stage2_dir, cfg.blend, blended)
            stage2_dir = blended
    if cfg.audio_check is not None:
        check_audio_use(cfg, stage2_dir, shards)
    shipped_vae = None
    if cfg.vae_decoder is not None:
        shipped_vae = work / "vae-decoder"
        _train("vae decoder", section_job(cfg.vae_decoder, "vae", data, decoder_only=True, init=str(vae_dir),
                                          out=str(shipped_vae)), work / "vae-decoder.done.json", 100)
    steps = int((cfg.stage2 or {}).get("steps", 0))
    started = None if start is None else BundleConfig.read(start / "config.json").provenance
    steps += 0 if started is None else started.global_step or 0
    out = Path(cfg.out)
    teacher = out if cfg.distill is None else work / "teacher"
    with atomic_directory(teacher) as tmp:
        shutil.copytree(stage2_dir, tmp, dirs_exist_ok=True)
        if shipped_vae is not None:
            shutil.rmtree(tmp / "vae")
            shutil.copytree(shipped_vae, tmp / "vae")
        config = BundleConfig.read(tmp / "config.json")
        config.sampler = cfg.sampler  # the recipe's sampling and decoding, whenever the UNet was trained
        _publish_settings(cfg, config, steps, started)
        config.write(tmp / "config.json")
    if cfg.distill is not None:
        student_dir = work / "student"
        _train("distill", section_job(cfg.distill, "distill", data, teacher=str(teacher), out=str(student_dir)),
               work / "student.done.json", 50)
        with atomic_directory(out) as tmp:
            shutil.copytree(student_dir, tmp, dirs_exist_ok=True)
            config = BundleConfig.read(tmp / "config.json")
            # the student's own sampling (lcm, its steps and guidance, anchors if distilled with
            # them) with the recipe's decoding; the VAE is the teacher's, i.e. the shipped one
            config.sampler = config.sampler.model_copy(update={
                "detail_transfer": cfg.sampler.detail_transfer, "detail_gate": cfg.sampler.detail_gate})
            _publish_settings(cfg, config, steps + int(cfg.distill.get("steps", 0)), started)
            config.write(tmp / "config.json")
    _log(f"bundle written to {out}")
    if cfg.syncnet is not None and cfg.syncnet_out:
        sync_dir = work / "syncnet"  # its own image size: the SyncNet's input, not the bundle's
        _train("syncnet", section_job(cfg.syncnet, "syncnet", {"shards": str(shards)}, out=str(sync_dir)),
               work / "syncnet.done.json", 50)
        with atomic_directory(Path(cfg.syncnet_out)) as tmp:
            shutil.copytree(sync_dir, tmp, dirs_exist_ok=True)
        _log(f"syncnet written to {cfg.syncnet_out}")
    return out
