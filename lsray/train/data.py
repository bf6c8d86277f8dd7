"""Training shards: ``lsray prepare-training CATALOG --out URI`` and the sequences trainers read.

Layout of ``OUT`` (local path or ``s3://``)::

    OUT/index.parquet       one row per kept clip: clip_id, file, frames, fps, resolutions, audio dims
    OUT/clips/<id>.npz      crops_256 (F, 256, 256, 3) uint8 [, crops_512], whisper (F, 10 L, C)
                            float16 windows, phoneme (F, 10, 128) float16 (when a phoneme model is
                            given), mel (80, T) float32 SyncNet mel, start_frame
    OUT/mask.png            the inpainting mask the crops go with (1 = keep)
    OUT/summary.json        clips read / written / dropped (no usable face) / invalid rows

Each clip goes through the dubbing pipeline's own prepare, shard and audio steps
(:class:`ClipSteps`: face tracking, alignment, audio tokens), so training reads what inference
gives the UNet. A clip keeps its longest run of consecutive frames with a face; a clip whose run is shorter than
``min_frames`` has no usable face and is dropped and counted. Trainers read the index with Ray
Data and expand each clip into fixed-length sequences (:func:`clip_sequences`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from lsray.errors import LsrayError

INDEX_FILE = "index.parquet"
CLIPS_DIR = "clips"
MASK_FILE = "mask.png"
SUMMARY_FILE = "summary.json"


@dataclass
class PrepareSummary:
    clips_read: int = 0
    clips_written: int = 0
    dropped_no_face: int = 0
    invalid_rows: int = 0
    dropped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def longest_run(flags: np.ndarray) -> tuple[int, int]:
    """[start, stop) of the longest run of True in a boolean vector ((0, 0) if none)."""
    best, start = (0, 0), None
    for i, v in enumerate(list(flags) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def _resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if crops.shape[1] == size:
        return crops
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


class ClipSteps:
    """The dubbing pipeline's own prepare, shard and audio steps, run on a training clip (its own
    track, voice off): training sees exactly the crops and audio tokens inference gives the UNet.
    Built once per worker (the face tracker and the audio models)."""

    def __init__(self, whisper: Any, phoneme: Any = None, keyframe_interval: int = 5) -> None:
        from lsray.audio.fused import FusedAudioEncoder
        from lsray.pipeline.audio import AudioStage
        from lsray.pipeline.prepare import PrepareStage, ShardStage

        self.prepare = PrepareStage(keyframe_interval=keyframe_interval)
        self.shard = ShardStage()
        self.audio = AudioStage(whisper if phoneme is None else FusedAudioEncoder(whisper, phoneme))
        self.whisper_dim, self.layers = whisper.dim, whisper.num_layers
        self.fused = phoneme is not None

    def __call__(self, clip_id: str, video: str, audio: str, resolution: int) -> tuple[np.ndarray, ...]:
        """``(crops (F, S, S, 3) uint8, has_face (F,) bool, tokens (F, 10 L, D) float32)`` of the
        whole clip, one shard at a time through the steps (zeros where there is no face)."""
        from lsray.pipeline.options import ClipSettings, DubOptions
        from lsray.pipeline.records import ClipSpec

        spec = ClipSpec(clip_id, video, audio, output="", options=DubOptions(voice="off"))
        plan = self.prepare(spec, ClipSettings.tracking_only(resolution), staging="")
        crops, has_face, tokens = [], [], []
        for shard in self.shard(plan):
            shard = self.audio(shard)
            crops.append(shard.crops)
            has_face.append(shard.has_face)
            tokens.append(shard.tokens)
        if not crops:
            return np.zeros((0, resolution, resolution, 3), np.uint8), np.zeros(0, bool), np.zeros((0, 0, 0), np.float32)
        return np.concatenate(crops), np.concatenate(has_face), np.concatenate(tokens)

    def split_tokens(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """Fused tokens (F, 10 L, C + 128) -> Whisper windows (F, 10 L, C) and phoneme rows
        (F, 10, 128) (each row's vector is repeated over the L layers, see ``audio.fused.fuse``)."""
        out = {"whisper": tokens[..., : self.whisper_dim].astype(np.float16)}
        if self.fused:
            out["phoneme"] = tokens[:, :: self.layers, self.whisper_dim :].astype(np.float16)
        return out


def prepare_clip(
    clip_id: str, video: str, audio: str, *, steps: ClipSteps, resolutions: tuple[int, ...] = (256,),
    min_frames: int = 16,
) -> dict[str, np.ndarray] | None:
    """Arrays of one clip's training shard (its longest run of face frames), or None when that
    run is shorter than ``min_frames``."""
    from lsray.media import probe_video, read_audio_16k
    from lsray.models.syncnet import syncnet_mel

    crops, has_face, tokens = steps(clip_id, video, audio, max(resolutions))
    start, stop = longest_run(has_face)
    if stop - start < min_frames:
        return None
    crops = crops[start:stop]
    out: dict[str, np.ndarray] = {f"crops_{r}": _resize_crops(crops, r) for r in resolutions}
    out.update(steps.split_tokens(tokens[start:stop]))
    out["mel"] = syncnet_mel(read_audio_16k(audio))
    out["start_frame"] = np.array(start)
    out["fps"] = np.array(float(probe_video(video).fps))
    return out


def prepare_training(
    catalog: str, out: str, *, whisper: Any, phoneme: Any = None, mask: np.ndarray | None = None,
    resolutions: tuple[int, ...] = (256,), min_frames: int = 16, keyframe_interval: int = 5,
) -> PrepareSummary:
    """Turn a catalog of talking-head clips (``video`` + its own ``audio``) into training shards."""
    import cv2
    import pandas as pd

    from lsray.catalog import read_catalog
    from lsray.bundle.convert import default_mask
    from lsray.storage import atomic_writer, join, write_bytes, write_json

    table = read_catalog(catalog)
    summary = PrepareSummary(invalid_rows=len(table.invalid))
    steps = ClipSteps(whisper, phoneme, keyframe_interval)
    index: list[dict[str, Any]] = []
    for row in table.rows:
        summary.clips_read += 1
        arrays = prepare_clip(row.clip_id, row.video, row.audio, steps=steps, resolutions=resolutions,
                              min_frames=min_frames)
        if arrays is None:
            summary.dropped_no_face += 1
            summary.dropped.append(row.clip_id)
            continue
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        rel = f"{CLIPS_DIR}/{row.clip_id}.npz"
        write_bytes(join(out, rel), buf.getvalue())
        w = arrays["whisper"]
        index.append({
            "clip_id": row.clip_id, "file": rel, "frames": int(w.shape[0]), "fps": float(arrays["fps"]),
            "resolutions": list(resolutions), "audio_tokens": int(w.shape[1]), "audio_dim": int(w.shape[2]),
            "phoneme": "phoneme" in arrays,
        })
        summary.clips_written += 1
    mask_img = default_mask(256) if mask is None else (np.clip(mask, 0, 1) * 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", mask_img)
    write_bytes(join(out, MASK_FILE), png.tobytes())
    with atomic_writer(join(out, INDEX_FILE)) as tmp:
        pd.DataFrame(index, columns=["clip_id", "file", "frames", "fps", "resolutions", "audio_tokens",
                                     "audio_dim", "phoneme"]).to_parquet(tmp, index=False)
    write_json(join(out, SUMMARY_FILE), summary.as_dict())
    return summary


# ---------------------------------------------------------------------------------------------
# reading: clip -> fixed-length sequences
# ---------------------------------------------------------------------------------------------
def load_clip(root: str, rel: str) -> dict[str, np.ndarray]:
    from lsray.storage import join, read_bytes

    with np.load(io.BytesIO(read_bytes(join(root, rel)))) as z:
        return {k: z[k] for k in z.files}


def load_mask(root: str, size: int) -> np.ndarray:
    """(size, size) float32 mask of a shard folder, 1 = keep."""
    import cv2

    from lsray.storage import join, read_bytes

    img = cv2.imdecode(np.frombuffer(read_bytes(join(root, MASK_FILE)), np.uint8), cv2.IMREAD_GRAYSCALE)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LANCZOS4)
    return np.clip(img.astype(np.float32) / 255.0, 0, 1)


def audio_tokens(clip: dict[str, np.ndarray], fused: bool, token_dim: int | None = None) -> np.ndarray:
    """(F, 10 L, D) float32: Whisper windows, with the phoneme rows repeated per layer when fused
    (D = C + 128), zero-padded to the UNet's ``token_dim`` as the pipeline's AudioStage pads them
    (a Whisper-only bundle whose UNet is wider), so training sees what inference will give."""
    tokens = clip["whisper"].astype(np.float32)  # (F, 10 L, C)
    if fused:
        if "phoneme" not in clip:
            raise ValueError("the UNet takes fused audio but the shards have no phoneme features")
        layers = tokens.shape[1] // clip["phoneme"].shape[1]
        p = np.repeat(clip["phoneme"].astype(np.float32), layers, axis=1)  # (F, 10 L, 128), row-major as fuse()
        tokens = np.concatenate([tokens, p], axis=-1)
    width = tokens.shape[-1]
    if token_dim is None or width == token_dim:
        return tokens
    if width > token_dim:
        raise ValueError(f"audio tokens are {width}-d but the UNet attends to {token_dim}-d audio")
    return np.pad(tokens, ((0, 0), (0, 0), (0, token_dim - width)))


def require_phoneme_features(root: str) -> None:
    """Fail before training when a fused-audio job's shards lack phoneme features (they are
    written only when ``prepare-training`` is given ``--phoneme-model``)."""
    rows = read_index(root)
    missing = [r["clip_id"] for r in rows if not r.get("phoneme")]
    if missing:
        from lsray.storage import join

        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise LsrayError(f"{join(root, INDEX_FILE)}: the UNet takes fused audio but {len(missing)} of {len(rows)} "
                         f"clips have no phoneme features ({shown}); prepare the shards with --phoneme-model")


def clip_sequences(
    clip: dict[str, np.ndarray], *, seq_len: int, stride: int, image_size: int, fused: bool = False,
    token_dim: int | None = None, sync_frames: int | None = None, negative_shift: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Fixed-length training sequences of one clip.

    Each: ``frames`` (F, S, S, 3) uint8, ``ref`` (F, S, S, 3) reference frames (the same clip half a
    clip away, as LatentSync's reference comes from elsewhere in the video), ``audio`` (F, N, D)
    float32, ``mel`` (80, M) the SyncNet window of the first ``sync_frames`` frames, and when
    ``negative_shift`` is set ``mel_neg``: the window of a start at least that many frames away.
    """
    from lsray.models.syncnet import mel_window

    res = [int(k.split("_")[1]) for k in clip if k.startswith("crops_")]
    src = min((r for r in res if r >= image_size), default=max(res))
    crops = _resize_crops(clip[f"crops_{src}"], image_size)
    audio = audio_tokens(clip, fused, token_dim)
    n = len(crops)
    fps = float(clip.get("fps", 25.0))
    first = int(clip.get("start_frame", 0))
    sync_frames = sync_frames or seq_len
    for s in range(0, n - seq_len + 1, stride):
        r = (s + n // 2) % max(n - seq_len + 1, 1)
        item = {
            "frames": crops[s : s + seq_len], "ref": crops[r : r + seq_len],
            "audio": audio[s : s + seq_len],
            "mel": mel_window(clip["mel"], first + s, sync_frames, fps),
        }
        if negative_shift is not None:
            choices = [j for j in range(0, n - sync_frames + 1) if abs(j - s) >= negative_shift]
            if not choices:
                continue
            j = choices[(s * 7919) % len(choices)]
            item["mel_neg"] = mel_window(clip["mel"], first + j, sync_frames, fps)
        yield item


def read_index(root: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from lsray.storage import join, read_bytes

    return pq.read_table(io.BytesIO(read_bytes(join(root, INDEX_FILE)))).to_pylist()


def local_sequences(root: str, **kwargs: Any) -> list[dict[str, np.ndarray]]:
    """Every sequence of a shard folder, in memory (tests, single-process runs)."""
    out: list[dict[str, np.ndarray]] = []
    for row in read_index(root):
        out.extend(clip_sequences(load_clip(root, row["file"]), **kwargs))
    return out


def ray_sequences(root: str, **kwargs: Any):
    """A Ray Dataset of sequences: the index read with Ray Data, each clip expanded by flat_map."""
    import ray

    from lsray.storage import join

    def expand(row: dict[str, Any]) -> list[dict[str, Any]]:
        return list(clip_sequences(load_clip(root, row["file"]), **kwargs))

    rows = read_index(root)  # the index is small; the heavy clip files are read by the workers
    if not rows:
        raise ValueError(f"{join(root, INDEX_FILE)} lists no clips")
    return ray.data.from_items(rows).flat_map(expand)


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, "Any"]:
    """Stack sequence dicts into torch batches: images -> float (B, F, 3, S, S) in [-1, 1]."""
    import torch

    out: dict[str, Any] = {}
    for key in items[0]:
        arr = np.stack([np.asarray(it[key]) for it in items])
        t = torch.from_numpy(arr)
        if key in ("frames", "ref"):
            t = t.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0  # b f 3 s s
        else:
            t = t.float()
        out[key] = t
    return out
