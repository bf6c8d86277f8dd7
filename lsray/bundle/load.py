"""Opening a bundle: where it lives (:func:`resolve_bundle`) and its models (:class:`ModelBundle`).

:func:`load_bundle` reads one into a typed :class:`ModelBundle`. Nothing is downloaded: a missing
file is :class:`MissingWeightError` naming the path expected, an unreadable config is
:class:`BundleError`. Bundle locations go through :func:`resolve_bundle`, a scheme -> resolver
table, so remote stores (``s3://``) plug in with :func:`register_resolver` without touching the loader.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from lsray.bundle.config import (
    CONFIG_FILE,
    MASK_FILE,
    PHONEME_DIR,
    UNET_FILE,
    VAE_DIR,
    WHISPER_DIR,
    BundleConfig,
)
from lsray.errors import BundleError, LsrayError, MissingWeightError

if TYPE_CHECKING:  # heavy imports stay out of module import (``lsray --help`` must be fast)
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from lsray.audio.fused import FusedAudioEncoder
    from lsray.audio.phoneme import PhonemeEncoder
    from lsray.audio.whisper import WhisperEncoder
    from lsray.models.codec import LatentCodec
    from lsray.models.config import UNetConfig
    from lsray.models.unet import LipSyncUNet
    from lsray.precision import Precision


# --------------------------------------------------------------------------------------------
# where bundles live
# --------------------------------------------------------------------------------------------
Resolver = Callable[[str], Path]
_RESOLVERS: dict[str, Resolver] = {}


def register_resolver(scheme: str, resolver: Resolver) -> None:
    """Teach :func:`resolve_bundle` a URI scheme (e.g. ``"s3"``): ``resolver(uri)`` returns a
    local directory holding the bundle (typically a cache it has synchronised)."""
    _RESOLVERS[scheme.lower()] = resolver


def resolve_bundle(location: str | Path) -> Path:
    """A local directory for ``location``: a path, ``file://`` URI or a registered scheme."""
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Path(text).expanduser()
    scheme = scheme.lower()
    if scheme == "file":
        return Path(rest)
    if scheme in _RESOLVERS:
        return _RESOLVERS[scheme](text)
    raise BundleError(f"{text}: no resolver for '{scheme}://' bundles (local directories only for now)")


def _s3_resolver(uri: str) -> Path:
    """``s3://`` bundles are synchronised into ``$LSRAY_BUNDLE_CACHE`` (lsray.storage.bundle_cache)."""
    from lsray.storage.bundle_cache import resolve_s3_bundle

    return resolve_s3_bundle(uri)


register_resolver("s3", _s3_resolver)


