"""Speech from text through libespeak-ng (ctypes), with phoneme and word timings.

Why espeak: it ships inside the ``espeakng-loader`` wheel with data for ~100 languages, needs
no weights or network, and reports where every phoneme starts, so synthetic talking heads and
the voice benchmark get speech whose content and timing are known exactly.

libespeak-ng keeps global state (one voice, one callback, one set of parameters per process),
so every synthesis holds a module lock; the library is initialised once, lazily.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from lsray.errors import LsrayError

# espeak_AUDIO_OUTPUT / options / event types / parameters, from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0

SAMPLE_RATE = 22050  # what libespeak-ng renders; checked against espeak_Initialize's answer


class SpeechSynthesisError(LsrayError):
    """espeak could not be loaded, does not know the voice, or failed to synthesise."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme: when it starts in the audio (seconds) and its IPA name (e.g. ``"aɪ"``)."""

    start_s: float
    name: str


@dataclass(frozen=True)
class WordEvent:
    """One word: when it starts in the audio (seconds) and the text it came from."""

    start_s: float
    text: str


@dataclass
class Speech:
    """Synthesised speech: mono float32 samples in [-1, 1] at ``sr`` plus its timings."""

    samples: np.ndarray
    sr: int
    phonemes: list[PhonemeEvent] = field(default_factory=list)
    words: list[WordEvent] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sr


class _Espeak:
    """The loaded library, initialised once per process (espeak is a singleton itself)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise SpeechSynthesisError("espeakng-loader is not installed (pip install espeakng-loader)") from exc
        self.data_path = str(espeakng_loader.get_data_path())
        try:
            lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
        except OSError as exc:
            raise SpeechSynthesisError(f"cannot load libespeak-ng: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_GetParameter.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.espeak_GetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, self.data_path.encode(), options)
        if sr <= 0:
            raise SpeechSynthesisError(f"espeak_Initialize failed (data at {self.data_path})")
        self.lib = lib
        self.sr = int(sr)
        self.default_rate = lib.espeak_GetParameter(_PARAM_RATE, 0)
        self.default_pitch = lib.espeak_GetParameter(_PARAM_PITCH, 0)
        # Per-call collectors; the callback object must outlive every synthesis (kept here).
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, numsamples, events) -> int:  # called by espeak, under the lock
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type in (_EVENT_PHONEME, _EVENT_WORD):
                self._events.append((ev.type, ev.audio_position, ev.text_position, ev.length, bytes(ev.id.string)))
            i += 1
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, voice: str, rate: int | None, pitch: int | None) -> Speech:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechSynthesisError(f"espeak does not know the voice {voice!r} (see lsray.synth.list_voices())")
        # Voice selection resets nothing we rely on, so set both parameters explicitly each call.
        lib.espeak_SetParameter(_PARAM_RATE, int(rate if rate is not None else self.default_rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch if pitch is not None else self.default_pitch), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        err = lib.espeak_Synth(buf, len(data), 0, 1, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != _EE_OK:
            raise SpeechSynthesisError(f"espeak_Synth failed with code {err} for voice {voice!r}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        samples = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
        phonemes: list[PhonemeEvent] = []
        words: list[WordEvent] = []
        for kind, pos_ms, text_pos, length, raw in self._events:
            start = pos_ms / 1000.0
            if kind == _EVENT_PHONEME:
                name = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
                if name:
                    phonemes.append(PhonemeEvent(start, name))
            else:
                # text_position is 1-based, counted in characters of the input text.
                words.append(WordEvent(start, text[max(text_pos - 1, 0): max(text_pos - 1, 0) + length]))
        self._chunks, self._events = [], []
        return Speech(samples=samples, sr=self.sr, phonemes=phonemes, words=words)


_LOCK = threading.Lock()
_ENGINE: _Espeak | None = None


def _reset_lock_in_child() -> None:
    """A fork taken while another thread synthesises would inherit a held lock: renew it."""
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


def _engine() -> _Espeak:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


def synthesize(text: str, voice: str = "en-us", rate: int | None = None, pitch: int | None = None) -> Speech:
    """Speak ``text`` with an espeak voice; return samples at 22,050 Hz with phoneme/word timings.

    ``voice`` is an espeak voice name, optionally with a variant (``"en-us"``, ``"de+f3"``,
    ``"en+m3"``); ``rate`` is words per minute (espeak's default ~175), ``pitch`` 0-100 (default
    50). Thread-safe: espeak is one global engine, so calls are serialised by a lock.
    """
    if not text.strip():
        raise SpeechSynthesisError("nothing to say: text is empty")
    with _LOCK:
        return _engine().synthesize(text, voice, rate, pitch)


def list_voices() -> list[str]:
    """Language voice names in the bundled espeak data (e.g. ``"de"``, ``"en-us"``).

    Append a variant (``"+f3"``, ``"+m3"``) to any of them for another speaker sex or timbre.
    """
    from pathlib import Path

    with _LOCK:
        root = Path(_engine().data_path) / "lang"
    return sorted({p.name.lower() for p in root.rglob("*") if p.is_file()})
