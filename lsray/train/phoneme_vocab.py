"""The phoneme inventory of the phoneme-CTC Wav2Vec2: espeak IPA names -> label indices.

espeak-ng names a phoneme with stress, length and nasal/other diacritics (``"ˈaɪ"``, ``"iː"``,
``"ˈɑ̃"``); the viseme normaliser (:func:`lsray.synth.visemes.phoneme_key`) strips those, and what
remains is split into units of :data:`INVENTORY` by longest match, so rare combinations become
their parts (``"aɪə"`` -> ``aɪ ə``, syllabic ``"əl"`` -> ``ə l``, ``"ɔɹ"`` -> ``ɔ ɹ``) while the
diphthongs and affricates espeak emits often stay one unit. Rare variants are merged into their
nearest unit (:data:`_MERGE`: ``ɫ`` -> ``l``, ``ʀ`` -> ``ʁ``, ``ɝ`` -> ``ɚ``, ...). Pauses
(``_``, ``_:``, ``|``, ``||``) carry no label. Why a fixed inventory instead of the symbols seen
in the data: label indices must not move when the data change, or a trained model's outputs
would change meaning.

Note: NFD decomposes ``ç`` into ``c`` + a cedilla, so the normaliser turns ``ç`` into ``c``; here
the unit ``c`` stands for both (espeak's European voices emit ``ç``, hardly ever ``c``).

Index 0 is the CTC blank (Wav2Vec2ForCTC's ``pad_token_id``); :func:`phoneme_vocabulary` is the
one definition of the symbol list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from lsray.synth.visemes import phoneme_key

BLANK = "<blank>"

_VOWELS = "a ɑ ɐ æ ɛ e ə ɜ ɪ i ɨ y ø œ ɔ o ʊ u ʌ ɚ"
_DIPHTHONGS = "aɪ aʊ eɪ oʊ ɔɪ ɔø ɐʊ əʊ ɪə eə ʊə"
_CONSONANTS = "p b t d k ɡ ʔ m n ŋ ɲ f v θ ð s z ʃ ʒ c x ɣ h β ʝ j w l ʎ r ɾ ɹ ʁ tʃ dʒ ts dz pf"

#: The label units, in index order after the blank (never reorder: indices are model outputs).
INVENTORY: tuple[str, ...] = tuple(f"{_VOWELS} {_DIPHTHONGS} {_CONSONANTS}".split())

#: Rare symbols -> the unit they are merged into (applied per character before matching).
_MERGE = {
    "g": "ɡ", "ɫ": "l", "ɬ": "l", "ɭ": "l", "ʀ": "ʁ", "χ": "x", "ɒ": "ɔ", "ɘ": "ə", "ɵ": "ə", "ɝ": "ɚ",
    "ʏ": "y", "ɯ": "u", "ɤ": "o", "ɶ": "œ", "ɞ": "œ", "ʉ": "u", "ɻ": "ɹ", "ɳ": "n", "ɱ": "m", "ɴ": "ŋ",
    "ʍ": "w", "ɥ": "j", "ɦ": "h", "ɕ": "ʃ", "ʑ": "ʒ", "ʂ": "ʃ", "ʐ": "ʒ", "ɟ": "j", "ɰ": "ɣ", "ʋ": "v",
    "ɸ": "f", "q": "k", "ɢ": "ɡ", "ʈ": "t", "ɖ": "d", "ʙ": "b", "ɓ": "b", "ɮ": "l",
}
_PAUSES = {"", "_", "|", "||"}
_LONGEST = max(len(u) for u in INVENTORY)


@lru_cache(maxsize=1)
def phoneme_vocabulary() -> tuple[str, ...]:
    """Every label symbol by index: ``(BLANK, *INVENTORY)`` (what ``vocab.json`` records)."""
    return (BLANK, *INVENTORY)


@lru_cache(maxsize=1)
def _index() -> dict[str, int]:
    return {s: i for i, s in enumerate(phoneme_vocabulary())}


def phoneme_units(name: str) -> list[str]:
    """The inventory units of one espeak phoneme name (``[]`` for pauses and unknown symbols).

    ``"ˈaɪ"`` -> ``["aɪ"]``, ``"ˈɔːɹ"`` -> ``["ɔ", "ɹ"]``, ``"ɫ"`` -> ``["l"]``, ``"_:"`` -> ``[]``.
    """
    key = "".join(_MERGE.get(c, c) for c in phoneme_key(name))
    if key in _PAUSES:
        return []
    units, i = [], 0
    while i < len(key):
        for size in range(min(_LONGEST, len(key) - i), 0, -1):
            if key[i : i + size] in _index():
                units.append(key[i : i + size])
                i += size
                break
        else:  # a symbol outside the inventory (punctuation, a pause marker's remains): no label
            i += 1
    return units


def phoneme_labels(names: Iterable[str]) -> list[int]:
    """Label indices (1..) of a sequence of espeak phoneme names, pauses skipped."""
    index = _index()
    return [index[u] for name in names for u in phoneme_units(name)]


def label_symbols(labels: Sequence[int]) -> list[str]:
    """Indices back to symbols (for reading decodes)."""
    vocab = phoneme_vocabulary()
    return [vocab[int(i)] for i in labels]
