"""Coqui TTS voice-conversion backends, built from their configs with random weights.

Nothing is downloaded: WavLM is a small random one (Coqui's downloading ``get_wavlm`` is
swapped out), and the checks are plumbing (rates, lengths, finiteness), not quality. These
tests skip only when ``TTS`` (the ``voice`` extra) cannot be imported; the missing-weight
tests that need no ``TTS`` always run.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from lsray.errors import MissingWeightError
from lsray.synth import synthesize
from lsray.voice import make_converter, resample


def _tts_importable() -> tuple[bool, str]:
    if importlib.util.find_spec("TTS") is None:
        return False, "coqui-tts (the 'voice' extra) is not installed"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import TTS  # noqa: F401
    except Exception as exc:  # e.g. torchaudio/torchcodec missing
        return False, f"TTS is installed but does not import: {exc}".strip()[:300]
    return True, ""


HAVE_TTS, WHY_NOT = _tts_importable()
needs_tts = pytest.mark.skipif(not HAVE_TTS, reason=WHY_NOT)
SMALL_WAVLM = {"encoder_layers": 2}  # width stays 1024 (FreeVC/kNN-VC ssl_dim), depth is cut for speed


@pytest.fixture(scope="module")
def clips():
    src = synthesize("The quick brown fox jumps over the lazy dog.", "en+m3")
    ref = synthesize("Peter Piper picked a peck of pickled peppers.", "en+f3")
    return src, ref


def _knnvc_configs():
    from TTS.vc.configs.knnvc_config import KNNVCConfig
    from TTS.vocoder.configs.hifigan_config import HifiganConfig

    cfg = KNNVCConfig()
    cfg.wavlm_layer = 2
    voc = HifiganConfig()
    voc.audio["sample_rate"] = 16000
    # The prematched WavLM HiFi-GAN's shape (1024-d input through pre_linear, x320 upsampling),
    # narrowed for speed; inference_padding 0 because its input is (batch, time, 1024).
    voc.generator_model_params = {
        "pre_linear": 1024, "in_channels": 128, "inference_padding": 0, "upsample_factors": [10, 8, 2, 2],
        "upsample_kernel_sizes": [20, 16, 4, 4], "upsample_initial_channel": 64, "resblock_type": "1",
        "resblock_dilation_sizes": [[1, 3, 5]] * 3, "resblock_kernel_sizes": [3, 7, 11],
    }
    return cfg, voc


def _build(kind: str):
    import torch

    torch.manual_seed(0)
    if kind == "openvoice":
        return make_converter("openvoice", random_weights=True, device="cpu")
    if kind == "freevc":
        return make_converter("freevc", random_weights=True, wavlm_config=SMALL_WAVLM, device="cpu")
    cfg, voc = _knnvc_configs()
    return make_converter("knnvc", random_weights=True, wavlm_config=SMALL_WAVLM, config=cfg,
                          vocoder_config=voc, device="cpu")


@needs_tts
@pytest.mark.parametrize("kind", ["openvoice", "freevc", "knnvc"])
def test_coqui_backend_converts_end_to_end(kind: str, clips) -> None:
    src, ref = clips
    conv = _build(kind)
    assert conv.name == kind
    for sr in (16000, 48000):
        x = resample(src.samples, src.sr, sr)
        y = conv.convert(x, sr, ref.samples, ref.sr)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.isfinite(y).all() and np.abs(y).max() > 0


@needs_tts
def test_coqui_does_not_download(monkeypatch, clips) -> None:
    """Any attempt to reach the network while building a backend fails the test."""
    import urllib.request

    def refuse(*a, **k):
        raise AssertionError(f"download attempted: {a[:1]}")

    monkeypatch.setattr(urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    _build("freevc")
    _build("knnvc")


@needs_tts
@pytest.mark.parametrize("kind, first_missing", [
    ("openvoice", "config.json"), ("freevc", "config.json"), ("knnvc", "WavLM-Large.pt")])
def test_missing_weight_file_names_it(kind: str, first_missing: str, tmp_path: Path) -> None:
    with pytest.raises(MissingWeightError) as info:
        make_converter(kind, model_dir=tmp_path)
    assert info.value.path == str(tmp_path / first_missing)


@needs_tts
def test_missing_checkpoint_beside_a_config_names_it(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"data": {"sampling_rate": 22050, "filter_length": 1024, '
                                          '"hop_length": 256, "win_length": 1024}}')
    with pytest.raises(MissingWeightError, match="checkpoint.pth"):
        make_converter("openvoice", model_dir=tmp_path)


def test_xtts_missing_model_names_the_file(tmp_path: Path) -> None:
    # Checked before TTS is imported, so this runs with or without the extra.
    with pytest.raises(MissingWeightError) as info:
        make_converter("xtts", model_dir=tmp_path)
    assert info.value.path == str(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingWeightError, match="model.pth"):
        make_converter("xtts", model_dir=tmp_path)


@pytest.mark.skipif(HAVE_TTS, reason="TTS is installed; the missing-extra error cannot happen")
def test_without_the_extra_a_clear_error() -> None:
    from lsray.errors import LsrayError
    from lsray.voice import VoiceExtraMissingError

    with pytest.raises(VoiceExtraMissingError, match="voice' extra") as info:
        make_converter("openvoice", random_weights=True)
    assert isinstance(info.value, LsrayError)


@needs_tts
def test_local_model_folders_load(tmp_path: Path, clips) -> None:
    """The real-weights path: folders laid out as documented in lsray.voice.coqui load and run."""
    import json

    import torch

    src, ref = clips
    # OpenVoice: its own config.json + checkpoint.pth {"model": state_dict}.
    ov = _build("openvoice").model
    (tmp_path / "ov").mkdir()
    (tmp_path / "ov" / "config.json").write_text(json.dumps(
        {"data": {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024}}))
    torch.save({"model": ov.state_dict()}, tmp_path / "ov" / "checkpoint.pth")
    conv = make_converter("openvoice", model_dir=tmp_path / "ov", device="cpu")
    assert conv.convert(src.samples, src.sr, ref.samples, ref.sr).shape == src.samples.shape
    # FreeVC: Coqui config.json + model.pth + WavLM-Large.pt {"cfg", "model"}.
    fv = _build("freevc").model
    (tmp_path / "fv").mkdir()
    fv.config.save_json(str(tmp_path / "fv" / "config.json"))
    torch.save({"model": {k: v for k, v in fv.state_dict().items() if not k.startswith("wavlm.")}},
               tmp_path / "fv" / "model.pth")
    torch.save({"cfg": dict(fv.wavlm.cfg.__dict__), "model": fv.wavlm.state_dict()}, tmp_path / "fv" / "WavLM-Large.pt")
    conv = make_converter("freevc", model_dir=tmp_path / "fv", device="cpu")
    y = conv.convert(src.samples, src.sr, ref.samples, ref.sr)
    assert y.shape == src.samples.shape and np.isfinite(y).all()
    # A checkpoint of the wrong architecture is a clear error, not a silent partial load.
    from lsray.errors import CheckpointMismatchError

    torch.save({"model": {"nope.weight": torch.zeros(1)}}, tmp_path / "ov" / "checkpoint.pth")
    with pytest.raises(CheckpointMismatchError, match="missing keys"):
        make_converter("openvoice", model_dir=tmp_path / "ov", device="cpu")