# --------------------------------------------------------------------------------------------
# the loaded bundle
# --------------------------------------------------------------------------------------------
class ModelBundle:
    """Everything the dubbing pipeline needs; each model is loaded on first use (eval mode).

    Lazy parts let a runner that gives each stage its own worker load only what that stage
    uses (the face workers never hold the UNet); :func:`load_bundle` loads everything up front
    unless asked not to, so a broken bundle fails at load time.
    """

    def __init__(self, path: Path, config: BundleConfig, device: "torch.device | str | None" = None,
                 with_vae: bool = True, precision: "Precision | None" = None, compile_unet: bool = False) -> None:
        self.path, self.config, self.with_vae = path, config, with_vae
        self._device, self._precision = device, precision or config.precision
        #: torch.compile the UNets (off by default: the first window pays the compile, tens of
        #: seconds, and each new batch shape recompiles; worth it for long jobs on one shape).
        self.compile_unet = compile_unet

    # The device and dtype resolve on first use: a worker that reads only the config and the mask
    # (render, assemble) never imports torch.
    @cached_property
    def device(self) -> "torch.device":
        import torch

        from lsray.device import default_device

        return torch.device(self._device) if self._device is not None else default_device()

    @cached_property
    def dtype(self) -> "torch.dtype":
        """The UNet's (and VAE's) dtype."""
        from lsray.precision import torch_dtype

        return torch_dtype(self._precision, self.device)

    def _ready(self, unet: "LipSyncUNet") -> "LipSyncUNet":
        """The loaded UNet in the bundle's dtype, compiled in place when asked (attributes such as
        ``config`` and ``dtype`` stay: ``nn.Module.compile`` wraps only the call)."""
        unet = unet.to(self.dtype)
        if self.compile_unet:
            unet.compile()
        return unet

    @cached_property
    def unet(self) -> "LipSyncUNet":
        return self._ready(load_unet(self.path / UNET_FILE, self.config.unet, self.device))

    @cached_property
    def teacher_unet(self) -> "LipSyncUNet":
        """An LCM student bundle's teacher (what ``--sampler ddim`` samples with): the student's
        architecture without the guidance input. BundleError when the bundle ships none."""
        lcm = self.config.lcm
        if lcm is None:
            return self.unet
        if lcm.teacher_unet is None:
            raise BundleError(f"{self.path}: this LCM student bundle has no teacher UNet, so it samples with "
                              "'lcm' only (re-run the distillation to ship one)")
        teacher = self.config.unet.model_copy(update={"time_cond_proj_dim": None})
        return self._ready(load_unet(self.path / lcm.teacher_unet, teacher, self.device))

    def sampling_unet(self, sampler: str) -> "LipSyncUNet":
        """The UNet a sampler runs: LCM needs the distilled student, DDIM a guidance-free model
        (the bundle's own UNet, or a student bundle's teacher)."""
        if sampler == "lcm":
            if self.config.lcm is None:
                raise BundleError(f"{self.path}: sampler 'lcm' needs a distilled student bundle (no lcm section)")
            return self.unet
        return self.teacher_unet

    @cached_property
    def whisper(self) -> "WhisperEncoder":
        from lsray.audio.whisper import WhisperEncoder

        return WhisperEncoder.from_pretrained(self.path / WHISPER_DIR, device=self.device)

    @cached_property
    def phoneme(self) -> "PhonemeEncoder | None":
        """The phoneme branch of a fused bundle (None for Whisper-only ones). Its projection is
        required: a random one would silently feed the UNet noise."""
        if self.config.audio.encoder != "fused":
            return None
        from lsray.audio.phoneme import PROJECTION_FILE, PhonemeEncoder

        folder = self.path / PHONEME_DIR
        return PhonemeEncoder.from_pretrained(folder, folder / PROJECTION_FILE, device=self.device)

    @cached_property
    def mask(self) -> "np.ndarray":
        """(S, S) float32, S = config.resolution; 1 = keep, 0 = regenerate."""
        from lsray.face.mask import load_inpaint_mask

        return load_inpaint_mask(self.path / self.config.mask.file, self.config.resolution)

    @cached_property
    def vae(self) -> "AutoencoderKL | None":
        vae_dir = self.path / VAE_DIR
        if not (self.with_vae and vae_dir.is_dir()):
            return None
        import torch

        vae = load_vae(vae_dir, self.device)
        # force_upcast guards against fp16's overflow (SD's VAE overflows in fp16). bf16 has fp32's
        # range; on a CPU with AMX it runs the demo's VAE 2.8x faster (benchmarks/precision_bench.py).
        upcast = getattr(vae.config, "force_upcast", False) and self.dtype == torch.float16
        return vae if upcast or self.dtype == vae.dtype else vae.to(self.dtype)  # (diffusers warns on any cast)

    def require_vae(self) -> "AutoencoderKL":
        """The VAE, or MissingWeightError naming ``vae/`` when the bundle has none."""
        if self.vae is None:
            raise MissingWeightError(self.path / VAE_DIR, "VAE folder (diffusers AutoencoderKL)")
        return self.vae

    @cached_property
    def codec(self) -> "LatentCodec":
        """Pixels <-> scaled latents with this bundle's VAE and ``config.vae`` scaling: the one
        encode / decode that sampling and training share (MissingWeightError without ``vae/``)."""
        from lsray.models.codec import LatentCodec

        return LatentCodec(self.require_vae(), self.config.vae.scaling_factor, self.config.vae.shift_factor)

    def make_scheduler(self, kind: Literal["ddim", "lcm"]) -> Any:
        """A fresh diffusers scheduler of ``kind`` on the bundle's noise schedule (for training;
        a clip's sampler is decided by ``DubOptions.resolve``)."""
        from lsray.sampling.schedulers import make_scheduler

        try:
            return make_scheduler(kind, self.config.sampler.scheduler)
        except ValueError as exc:
            raise BundleError(str(exc)) from exc

    @cached_property
    def audio_encoder(self) -> "WhisperEncoder | FusedAudioEncoder":
        """The encoder whose tokens the UNet's audio cross-attention takes."""
        if self.phoneme is None:
            return self.whisper
        from lsray.audio.fused import FusedAudioEncoder

        return FusedAudioEncoder(self.whisper, self.phoneme)


