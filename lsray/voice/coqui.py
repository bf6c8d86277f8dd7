"""Neural voice-conversion backends from Coqui TTS (``coqui-tts``, module ``TTS``).

Why these: OpenVoice, FreeVC and kNN-VC are zero-shot converters (any target voice from a few
seconds of reference), XTTS v2 re-speaks a transcript in the reference voice. All load from
LOCAL folders; nothing is downloaded. Coqui's FreeVC and kNN-VC call a module-level
``get_wavlm()`` that downloads WavLM-Large: it is swapped, only while the model is built, for a
loader of a local ``WavLM-Large.pt`` (or a random WavLM in tests).

``TTS`` is imported lazily, on the first Coqui backend built, so lsray works without the
``voice`` extra; without it, :class:`~lsray.voice.base.VoiceExtraMissingError` says how to
install it.

Model folders (``model_dir``):

- ``openvoice``: ``config.json`` (OpenVoice's own converter config) + ``checkpoint.pth``
  (v1 ``checkpoints/converter`` or v2 ``checkpoints_v2/converter``).
- ``freevc``: ``config.json`` (Coqui ``FreeVCConfig``, e.g. FreeVC24) + ``model.pth`` +
  ``WavLM-Large.pt`` (or ``wavlm_path=``); with ``use_spk`` also ``speaker_encoder.pt``.
- ``knnvc``: ``WavLM-Large.pt`` + ``vocoder/config.json`` + ``vocoder/model.pth`` (the
  prematched WavLM HiFi-GAN); ``config.json`` optional (Coqui ``KNNVCConfig``).
- ``xtts``: ``config.json`` + ``model.pth`` + ``vocab.json`` (XTTS v2); needs a transcript.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from lsray.errors import MissingWeightError
from lsray.voice.base import (
    VoiceConversionError,
    VoiceExtraMissingError,
    as_mono_float,
    fit_length,
    match_loudness,
    resample,
)

INSTALL_HINT = (
    "the Coqui voice backends need the 'voice' extra: pip install 'lsray[voice]' "
    "(see scripts/setup.sh for the torchaudio/torchcodec steps on torch 2.13)"
)

_PATCH_LOCK = threading.Lock()


def require_tts() -> Any:
    """Import ``TTS`` (coqui-tts) or raise :class:`VoiceExtraMissingError` with the install hint."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import TTS  # noqa: F401
    except ImportError as exc:
        raise VoiceExtraMissingError(f"{INSTALL_HINT} ({exc.__class__.__name__}: {str(exc).strip()[:200]})") from exc
    import TTS

    return TTS


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingWeightError(path, what)
    return path


def _torch_device(device: Any) -> Any:
    import torch

    from lsray.device import default_device

    return torch.device(device) if device is not None else default_device()


def _load_state(path: Path) -> dict:
    """A checkpoint's state dict, read with ``weights_only=True`` (never unpickle code)."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("model", state) if isinstance(state, dict) else state


def _load_into(model: Any, state: dict, path: Path, skip: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``model``; every model key outside ``skip`` must be present.

    ``skip`` covers submodules loaded from elsewhere (FreeVC's WavLM comes from its own file).
    """
    from lsray.errors import CheckpointMismatchError

    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(skip)]
    unexpected = [k for k in result.unexpected_keys if not k.startswith(skip)]
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"{path}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")


# ---- WavLM: local or random, never downloaded ----------------------------------------------

