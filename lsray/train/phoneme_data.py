"""Phoneme-labelled utterances from the synthetic world's speech, cached on disk (``job: phoneme``).

espeak-ng reports every phoneme it speaks (:mod:`lsray.synth.speech`), so the world's speech comes
with exact phoneme transcripts: the training set a phoneme-CTC model needs, made here offline.
An utterance is a (language, text, voice, rate, pitch) :class:`UtteranceSpec`; spec ``i`` of a split
is drawn from its own generator (``seed``, split, ``i``), so the first ``n`` specs do not depend on
how many are asked for and a rerun makes the same set.

Layout of ``data.root`` (local path or ``s3://``)::

    ROOT/<split>-<digest>/chunk-00000.npz   CHUNK utterances each: pcm int16 at 16 kHz
                                             (concatenated) with offsets, labels int16
                                             (concatenated) with offsets, the specs (JSON)
    (digest: every setting the utterances depend on, the vocabulary included, so changed
    settings never read a stale cache)

A chunk is written atomically once synthesised, so an interrupted run resumes where it stopped.
Rows are ``{"wave": int16 (n,), "labels": int16 (k,)}``; :func:`collate_utterances` pads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lsray.train.config import PhonemeDataSettings
from lsray.train.phoneme_vocab import phoneme_labels, phoneme_vocabulary

SAMPLE_RATE = 16000  # what Wav2Vec2 (and the PhonemeEncoder downstream) reads
CHUNK = 64  # utterances per cache file
PCM_SCALE = 32767.0  # float [-1, 1] <-> int16 in the cache
_VERSION = 2  # bump when the synthesis below changes what a spec sounds like
_WORDS = (3, 9)  # words in a recombined text, inclusive


@dataclass(frozen=True)
class UtteranceSpec:
    """What one utterance says, and how."""

    language: str  # espeak language voice, a key of lsray.synth.world.SENTENCES
    text: str
    voice: str  # "de+f2"
    rate: int  # words per minute
    pitch: int  # 0-100


_VOWEL_LETTERS = "aeiouyàáâãäåèéêëìíîïòóôõöùúûüœæ"
#: a syllable: leading consonants, a vowel run, and one consonant that no vowel follows
_SYLLABLE = re.compile(rf"[^{_VOWEL_LETTERS}]*[{_VOWEL_LETTERS}]+(?:[^{_VOWEL_LETTERS}](?![{_VOWEL_LETTERS}]))?")
_SYLLABLES = (1, 3)  # per pseudo-word, inclusive
_PSEUDO_WORDS = (3, 8)  # per pseudo-word text, inclusive


def _words(text: str) -> list[str]:
    """Words of a sentence without punctuation (apostrophes kept: ``s'il``, ``d'acqua``)."""
    return [w for w in (re.sub(r"[^\w']", "", t) for t in text.split()) if w]


def _syllables(word: str) -> list[str]:
    """Spelled syllables of a word, roughly (``"Buongiorno"`` -> ``buon gior no``; enough to recombine)."""
    return _SYLLABLE.findall(word.lower())


def _train_text(data: PhonemeDataSettings, language: str, rng: np.random.Generator) -> str:
    """A train text of ``language``: a sentence, recombined words or pseudo-words (:class:`TextMix`)."""
    from lsray.synth import world

    texts = [t for _, t in world.sentences("train", language)]
    mix = np.array([data.texts.sentences, data.texts.words, data.texts.syllables])
    kind = rng.choice(3, p=mix / mix.sum())
    if kind == 0:
        return texts[int(rng.integers(len(texts)))]
    words = [w for t in texts for w in _words(t)]
    def draw(pool: list[str], bounds: tuple[int, int]) -> list[str]:
        return [pool[int(k)] for k in rng.integers(len(pool), size=int(rng.integers(bounds[0], bounds[1] + 1)))]

    if kind == 1:
        picked = draw(words, _WORDS)
    else:
        syllables = sorted({s for w in words for s in _syllables(w)})
        count = int(rng.integers(_PSEUDO_WORDS[0], _PSEUDO_WORDS[1] + 1))
        picked = ["".join(draw(syllables, _SYLLABLES)) for _ in range(count)]
    return " ".join(picked) + "."


def utterance_spec(data: PhonemeDataSettings, split: str, i: int) -> UtteranceSpec:
    """The ``i``-th utterance of ``split`` (see the module docstring)."""
    from lsray.synth import world

    rng = np.random.default_rng([7411, data.seed, world.SPLITS.index(split), i])
    languages = data.languages or world.LANGUAGES
    rate, pitch = int(rng.integers(data.rate[0], data.rate[1] + 1)), int(rng.integers(data.pitch[0], data.pitch[1] + 1))
    if split == "test":  # every (test sentence, test voice) in turn, then again at other rates
        pool = [s for s in world.sentences("test") if s[0] in languages]
        lang, text = pool[i % len(pool)]
        vs = world.voices("test", lang)
        return UtteranceSpec(lang, text, vs[(i // len(pool)) % len(vs)], rate, pitch)
    lang = languages[int(rng.integers(len(languages)))]
    vs = world.voices("train", lang)
    voice = vs[int(rng.integers(len(vs)))]
    return UtteranceSpec(lang, _train_text(data, lang, rng), voice, rate, pitch)


def synthesize_utterance(spec: UtteranceSpec) -> tuple[np.ndarray, np.ndarray]:
    """espeak speech of ``spec`` at 16 kHz as int16 PCM (n,), and its phoneme labels (k,) int16."""
    from lsray.synth import synthesize
    from lsray.voice.base import resample

    speech = synthesize(spec.text, spec.voice, rate=spec.rate, pitch=spec.pitch)
    wave = resample(speech.samples, speech.sr, SAMPLE_RATE)  # 22050 -> 16000 Hz
    pcm = np.clip(np.round(wave * PCM_SCALE), -PCM_SCALE, PCM_SCALE).astype(np.int16)
    return pcm, np.asarray(phoneme_labels(p.name for p in speech.phonemes), dtype=np.int16)


def split_size(data: PhonemeDataSettings, split: str) -> int:
    return data.train_utterances if split == "train" else data.test_utterances


def cache_dir(data: PhonemeDataSettings, split: str) -> str:
    """``ROOT/<split>-<digest>``: the digest covers every setting the utterances depend on."""
    from lsray.storage import join

    key = {"version": _VERSION, "split": split, "seed": data.seed, "languages": data.languages,
           "rate": data.rate, "pitch": data.pitch, "vocabulary": phoneme_vocabulary(), "chunk": CHUNK}
    if split == "train":
        key["texts"] = data.texts.model_dump()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return join(data.root, f"{split}-{digest}")


def ensure_cache(data: PhonemeDataSettings, split: str) -> list[str]:
    """Synthesise the chunks of ``split`` not on disk yet; returns every chunk's URI, in order."""
    from lsray.storage import exists, join, write_bytes

    n, folder, uris = split_size(data, split), cache_dir(data, split), []
    for c, lo in enumerate(range(0, n, CHUNK)):
        uri = join(folder, f"chunk-{c:05d}.npz")
        uris.append(uri)
        if exists(uri):
            continue
        specs = [utterance_spec(data, split, i) for i in range(lo, min(n, lo + CHUNK))]
        waves, labels = zip(*(synthesize_utterance(s) for s in specs))
        buf = io.BytesIO()
        np.savez(buf, pcm=np.concatenate(waves), pcm_offsets=np.cumsum([0, *map(len, waves)]),
                 labels=np.concatenate(labels), label_offsets=np.cumsum([0, *map(len, labels)]),
                 specs=np.array([json.dumps(asdict(s)) for s in specs]))
        write_bytes(uri, buf.getvalue())  # atomic: a rerun never reads half a chunk
    return uris