def bundle_files(path: str | Path) -> dict[str, bool]:
    """Which of a bundle's expected files exist (``lsray doctor --bundle``); no weights are read.

    The phoneme files are expected when ``config.json`` (if readable) declares fused audio, the
    teacher's weights when it is an LCM student bundle that ships one.
    """
    root = Path(path)
    files = {
        CONFIG_FILE: (root / CONFIG_FILE).is_file(),
        UNET_FILE: (root / UNET_FILE).is_file(),
        f"{WHISPER_DIR}/config.json": (root / WHISPER_DIR / "config.json").is_file(),
        f"{WHISPER_DIR}/model.safetensors": (root / WHISPER_DIR / "model.safetensors").is_file(),
    }
    config = _readable(root / CONFIG_FILE)
    if config is not None and config.lcm is not None and config.lcm.teacher_unet:
        files[config.lcm.teacher_unet] = (root / config.lcm.teacher_unet).is_file()
    if config is not None and config.audio.encoder == "fused":
        from lsray.audio.phoneme import PHONEME_FILES

        files.update({f"{PHONEME_DIR}/{name}": (root / PHONEME_DIR / name).is_file() for name in PHONEME_FILES})
    files.update({f"{VAE_DIR}/": _vae_present(root / VAE_DIR), MASK_FILE: (root / MASK_FILE).is_file()})
    return files


def _readable(config_file: Path) -> BundleConfig | None:
    try:
        return BundleConfig.read(config_file)
    except LsrayError:  # missing or invalid: reported on its own, nothing more to expect
        return None


def _vae_present(vae_dir: Path) -> bool:
    return (vae_dir / "config.json").is_file() and any(vae_dir.glob("diffusion_pytorch_model*.safetensors"))


def load_unet(weights: Path, config: "UNetConfig", device: "torch.device") -> "LipSyncUNet":
    """Strictly load ``weights`` into a LipSyncUNet of ``config`` (every key, every shape)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lsray.models.unet import LipSyncUNet

    if not weights.is_file():
        raise MissingWeightError(weights, "UNet weights")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{weights}: unreadable safetensors file ({exc})") from exc
    model = LipSyncUNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{weights}: weights do not fit config.json's unet: {exc}") from exc
    return model.to(device).eval()


def load_vae(vae_dir: Path, device: "torch.device") -> "AutoencoderKL":
    from diffusers import AutoencoderKL

    if not (vae_dir / "config.json").is_file():
        raise MissingWeightError(vae_dir / "config.json", "VAE config")
    if not any(vae_dir.glob("diffusion_pytorch_model*.safetensors")):
        raise MissingWeightError(vae_dir / "diffusion_pytorch_model.safetensors", "VAE weights")
    vae = AutoencoderKL.from_pretrained(str(vae_dir), local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False)
    return vae.to(device).eval()


def load_bundle(
    location: str | Path,
    device: "torch.device | str | None" = None,
    *,
    load_vae: bool = True,
    lazy: bool = False,
    precision: "Precision | None" = None,
    compile_unet: bool = False,
) -> ModelBundle:
    """Open a bundle directory (or a URI a registered resolver understands) onto ``device``.

    The config is always read and validated now. Models load now too, unless ``lazy`` (then
    each loads on first use). ``precision`` overrides the bundle's (lsray.precision);
    ``compile_unet`` runs the UNets through ``torch.compile``. ``load_vae=False`` skips the VAE
    (audio-only or latent-space callers; ``require_vae()`` then raises); a bundle without
    ``vae/`` has ``vae=None`` either way.
    """
    path = resolve_bundle(location)
    if not path.is_dir():
        raise MissingWeightError(path, "model bundle directory")
    bundle = ModelBundle(path, BundleConfig.read(path / CONFIG_FILE), device, with_vae=load_vae, precision=precision,
                         compile_unet=compile_unet)
    if not lazy:
        for part in ("device", "dtype", "unet", "audio_encoder", "mask", "vae"):
            getattr(bundle, part)
    return bundle