def wavlm_loader(path: str | Path | None = None, config: dict | None = None,
                 device: Any = "cpu") -> Callable[..., Any]:
    """A replacement for Coqui's downloading ``get_wavlm``.

    With ``path``: load that WavLM checkpoint (``{"cfg", "model"}``, e.g. ``WavLM-Large.pt``).
    Without: a randomly initialised WavLM of ``config`` (defaults to WavLM-Large's shape,
    width 1024, so FreeVC/kNN-VC's ``ssl_dim`` fits) - for tests and timing only.
    """

    def load(device_: Any = device) -> Any:
        from TTS.vc.layers.freevc.wavlm.wavlm import WavLM, WavLMConfig

        if path is not None:
            ckpt = _need(Path(path), "WavLM checkpoint")
            import torch

            state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
            model = WavLM(WavLMConfig(state["cfg"]))
            model.load_state_dict(state["model"])
        else:
            cfg = {"encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096, "encoder_layers": 24,
                   "encoder_attention_heads": 16, "extractor_mode": "layer_norm", "normalize": True}
            cfg.update(config or {})
            model = WavLM(WavLMConfig(cfg))
        return model.to(device_).eval()

    return load


@contextlib.contextmanager
def _local_wavlm(loader: Callable[..., Any]) -> Iterator[None]:
    """Swap Coqui's module-level ``get_wavlm`` for ``loader`` while a model is constructed."""
    from TTS.vc.models import freevc, knnvc

    with _PATCH_LOCK:
        saved = freevc.get_wavlm, knnvc.get_wavlm
        freevc.get_wavlm = knnvc.get_wavlm = loader
        try:
            yield
        finally:
            freevc.get_wavlm, knnvc.get_wavlm = saved


# ---- the converters --------------------------------------------------------------------------

class _CoquiConverter:
    """Shared plumbing: resample to the model's rates, run, resample back, fit the length."""

    name = "coqui"
    in_sr: int = 16000
    out_sr: int = 16000

    def __init__(self, device: Any = None) -> None:
        require_tts()
        self.device = _torch_device(device)

    def _run(self, src: Any, ref: Any) -> np.ndarray:  # tensors at in_sr -> waveform at out_sr
        raise NotImplementedError

    def convert(self, source: np.ndarray, sr: int, reference: np.ndarray, ref_sr: int) -> np.ndarray:
        """Convert ``source`` into ``reference``'s voice; float32 at ``sr``, ``len(source)`` samples."""
        import torch

        x = as_mono_float(source, "source")
        ref = as_mono_float(reference, "reference")
        src_t = torch.from_numpy(resample(x, sr, self.in_sr)).to(self.device)
        ref_t = torch.from_numpy(resample(ref, ref_sr, self.in_sr)).to(self.device)
        with torch.inference_mode():
            y = self._run(src_t, ref_t)
        y = np.nan_to_num(np.asarray(y, dtype=np.float32).reshape(-1))
        return match_loudness(fit_length(resample(y, self.out_sr, sr), len(x)), x)


class OpenVoiceConverter(_CoquiConverter):
    """OpenVoice v1/v2 tone-colour converter (MyShell), through Coqui's ``OpenVoice``."""

    name = "openvoice"

    def __init__(self, model_dir: str | Path | None = None, device: Any = None, *, random_weights: bool = False,
                 config: Any = None) -> None:
        super().__init__(device)
        import json

        from TTS.vc.configs.openvoice_config import OpenVoiceConfig
        from TTS.vc.models.openvoice import OpenVoice

        cfg = config if config is not None else OpenVoiceConfig()
        if not random_weights:
            if model_dir is None:
                raise VoiceConversionError("openvoice needs model_dir (a folder with config.json and checkpoint.pth)")
            root = Path(model_dir)
            original = json.loads(_need(root / "config.json", "OpenVoice config").read_text())
            ckpt = _need(root / "checkpoint.pth", "OpenVoice converter checkpoint")
            data = original["data"]
            cfg.audio.input_sample_rate = cfg.audio.output_sample_rate = data["sampling_rate"]
            cfg.audio.fft_size, cfg.audio.hop_length = data["filter_length"], data["hop_length"]
            cfg.audio.win_length = data["win_length"]
        self.model = OpenVoice(cfg)
        if not random_weights:
            _load_into(self.model, _load_state(ckpt), ckpt)
        self.model.to(self.device).eval()
        self.in_sr = int(cfg.audio.input_sample_rate)
        self.out_sr = int(cfg.audio.output_sample_rate)

    def _run(self, src: Any, ref: Any) -> np.ndarray:
        return self.model.voice_conversion(src, [ref])  # the target must be a list