def load_chunk(uri: str) -> list[dict[str, np.ndarray]]:
    """The rows of one cache file."""
    from lsray.storage import read_bytes

    with np.load(io.BytesIO(read_bytes(uri))) as z:  # every z[key] reads the array anew: once each
        pcm, po, labels, lo = z["pcm"], z["pcm_offsets"], z["labels"], z["label_offsets"]
    # copies: a view would keep the whole chunk alive for as long as any one row is
    return [{"wave": pcm[po[i]:po[i + 1]].copy(), "labels": labels[lo[i]:lo[i + 1]].copy()} for i in range(len(po) - 1)]


def local_utterances(
    data: PhonemeDataSettings, split: str = "train", limit: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Rows of ``split`` in memory (synthesised first where missing); the first ``limit`` only if given."""
    rows: list[dict[str, np.ndarray]] = []
    for uri in ensure_cache(data, split):
        if limit is not None and len(rows) >= limit:
            break
        rows += load_chunk(uri)
    return rows[:limit]


def ray_utterances(data: PhonemeDataSettings):
    """A Ray Dataset of the train rows: the cache is made on the driver, chunks read by flat_map."""
    import ray

    uris = ensure_cache(data, "train")
    return ray.data.from_items([{"uri": u} for u in uris]).flat_map(lambda row: load_chunk(row["uri"]))


def collate_utterances(items: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Pad a list of rows into a batch: ``wave`` (B, N) float in [-1, 1] zero-padded, ``lengths``
    (B,) samples, ``labels`` (B, K) long padded with -100 (what transformers' CTC loss ignores)."""
    import torch

    lengths = [len(it["wave"]) for it in items]
    k = max(len(it["labels"]) for it in items)
    wave = torch.zeros(len(items), max(lengths))
    labels = torch.full((len(items), k), -100, dtype=torch.long)
    for b, it in enumerate(items):
        wave[b, : lengths[b]] = torch.from_numpy(np.asarray(it["wave"], dtype=np.float32) / PCM_SCALE)
        labels[b, : len(it["labels"])] = torch.from_numpy(np.asarray(it["labels"], dtype=np.int64))
    return {"wave": wave, "lengths": torch.tensor(lengths), "labels": labels}
