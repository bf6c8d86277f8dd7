"""Phonemes -> mouth shapes ("viseme parameters") over time, with coarticulation.

A mouth is five numbers (:data:`VISEME_PARAMS`), each in [0, 1]:

- ``open``: jaw/lip opening (0 shut, 1 a wide /a/);
- ``spread``: lip corners pulled back (/i/, /e/);
- ``round``: lips rounded and protruded (/u/, /o/, /w/);
- ``closure``: lips pressed together (/p b m/): the drawn opening is ``open * (1 - closure)``;
- ``teeth``: upper teeth on the lower lip (/f v/).

:data:`PHONEME_VISEMES` covers the IPA names espeak-ng reports (vowels and consonants of the
common European languages, plus the usual extras: nasal vowels, clicks of breath); stress
marks, length marks and combining diacritics are stripped before looking up, and anything
unknown is :data:`NEUTRAL`.

Coarticulation (:func:`viseme_track`): every phoneme sets a target at its centre; targets are
moved ~40 ms earlier (the lips anticipate the sound), joined piecewise-linearly on a 200 Hz grid,
pulled to neutral over pauses, and low-passed with a Gaussian (sigma 30 ms; 15 ms for
``closure`` so a /p/ between vowels still shuts the lips). The result is sampled at any frame
times, so the same speech gives the same mouth at 25 or 30 fps.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

VISEME_PARAMS: tuple[str, ...] = ("open", "spread", "round", "closure", "teeth")
P = len(VISEME_PARAMS)
OPEN, SPREAD, ROUND, CLOSURE, TEETH = range(P)

NEUTRAL = np.array([0.05, 0.1, 0.0, 0.0, 0.0], np.float32)  # relaxed, lips nearly touching
SILENCE = np.array([0.0, 0.1, 0.0, 0.3, 0.0], np.float32)  # pauses: lips together


def _v(open_: float, spread: float = 0.1, round_: float = 0.0, closure: float = 0.0, teeth: float = 0.0) -> np.ndarray:
    return np.array([open_, spread, round_, closure, teeth], np.float32)


_GROUPS: list[tuple[str, np.ndarray]] = [
    # Open vowels
    ("a ä ɑ ɐ æ ɶ ɒ", _v(0.9, 0.3)),
    ("ɛ œ ɜ ɞ ʌ", _v(0.6, 0.4)),
    ("e ø ə ɘ ɵ ɚ ɝ", _v(0.45, 0.45)),
    ("i ɪ ɨ y ʏ ʉ ɯ j", _v(0.25, 0.8)),
    ("ɔ ɤ", _v(0.65, 0.0, 0.6)),
    ("o", _v(0.45, 0.0, 0.8)),
    ("u ʊ w ɥ ʍ", _v(0.2, 0.0, 1.0)),
    # Bilabials: closed lips
    ("p b m ɓ ʙ", _v(0.0, 0.1, 0.0, 1.0)),
    ("ɸ β", _v(0.1, 0.1, 0.3, 0.3)),
    # Labiodentals: teeth on the lower lip
    ("f v ɱ ʋ", _v(0.1, 0.3, 0.0, 0.0, 1.0)),
    # Dentals / alveolars / post-alveolars
    ("θ ð", _v(0.2, 0.3, 0.0, 0.0, 0.5)),
    ("t d n l ɾ ɫ ɬ ɮ r ɹ ɻ ʈ ɖ ɳ ɭ", _v(0.25, 0.35)),
    ("s z", _v(0.12, 0.5, 0.0, 0.0, 0.3)),
    ("ʃ ʒ ɕ ʑ ʂ ʐ", _v(0.2, 0.0, 0.7, 0.0, 0.3)),
    # Palatal / velar / uvular / glottal
    ("c ɟ ɲ ʎ ç ʝ", _v(0.25, 0.5)),
    ("k ɡ g ŋ x ɣ ɰ q ɢ ɴ χ ʁ ʀ", _v(0.3, 0.25)),
    ("h ɦ ʔ ħ ʕ", _v(0.35, 0.2)),
]

#: IPA phoneme name -> (open, spread, round, closure, teeth). Single symbols plus diphthongs
#: and affricates, which take the shape of where they start (affricates: of the fricative).
PHONEME_VISEMES: dict[str, np.ndarray] = {}
for _names, _vec in _GROUPS:
    for _n in _names.split():
        PHONEME_VISEMES[_n] = _vec
PHONEME_VISEMES.update({
    "aɪ": _v(0.8, 0.45), "aʊ": _v(0.8, 0.1, 0.4), "ɔɪ": _v(0.6, 0.2, 0.5), "eɪ": _v(0.45, 0.6),
    "oʊ": _v(0.45, 0.0, 0.85), "əʊ": _v(0.4, 0.1, 0.6), "ɪə": _v(0.3, 0.6), "eə": _v(0.5, 0.4),
    "ʊə": _v(0.3, 0.0, 0.8), "aɪə": _v(0.8, 0.45), "aʊə": _v(0.8, 0.1, 0.4),
    "tʃ": PHONEME_VISEMES["ʃ"], "dʒ": PHONEME_VISEMES["ʒ"], "ts": PHONEME_VISEMES["s"],
    "dz": PHONEME_VISEMES["z"], "pf": _v(0.05, 0.2, 0.0, 0.6, 0.6),
    "_": SILENCE, "_:": SILENCE, "||": SILENCE, "|": SILENCE,
})

_STRIP = set("ˈˌːˑ-'\",.%=#~^")


def phoneme_key(name: str) -> str:
    """``"ˈaɪ"`` -> ``"aɪ"``, ``"ɔ̃"`` -> ``"ɔ"``: stress, length and combining marks removed."""
    decomposed = unicodedata.normalize("NFD", name)
    return "".join(c for c in decomposed if c not in _STRIP and not unicodedata.combining(c)).strip()


def phoneme_viseme(name: str) -> np.ndarray:
    """The (P,) viseme target of one espeak IPA phoneme name; :data:`NEUTRAL` if unknown."""
    key = phoneme_key(name)
    for candidate in (name, key, key[:2], key[:1]):
        if candidate and candidate in PHONEME_VISEMES:
            return PHONEME_VISEMES[candidate]
    return NEUTRAL


def _gaussian_smooth(x: np.ndarray, sigma_steps: float) -> np.ndarray:
    """Gaussian low-pass along axis 0, edges held (no zero padding pulling the ends down)."""
    radius = max(1, int(np.ceil(4 * sigma_steps)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_steps) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def viseme_curve(
    phonemes: Sequence, duration_s: float, *, rate_hz: float = 200.0, lead_s: float = 0.04,
    max_consonant_s: float = 0.18, max_vowel_s: float = 0.35, sigma_s: float = 0.03, closure_sigma_s: float = 0.015,
) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed viseme trajectory on a regular grid: (times (T,), params (T, P)).

    ``phonemes`` are :class:`lsray.synth.PhonemeEvent` (``start_s``, ``name``), in order. A
    phoneme ends where the next starts, but lasts at most ``max_*_s``: longer gaps are pauses.
    """
    n = max(2, int(np.ceil(duration_s * rate_hz)) + 1)
    times = np.arange(n) / rate_hz
    knots_t: list[float] = [0.0]
    knots_v: list[np.ndarray] = [SILENCE]
    events = sorted(phonemes, key=lambda p: p.start_s)
    for i, ev in enumerate(events):
        target = phoneme_viseme(ev.name)
        nxt = events[i + 1].start_s if i + 1 < len(events) else duration_s
        is_vowel = target[CLOSURE] == 0 and target[TEETH] == 0 and target[OPEN] >= 0.2 and phoneme_key(ev.name)[:1] in _VOWELS
        limit = max_vowel_s if is_vowel else max_consonant_s
        end = min(nxt, ev.start_s + limit)
        centre = max(0.5 * (ev.start_s + end) - lead_s, knots_t[-1] + 1e-3)
        knots_t.append(centre)
        knots_v.append(target)
        if nxt - end > 0.05:  # a pause: back to rest shortly after the sound ends, until the next one
            rest_from = max(end - lead_s + 0.04, knots_t[-1] + 1e-3)
            rest_to = max(nxt - lead_s - 0.04, rest_from + 1e-3)
            knots_t += [rest_from, rest_to]
            knots_v += [SILENCE, SILENCE]
    knots_t.append(max(duration_s, knots_t[-1] + 1e-3))
    knots_v.append(SILENCE)
    kt = np.asarray(knots_t)
    kt = np.maximum.accumulate(kt + np.arange(len(kt)) * 1e-6)  # strictly increasing for interp
    kv = np.stack(knots_v)
    raw = np.stack([np.interp(times, kt, kv[:, j]) for j in range(P)], axis=1)
    smooth = _gaussian_smooth(raw, sigma_s * rate_hz)
    smooth[:, CLOSURE] = _gaussian_smooth(raw[:, [CLOSURE]], closure_sigma_s * rate_hz)[:, 0]
    return times, np.clip(smooth, 0.0, 1.0).astype(np.float32)


_VOWELS = set("aäɑɐæɶɒɛœɜɞʌeøəɘɵɚɝiɪɨyʏʉɯɔɤouʊ")


def viseme_track(phonemes: Sequence, duration_s: float, fps: float = 25.0, **kwargs) -> np.ndarray:
    """Viseme parameters at video frame times ``k / fps`` (k = 0 .. ceil(duration * fps) - 1): (frames, P).

    ``phonemes`` is ``Speech.phonemes``; ``kwargs`` go to :func:`viseme_curve` (lead, smoothing).
    """
    frames = max(1, int(np.ceil(duration_s * fps - 1e-9)))
    return sample_curve(*viseme_curve(phonemes, duration_s, **kwargs), np.arange(frames) / float(fps))


def sample_curve(times: np.ndarray, params: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of a (T, P) curve at arbitrary times (clamped at the ends)."""
    return np.stack([np.interp(at, times, params[:, j]) for j in range(params.shape[1])], axis=1).astype(np.float32)


def mouth_opening(params: np.ndarray) -> np.ndarray:
    """The visible lip gap of (..., P) parameters: ``open * (1 - closure)``."""
    return params[..., OPEN] * (1.0 - params[..., CLOSURE])
