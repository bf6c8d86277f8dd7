"""Speaker similarity: cosine of resemblyzer utterance embeddings.

Why resemblyzer: its GE2E speaker encoder ships inside the wheel (17 MB, no download), runs on
CPU in milliseconds per second of audio, and is the usual yardstick for "does this sound like
the same person". The encoder is loaded once per process and reused.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from lsray.voice.base import as_mono_float

_LOCK = threading.Lock()
_ENCODER = None


def _encoder():
    """The process-wide ``VoiceEncoder("cpu")`` (loading it costs ~0.1 s and 17 MB each time)."""
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder

                _ENCODER = VoiceEncoder("cpu", verbose=False)
        return _ENCODER


def speaker_embedding(audio: np.ndarray, sr: int) -> np.ndarray:
    """The 256-d, L2-normalised resemblyzer embedding of one utterance (any sample rate)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(as_mono_float(audio).astype(np.float32), source_sr=int(sr))
    if len(wav) < 1600:  # preprocess trims silence; less than 0.1 s of speech left
        wav = np.resize(wav, 1600) if len(wav) else np.zeros(1600, np.float32)
    enc = _encoder()
    with _LOCK:  # the torch module is shared; keep forward passes from interleaving
        emb = enc.embed_utterance(wav)
    return np.asarray(emb, dtype=np.float32)


def speaker_similarity(a: np.ndarray, sr_a: int, b: np.ndarray, sr_b: int) -> float:
    """Cosine similarity of the speakers in ``a`` and ``b`` (1 = same voice; ~0.6-0.75 = other)."""
    ea, eb = speaker_embedding(a, sr_a), speaker_embedding(b, sr_b)
    return float(np.dot(ea, eb) / (np.linalg.norm(ea) * np.linalg.norm(eb) + 1e-12))
