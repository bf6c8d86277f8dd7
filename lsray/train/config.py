"""Job configs (pydantic), read from ``jobs/configs/*.yaml``: what to train, on what, with which Ray resources.

Resource requests are configuration (DESIGN.md): ``ray.num_workers`` / ``ray.use_gpu`` /
``ray.cpus_per_worker`` go straight into ``ScalingConfig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from lsray.errors import LsrayError
from lsray.models.discriminator import DiscriminatorConfig
from lsray.models.syncnet import SyncNetConfig

#: Upstream stage 2 trains the temporal and attention layers; lsray adds its new branches.
DEFAULT_TRAINABLE = ("motion_modules.", "attentions.", ".anchor.", "time_embedding.cond_proj")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RaySettings(_Strict):
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    storage_path: str = "~/lsray-runs"  # local path or s3:// (checkpoints)
    name: str | None = None
    checkpoint_every: int = Field(500, ge=1)  # steps
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(3, ge=0)  # worker-group restarts, each resuming from the last checkpoint
    mixed_precision: bool = True  # bf16 autocast, GPU only
    gradient_checkpointing: bool = True  # GPU only


class DataSettings(_Strict):
    shards: str  # the OUT of `lsray prepare-training`
    image_size: int = Field(256, ge=16)  # crops are resized to this (tests: 64)
    seq_len: int = Field(16, ge=1)  # frames per training sequence
    stride: int = Field(8, ge=1)
    batch_size: int = Field(1, ge=1)  # per worker
    cache_in_memory: bool = False  # keep each worker's shard in RAM (small datasets)
    # fraction of the training noise's variance shared by all frames (1 = one frame repeated, as at
    # inference; 0 = i.i.d.; 0.5 = mixed noise); see lsray.train.latents.sample_noise
    shared_noise: float = Field(1.0, ge=0.0, le=1.0)
    seed: int = 0


class AnchorTraining(_Strict):
    """Training to follow long-range anchors (upgrade 3), the way inference uses them: a clip's
    keyframes (every ``anchor_stride``-th frame, the UNet's ``temporal.anchor_stride``) are sampled
    first as keyframe sequences, then every window is sampled with its keyframes *pinned* (clean
    latents in the noisy channels, :mod:`lsray.sampling.pins`). Each training step draws one layout
    (:func:`lsray.train.latents.anchor_layout`): with ``keyframe_probability`` the sequence becomes a
    keyframe sequence (its frames 0, stride, 2 stride, ... at their frame times) whose first k in
    [0, ``overlap``] keyframes are pinned (the previous anchor sequence's overlap); otherwise, with
    ``pin_probability``, its keyframes are pinned (a window of the local pass); else nothing is.
    Pinned frames are excluded from the diffusion / consistency loss (the sampler overwrites them).
    """

    pin_probability: float = Field(0.75, ge=0.0, le=1.0)
    keyframe_probability: float = Field(0.25, ge=0.0, le=1.0)
    overlap: int = Field(1, ge=0)  # at most this many leading keyframes of a keyframe sequence are pinned


class Stage2Config(_Strict):
    """Stage-2 fine-tune: LatentSync's objective + lip discriminator (2) + temporal losses (3)."""

    job: Literal["stage2"] = "stage2"
    bundle: str  # initial weights (UNet, Whisper, VAE, mask)
    out: str  # bundle written at the end (no discriminator inside)
    data: DataSettings
    ray: RaySettings = Field(default_factory=RaySettings)
    steps: int = Field(1000, ge=1)
    lr: float = 1e-5
    # the generator's schedule (optim.warmup_cosine_lr); the defaults keep lr constant, as v1 was
    # trained. A fine-tune of a trained UNet starts with empty AdamW moments (warm-up) and ends
    # on a noisy iterate unless the rate decays (min_lr_ratio < 1)
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(1.0, ge=0.0, le=1.0)
    max_grad_norm: float = 1.0
    trainable: tuple[str, ...] = DEFAULT_TRAINABLE
    unet_overrides: dict[str, Any] = Field(
        default_factory=lambda: {"temporal": {"band": 2, "anchor_stride": 8, "max_len": 64}}
    )
    # upgrade 1: a PhonemeEncoder.save_pretrained folder turns a Whisper-only bundle into a fused-audio
    # one (with unet_overrides.cross_attention_dim = Whisper dim + 128, and shards prepared with
    # this encoder's phoneme features); the exported bundle carries it as phoneme/
    phoneme: str | None = None
    # LatentSync stage-2 terms
    noise_weight: float = 1.0
    # extra weight of the diffusion loss inside the regenerated (mouth) region: the rest of the
    # latent is given by the masked frame, and without it the mouth's share of the loss is small
    mouth_weight: float = Field(0.0, ge=0.0)
    recon_weight: float = 1.0  # L1 between decoded x0 estimate and the frame
    sync_weight: float = 0.05
    syncnet: str | None = None  # SyncNet.save_pretrained directory; no sync loss without it
    perceptual_weight: float = 0.1
    perceptual_weights: str | None = None  # VGG16 weights file; no perceptual loss without it
    # upgrade 2
    discriminator: DiscriminatorConfig | None = Field(default_factory=DiscriminatorConfig)
    adv_weight: float = 0.1
    adv_warmup_steps: int = 1000
    feature_matching_weight: float = 1.0
    d_lr: float = 1e-4
    # upgrade 3
    smooth_weight: float = 0.1
    anchor_weight: float = 0.1
    anchor_window: int | None = 16  # frames of the windowed pass the anchor-consistency loss compares
    anchors: AnchorTraining | None = None  # pinned keyframes / keyframe sequences (None: off)


class DistillConfig(_Strict):
    """Latent consistency distillation of the DDIM + guidance teacher (upgrade 4)."""

    job: Literal["distill"] = "distill"
    teacher: str  # bundle
    out: str
    data: DataSettings
    ray: RaySettings = Field(default_factory=RaySettings)
    steps: int = Field(1000, ge=1)
    lr: float = 1e-5
    max_grad_norm: float = 1.0
    time_cond_proj_dim: int = 256
    num_ddim_timesteps: int = 20  # solver grid: k = 1000 / 20 = 50, the teacher's own 20 DDIM steps
    w_min: float = 1.0
    w_max: float = 2.0
    teacher_guidance: float = 1.5  # recorded in the bundle: what the student imitates by default
    teacher_steps: int = 20
    ema_decay: float = 0.95
    huber_c: float = 0.001
    student_steps: int = 4  # the output bundle's default
    trainable: tuple[str, ...] = ("",)  # the whole UNet (prefix "" matches every parameter)
    anchors: AnchorTraining | None = None  # the student learns to follow pinned keyframes too (None: off)


class SyncNetTrainConfig(_Strict):
    job: Literal["syncnet"] = "syncnet"
    out: str  # SyncNet.save_pretrained directory
    data: DataSettings
    ray: RaySettings = Field(default_factory=RaySettings)
    model: SyncNetConfig = Field(default_factory=SyncNetConfig)
    init: str | None = None  # continue from a SyncNet directory
    steps: int = Field(1000, ge=1)
    lr: float = 1e-4
    negative_shift: int = 5  # a negative's mel starts at least this many frames away
    max_grad_norm: float = 1.0


class VAEModelSettings(_Strict):
    """A diffusers AutoencoderKL with the SD VAE's layout (4 latent channels, /8 with four
    levels) at a size that trains on a CPU; the SD VAE itself is ~84 M parameters."""

    block_out_channels: tuple[int, ...] = (32, 64, 64, 64)
    layers_per_block: int = Field(1, ge=1)
    norm_num_groups: int = Field(8, ge=1)
    latent_channels: int = 4


class VAETrainConfig(_Strict):
    """Autoencoder training on face crops, for bundles that cannot start from the SD VAE (the
    demo bundle: no weights can be downloaded). L1 everywhere, more weight on the mouth region
    the UNet regenerates (where the decoded result is judged), and a small KL term."""

    job: Literal["vae"] = "vae"
    out: str  # diffusers save_pretrained directory, plus latent_stats.json
    data: DataSettings
    ray: RaySettings = Field(default_factory=RaySettings)
    model: VAEModelSettings = Field(default_factory=VAEModelSettings)
    init: str | None = None  # continue from an AutoencoderKL directory
    mask: str | None = None  # inpainting mask PNG (default: the shards' mask.png)
    steps: int = Field(1000, ge=1)
    lr: float = 1e-3
    max_grad_norm: float = 1.0
    kl_weight: float = 1e-6
    mouth_weight: float = 4.0  # extra L1 weight inside the regenerated region
    # Decoder fine-tune (as sd-vae-ft-mse did for SD): the encoder, and so every latent a UNet was
    # trained on, stays fixed; needs ``init``, whose latent_stats.json is kept.
    decoder_only: bool = False


class TextMix(_Strict):
    """What train utterances say, as relative weights. The world has only 20 train sentences; a
    model trained on them and their words alone learns those words (30 % sentences, 70 % words,
    2800 steps: train PER 0.02, held-out 0.37), so half the texts are pseudo-words (this mix,
    3600 steps: 0.03 / 0.25). ``words``: 3-9 words of the language's train sentences in random
    order; ``syllables``: 3-8 pseudo-words of 1-3 syllables cut from those words, which espeak
    reads by the language's rules (new phoneme sequences, the same phonotactics)."""

    sentences: float = Field(0.15, ge=0.0)
    words: float = Field(0.35, ge=0.0)
    syllables: float = Field(0.5, ge=0.0)


class PhonemeDataSettings(_Strict):
    """Utterances of the synthetic world's speech (:mod:`lsray.train.phoneme_data`), synthesised
    once into ``root`` (local path or s3://) and read from there; deterministic from ``seed``.

    Train utterances use the world's train sentences (and their words, :class:`TextMix`) and
    train voices, with random speaking rate and pitch. Test utterances are the test sentences x
    test voices (both disjoint from train), at random rate and pitch.
    """

    root: str  # cache of synthesised utterances (npz chunks)
    train_utterances: int = Field(4000, ge=1)
    test_utterances: int = Field(96, ge=1)  # held-out evaluation at export
    texts: TextMix = Field(default_factory=TextMix)
    languages: tuple[str, ...] | None = None  # default: every language of the world
    rate: tuple[int, int] = (140, 220)  # espeak words per minute, uniform (espeak's default 175)
    pitch: tuple[int, int] = (30, 70)  # espeak pitch 0-100, uniform (default 50)
    noise_snr_db: tuple[float, float] | None = (15.0, 40.0)  # white noise added to half the batch; None: off
    batch_size: int = Field(8, ge=1)  # per worker
    cache_in_memory: bool = True  # the set is small (a few hundred MB of int16 PCM)
    seed: int = 0


class PhonemeModelSettings(_Strict):
    """A small ``Wav2Vec2Config``: the base models' conv stack (kernels 10,3,3,3,3,2,2, strides
    5,2,2,2,2,2,2: 320 samples per frame, ~50 Hz at 16 kHz, 400-sample receptive field) at a width
    that trains on a CPU, with the stable-layer-norm layout (per-frame LayerNorms, so padded batches
    and chunked inference see the same normalisation; the group-norm layout normalises over time)."""

    hidden_size: int = Field(128, ge=8)
    num_hidden_layers: int = Field(3, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(256, ge=8)
    # 7 layers, widening as the frame rate falls
    conv_dim: tuple[int, ...] = Field((32, 32, 48, 64, 96, 128, 128), min_length=7, max_length=7)
    num_conv_pos_embeddings: int = Field(64, ge=2)
    num_conv_pos_embedding_groups: int = Field(16, ge=1)
    # of the conv stack: GELU's backward on its high-rate activations was ~19 % of a CPU step
    conv_activation: str = "relu"
    dropout: float = Field(0.1, ge=0.0, le=1.0)  # hidden, attention, activation, feature projection
    mask_time_prob: float = Field(0.05, ge=0.0, le=1.0)  # SpecAugment-style time masks while training


class PhonemeTrainConfig(_Strict):
    """A phoneme-CTC Wav2Vec2 for the fused audio branch (upgrade 1), trained from random init on
    the synthetic world's speech (no pretrained phoneme model can be downloaded). The export is a
    ``PhonemeEncoder.save_pretrained`` folder (projection = a fixed standardisation of the hidden
    states) plus ``vocab.json`` and ``eval.json`` (held-out phoneme error rate)."""

    job: Literal["phoneme"] = "phoneme"
    out: str  # PhonemeEncoder.save_pretrained directory (+ vocab.json, eval.json)
    data: PhonemeDataSettings
    ray: RaySettings = Field(default_factory=RaySettings)
    model: PhonemeModelSettings = Field(default_factory=PhonemeModelSettings)
    steps: int = Field(2000, ge=1)
    lr: float = 1e-3
    warmup_steps: int = Field(200, ge=0)  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = Field(0.05, ge=0.0, le=1.0)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    stats_utterances: int = Field(64, ge=1)  # train utterances the export's standardisation is measured on


JobConfig = Stage2Config | DistillConfig | SyncNetTrainConfig | VAETrainConfig | PhonemeTrainConfig
_JOBS = {"stage2": Stage2Config, "distill": DistillConfig, "syncnet": SyncNetTrainConfig, "vae": VAETrainConfig,
         "phoneme": PhonemeTrainConfig}


def load_job_config(source: str | Path | dict[str, Any], **overrides: Any) -> JobConfig:
    """A job config from a yaml file or dict; ``overrides`` replace top-level keys."""
    if isinstance(source, dict):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise LsrayError(f"{path}: job config not found")
        data = yaml.safe_load(path.read_text()) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    kind = data.get("job")
    if kind not in _JOBS:
        raise LsrayError(f"job config needs job: one of {sorted(_JOBS)}, got {kind!r}")
    return _JOBS[kind].model_validate(data)
