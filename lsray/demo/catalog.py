"""The demo catalog: held-out synthetic speakers and the photo, dubbed into another language.

Each clip is a dubbing job whose right answer is known. The *source* video is a test-split
identity saying a sentence in one language (its mouth follows that speech); the *dub* is a
different test sentence in another language and another test voice; the *oracle* is the same
identity, head motion and blinks with the mouth of the dub. The source is cut to the dub's
length (the source speech padded with silence or trimmed), so all three share a timeline and
a frame-exact comparison is possible. Nothing here was seen in training (world.py's splits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FPS = 25
FRAME_SIZE = 256


@dataclass
class DemoClip:
    clip_id: str
    video: str  # the source (the catalog's video)
    audio: str  # the dub (the catalog's audio)
    oracle: str  # what a perfect dub looks like
    source_language: str
    target_language: str
    frames: int
    identity: Any = field(repr=False)  # lsray.synth.face.Identity: exact face / mouth boxes for the metrics
    # (frames, P) the dub's viseme track, the oracle's mouth: which frames must close, bite, open
    visemes: np.ndarray | None = field(default=None, repr=False)
    voice_reference: str | None = None  # the on-screen speaker's voice (the catalog's voice_reference)

    def geometry(self) -> list:
        from lsray.synth.render import talking_head_geometry

        return talking_head_geometry(self.identity, self.frames, FPS, FRAME_SIZE)


def _fit(samples: np.ndarray, n: int) -> np.ndarray:
    """``samples`` trimmed or padded with silence to ``n``."""
    out = np.zeros(n, np.float32)
    out[: min(n, len(samples))] = samples[:n]
    return out


def _pairs(n: int, seed: int, photo: bool):
    """(identity, source (lang, text, voice), dub (lang, text, voice)) for ``n`` clips."""
    from lsray.synth import world
    from lsray.synth.face import Identity

    rng = np.random.default_rng([271828, seed])
    sentences = world.sentences("test")
    langs = sorted({lang for lang, _ in sentences})
    out = []
    for i in range(n):
        ident = Identity.photo(int(rng.integers(1000))) if photo and i == n - 1 else world.identity("test", int(rng.integers(1000)))
        src_lang, dub_lang = rng.choice(langs, 2, replace=False)
        picks = []
        for lang in (src_lang, dub_lang):
            texts = [t for la, t in sentences if la == lang]
            voices = world.voices("test", lang)
            picks.append((str(lang), texts[int(rng.integers(len(texts)))], voices[int(rng.integers(len(voices)))]))
        out.append((ident, picks[0], picks[1]))
    return out


def _voice_reference(path: Path, lang: str, text: str, voice: str, seed: int, i: int) -> Path:
    """5-10 s of the on-screen speaker's voice (the source voice saying other sentences of its
    language): the reference voice conversion re-voices the dub towards. The source clip itself is
    cut to the dub's length, often under the 2 s of speech a reference needs, as a short shot would
    be; a localisation team supplies such a reference per speaker (the catalog's
    ``voice_reference``). Drawn from its own generator so the clips themselves stay as they were."""
    import soundfile as sf

    from lsray.synth import world
    from lsray.synth.speech import synthesize

    rng = np.random.default_rng([271828, seed, i, 5])
    # any sentence of the language but the clip's own (the test split holds only a few per language;
    # the reference is only heard by the voice converter, never by the lip-sync model)
    others = [t for split in ("test", "train") for _, t in world.sentences(split, lang) if t != text]
    parts = []
    for k in rng.permutation(len(others))[:4]:
        speech = synthesize(others[int(k)], voice)
        parts += [speech.samples, np.zeros(int(0.3 * speech.sr), np.float32)]
    sf.write(str(path), np.concatenate(parts), speech.sr, subtype="PCM_16")
    return path


def build_demo_catalog(root: str | Path, clips: int = 5, seed: int = 0, photo: bool = True) -> tuple[Path, list[DemoClip]]:
    """Write the demo inputs under ``root`` and ``root/catalog.jsonl``; return (catalog, clips).
    The last clip is the astronaut photo when ``photo``."""
    from lsray.media import VideoWriter
    from lsray.media.atomic import atomic_output
    from lsray.synth.render import num_frames, render_frames
    from lsray.synth.speech import synthesize
    from lsray.synth.visemes import viseme_track

    import soundfile as sf

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    made: list[DemoClip] = []
    for i, (ident, (src_lang, src_text, src_voice), (dub_lang, dub_text, dub_voice)) in enumerate(_pairs(clips, seed, photo)):
        cid = f"{'photo' if ident.kind == 'photo' else 'face'}{i:02d}-{src_lang}-to-{dub_lang}"
        reference = _voice_reference(root / f"{cid}.voice.wav", src_lang, src_text, src_voice, seed, i)
        dub = synthesize(dub_text, dub_voice)
        src = synthesize(src_text, src_voice)
        frames = num_frames(dub.duration_s, FPS)
        samples = int(round(frames / FPS * dub.sr))
        dub_wav, src_wav = root / f"{cid}.dub.wav", root / f"{cid}.source.wav"
        sf.write(str(dub_wav), _fit(dub.samples, samples), dub.sr, subtype="PCM_16")
        sf.write(str(src_wav), _fit(src.samples, int(round(frames / FPS * src.sr))), src.sr, subtype="PCM_16")
        # mouths: the source speech (silent after it ends) and the dub, on the dub's timeline
        src_params = viseme_track(src.phonemes, max(src.duration_s, frames / FPS), FPS)[:frames]
        dub_params = viseme_track(dub.phonemes, frames / FPS, FPS)[:frames]
        paths = {}
        for kind, params, audio in (("source", src_params, src_wav), ("oracle", dub_params, dub_wav)):
            path = root / f"{cid}.{kind}.mp4"
            with VideoWriter(path, FPS, crf=14, preset="veryfast", audio=audio) as writer:
                for frame in render_frames(ident, params, FPS, FRAME_SIZE):
                    writer.write(frame)
            paths[kind] = path
        made.append(DemoClip(clip_id=cid, video=str(paths["source"]), audio=str(dub_wav), oracle=str(paths["oracle"]),
                             source_language=src_lang, target_language=dub_lang, frames=frames, identity=ident,
                             visemes=dub_params, voice_reference=str(reference)))
    catalog = root / "catalog.jsonl"
    with atomic_output(catalog) as tmp:
        tmp.write_text("".join(json.dumps({"clip_id": c.clip_id, "video": c.video, "audio": c.audio,
                                           "target_language": c.target_language,
                                           "voice_reference": c.voice_reference}) + "\n" for c in made))
    return catalog, made
