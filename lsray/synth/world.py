"""The synthetic world as a dataset: identities x sentences x voices, with held-out splits.

Splits are disjoint on all three axes, so a model trained on ``"train"`` is tested on faces,
words and voices it has never seen:

- identities: cartoon seeds ``>= 1000`` are train and ``< 1000`` test (``seed % 1000`` picks the
  person), plus the astronaut photo, which is test only;
- sentences: each language's list is split by position (the last two of every language are test);
- voices: espeak variants are split (train ``+m1 +m3 +f1 +f3 +m5``, test ``+m2 +f2 +f4 +m4``) on
  top of the language voice.

:func:`sample_pairs` draws ``n`` (identity, sentence, voice) triples deterministically from a
seed; :meth:`Pair.speech` synthesises and :meth:`Pair.render` draws the oracle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lsray.synth.face import Identity
from lsray.synth.speech import Speech, synthesize

SPLITS = ("train", "test")

#: A few everyday sentences per language (espeak voice -> sentences); the last two are test.
SENTENCES: dict[str, list[str]] = {
    "en-us": [
        "Peter bought a map of five big islands.",
        "The weather is lovely in the morning.",
        "Please bring me the blue bottle from the table.",
        "We will meet by the old bridge at noon.",
        "My brother plays the violin very well.",
        "Could you open the window for a moment?",
        "Fresh bread smells wonderful in the evening.",
    ],
    "de": [
        "Guten Morgen, wie geht es dir heute?",
        "Das Wetter ist heute wirklich schön.",
        "Mein Bruder wohnt in einer großen Stadt.",
        "Bitte mach das Fenster auf.",
        "Wir treffen uns am Bahnhof um acht.",
    ],
    "fr": [
        "Bonjour, je voudrais un café, s'il vous plaît.",
        "Le petit chat dort sur la fenêtre.",
        "Nous partons en vacances au mois de mai.",
        "Il fait beau ce matin à Paris.",
        "Ma mère prépare une bonne soupe.",
    ],
    "es": [
        "Buenos días, mi amigo, ¿cómo estás?",
        "La playa está muy bonita en verano.",
        "Me gusta mucho la música de la fiesta.",
        "Mañana vamos a comer paella.",
        "El perro bebe agua en el parque.",
    ],
    "it": [
        "Buongiorno, vorrei un bicchiere d'acqua.",
        "Il mare è molto bello oggi.",
        "Mio padre lavora in una piccola bottega.",
        "Andiamo a mangiare la pizza stasera.",
        "La bambina porta un vestito blu.",
    ],
    "pt": [
        "Bom dia, o pão está muito bom.",
        "A minha mãe mora perto do mar.",
        "Vamos beber um café na praça.",
        "O menino brinca com a bola vermelha.",
        "Amanhã vamos ao mercado de peixe.",
    ],
}
LANGUAGES = tuple(SENTENCES)
VOICE_VARIANTS = {"train": ("m1", "m3", "f1", "f3", "m5"), "test": ("m2", "f2", "f4", "m4")}
_TEST_SENTENCES = 2
_TEST_IDENTITIES = 1000  # cartoon seeds below this are test identities


def sentences(split: str, language: str | None = None) -> list[tuple[str, str]]:
    """(language voice, sentence) pairs of ``split``, optionally for one language."""
    _check(split)
    out = []
    for lang, texts in SENTENCES.items():
        if language is not None and lang != language:
            continue
        out += [(lang, t) for t in (texts[:-_TEST_SENTENCES] if split == "train" else texts[-_TEST_SENTENCES:])]
    return out


def voices(split: str, language: str = "en-us") -> list[str]:
    """espeak voice names (``"de+f2"``) of ``split`` for one language."""
    _check(split)
    return [f"{language}+{v}" for v in VOICE_VARIANTS[split]]


def identity(split: str, index: int) -> Identity:
    """The ``index``-th cartoon identity of ``split`` (train seeds 1000+, test seeds 0-999)."""
    _check(split)
    if not 0 <= index < _TEST_IDENTITIES:
        raise ValueError(f"identity index must be in [0, {_TEST_IDENTITIES}), got {index}")
    return Identity.from_seed(index + (_TEST_IDENTITIES if split == "train" else 0))


def split_of(ident: Identity) -> str:
    """Which split an identity belongs to (the photo is test)."""
    return "test" if ident.kind == "photo" or ident.seed < _TEST_IDENTITIES else "train"


@dataclass(frozen=True)
class Pair:
    """One (identity, sentence, voice) example of the world."""

    identity: Identity
    language: str
    text: str
    voice: str
    split: str

    def speech(self, rate: int | None = None) -> Speech:
        return synthesize(self.text, self.voice, rate=rate)

    def render(self, speech: Speech | None = None, fps: float = 25.0, size: int | tuple[int, int] = 256) -> Iterator[np.ndarray]:
        from lsray.synth.render import render_talking_head

        return render_talking_head(self.identity, speech or self.speech(), fps, size)


def sample_pairs(seed: int, n: int, split: str = "train", *, languages: tuple[str, ...] | None = None,
                 photo_fraction: float = 0.0) -> list[Pair]:
    """``n`` deterministic (identity, sentence, voice) pairs of ``split``.

    ``languages`` restricts the languages (default all); ``photo_fraction`` of the test pairs use
    the astronaut photo identity instead of a cartoon (ignored for train: the photo is held out).
    """
    _check(split)
    rng = np.random.default_rng([104729, int(seed), SPLITS.index(split)])
    pool = [s for s in sentences(split) if languages is None or s[0] in languages]
    if not pool:
        raise ValueError(f"no sentences for languages {languages}")
    out = []
    for _ in range(n):
        lang, text = pool[int(rng.integers(len(pool)))]
        vs = voices(split, lang)
        voice = vs[int(rng.integers(len(vs)))]
        if split == "test" and rng.random() < photo_fraction:
            ident = Identity.photo(int(rng.integers(_TEST_IDENTITIES)))
        else:
            ident = identity(split, int(rng.integers(_TEST_IDENTITIES)))
        out.append(Pair(ident, lang, text, voice, split))
    return out


def _check(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