class FreeVCConverter(_CoquiConverter):
    """FreeVC (e.g. FreeVC24): WavLM content + VITS decoder conditioned on the target speaker."""

    name = "freevc"

    def __init__(self, model_dir: str | Path | None = None, device: Any = None, *, random_weights: bool = False,
                 config: Any = None, wavlm_path: str | Path | None = None, wavlm_config: dict | None = None) -> None:
        super().__init__(device)
        from TTS.vc.configs.freevc_config import FreeVCConfig
        from TTS.vc.models import freevc

        root = Path(model_dir) if model_dir is not None else None
        if random_weights:
            cfg = config if config is not None else FreeVCConfig()
            loader = wavlm_loader(wavlm_path, wavlm_config, self.device)
        else:
            if root is None:
                raise VoiceConversionError("freevc needs model_dir (config.json, model.pth, WavLM-Large.pt)")
            from TTS.config import load_config

            cfg = config if config is not None else load_config(str(_need(root / "config.json", "FreeVC config")))
            ckpt = _need(root / "model.pth", "FreeVC checkpoint")
            loader = wavlm_loader(_need(Path(wavlm_path) if wavlm_path else root / "WavLM-Large.pt", "WavLM checkpoint"),
                                  device=self.device)
        if cfg.model_args.use_spk:  # the pretrained speaker encoder must be local too
            spk = _need((root or Path(".")) / "speaker_encoder.pt", "FreeVC speaker encoder")
            enc_cls = freevc.SpeakerEncoderEx

            def local_encoder(model: Any) -> None:
                model.enc_spk_ex = enc_cls(str(spk))
        else:
            local_encoder = None
        with _local_wavlm(loader), _patched(freevc.FreeVC, "load_pretrained_speaker_encoder", local_encoder):
            self.model = freevc.FreeVC(cfg)
        if not random_weights:
            state = {k: v for k, v in _load_state(ckpt).items() if not k.startswith("wavlm.")}
            _load_into(self.model, state, ckpt, skip=("wavlm.", "enc_spk_ex."))
        self.model.to(self.device).eval()
        self.in_sr = int(cfg.audio.input_sample_rate)
        self.out_sr = int(cfg.audio.output_sample_rate)

    def _run(self, src: Any, ref: Any) -> np.ndarray:
        return self.model.voice_conversion(src, [ref])


@contextlib.contextmanager
def _patched(cls: type, attr: str, func: Callable[..., Any] | None) -> Iterator[None]:
    """Temporarily replace a method (``None`` leaves it alone)."""
    if func is None:
        yield
        return
    with _PATCH_LOCK:
        saved = getattr(cls, attr)
        setattr(cls, attr, func)
        try:
            yield
        finally:
            setattr(cls, attr, saved)


class KnnVCConverter(_CoquiConverter):
    """kNN-VC: each source WavLM frame replaced by the mean of its k nearest reference frames,
    then a (prematched) WavLM HiFi-GAN vocoder; needs no training per speaker."""

    name = "knnvc"

    def __init__(self, model_dir: str | Path | None = None, device: Any = None, *, random_weights: bool = False,
                 config: Any = None, vocoder_config: Any = None, wavlm_path: str | Path | None = None,
                 wavlm_config: dict | None = None, topk: int | None = None) -> None:
        super().__init__(device)
        from TTS.vc.configs.knnvc_config import KNNVCConfig
        from TTS.vc.models.knnvc import KNNVC
        from TTS.vocoder.models import setup_model as setup_vocoder

        root = Path(model_dir) if model_dir is not None else None
        if random_weights:
            cfg = config if config is not None else KNNVCConfig()
            vcfg = vocoder_config
            if vcfg is None:
                raise VoiceConversionError("knnvc with random weights needs vocoder_config (a HifiganConfig)")
            loader = wavlm_loader(wavlm_path, wavlm_config, self.device)
        else:
            if root is None:
                raise VoiceConversionError("knnvc needs model_dir (WavLM-Large.pt, vocoder/config.json, vocoder/model.pth)")
            from TTS.config import load_config

            cfg = config if config is not None else (
                load_config(str(root / "config.json")) if (root / "config.json").is_file() else KNNVCConfig())
            loader = wavlm_loader(_need(Path(wavlm_path) if wavlm_path else root / "WavLM-Large.pt", "WavLM checkpoint"),
                                  device=self.device)
            vcfg = load_config(str(_need(root / "vocoder" / "config.json", "kNN-VC vocoder config")))
            vckpt = _need(root / "vocoder" / "model.pth", "kNN-VC vocoder checkpoint")
        with _local_wavlm(loader):
            self.model = KNNVC(cfg)
        self.vocoder = setup_vocoder(vcfg)
        if not random_weights:
            _load_into(self.vocoder, _load_state(vckpt), vckpt, skip=("model_d.",))  # discriminator: training only
        self.model.to(self.device).eval()
        self.vocoder.to(self.device).eval()
        self.topk = topk
        self.in_sr = int(cfg.audio.sample_rate)
        self.out_sr = int(vcfg.audio["sample_rate"])

    def _run(self, src: Any, ref: Any) -> np.ndarray:
        feats = self.model.voice_conversion(src[None], [ref[None]], topk=self.topk)  # (1, T, 1024)
        return self.vocoder.inference(feats.to(self.device)).cpu().numpy()


class XttsConverter:
    """XTTS v2 re-speaks a transcript in the reference voice (not a frame-level converter).

    Because it generates new speech, the output's timing is not the source's: it is stretched
    to the source's length (librosa phase vocoder), which keeps the clip aligned but not each
    syllable. Use it when a transcript exists and voice quality matters more than lip timing.
    """

    name = "xtts"

    def __init__(self, model_dir: str | Path | None, device: Any = None, *, language: str = "en") -> None:
        if model_dir is None:
            raise VoiceConversionError("xtts needs model_dir (config.json, model.pth, vocab.json of XTTS v2)")
        root = Path(model_dir)
        for name, what in (("config.json", "XTTS config"), ("model.pth", "XTTS checkpoint"),
                           ("vocab.json", "XTTS tokenizer vocabulary")):
            _need(root / name, what)
        require_tts()
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        self.device = _torch_device(device)
        self.config = XttsConfig()
        self.config.load_json(str(root / "config.json"))
        self.model = Xtts.init_from_config(self.config)
        self.model.load_checkpoint(self.config, checkpoint_dir=str(root), eval=True)
        self.model.to(self.device)
        self.language = language

    def convert(self, source: np.ndarray, sr: int, reference: np.ndarray, ref_sr: int, *,
                text: str | None = None) -> np.ndarray:
        """Speak ``text`` in the reference voice, fitted to ``len(source)`` samples at ``sr``."""
        if not text:
            raise VoiceConversionError("xtts re-speaks a transcript: pass text=... (the dubbed line)")
        import librosa
        import torch

        x = as_mono_float(source, "source")
        ref = resample(as_mono_float(reference, "reference"), ref_sr, 22050)
        import soundfile
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # XTTS conditions on reference files
            path = Path(tmp) / "reference.wav"
            soundfile.write(str(path), ref, 22050)
            latent, speaker = self.model.get_conditioning_latents(audio_path=[str(path)])
        out = self.model.inference(text, self.language, latent, speaker)
        y = resample(np.asarray(out["wav"], dtype=np.float32), 24000, sr)
        if len(y) > 0:
            y = librosa.effects.time_stretch(y, rate=len(y) / len(x))
        return match_loudness(fit_length(y, len(x)), x)
