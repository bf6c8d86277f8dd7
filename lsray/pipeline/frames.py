"""Source frames behind a range of output frames (shared by the shard and render stages).

Output frame ``i`` shows source frame ``timeline.source_index(i)``; in bounce, loop, remap and
silence modes that map is not the identity, so a shard decodes the source span it needs once
and keeps only the frames it shows (at most one per output frame: bounded by the shard).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from lsray.face import read_box
from lsray.media import iter_frames
from lsray.pipeline.records import ClipPlan


def source_frames(plan: ClipPlan, start: int, stop: int, region: tuple[int, int, int, int] | None = None,
                  pix_fmt: str = "rgb24") -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(output index, source index, rgb)`` for output frames ``[start, stop)``, in order;
    ``rgb`` is only ``region`` (x, y, width, height: even source pixels) of each frame if given,
    and I420 planes with ``pix_fmt="yuv420p"`` (:func:`lsray.media.iter_frames`)."""
    src = plan.timeline.source_index(np.arange(start, stop))
    if len(src) == 0:
        return
    lo, hi = int(src.min()), int(src.max())
    wanted = set(src.tolist())
    kept: dict[int, np.ndarray] = {}
    monotonic = bool(np.all(np.diff(src) >= 0))
    out = start
    for frame in iter_frames(plan.spec.video, start=lo, limit=hi - lo + 1, fps=plan.fps, crop=region, pix_fmt=pix_fmt):
        if frame.index in wanted:
            kept[frame.index] = frame.rgb
        if monotonic:  # stream out as soon as possible: one frame alive at a time
            while out < stop and int(src[out - start]) in kept:
                s = int(src[out - start])
                yield out, s, kept[s]
                out += 1
                if out == stop or int(src[out - start]) != s:
                    kept.pop(s)
    for i in range(out, stop):
        s = int(src[i - start])
        if s not in kept:  # the source ended early (its frame count was an estimate): hold the last
            s = max(kept) if kept else s
        if s in kept:
            yield i, s, kept[s]


def face_frames(plan: ClipPlan, start: int, stop: int, wanted: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    """:func:`source_frames` for alignment: only output frames ``i`` in ``[start, stop)`` with
    ``wanted[i - start]`` (each must have a face), decoded only inside the box their alignment
    reads (:func:`lsray.face.read_box`) and placed at its spot in a full-size frame whose other
    pixels are never read, so the crops warped from it are a full decode's, bit for bit.

    Cutting the box before the RGB conversion makes a 1080p shard's decode ~3x cheaper; a shard
    without a wanted frame decodes nothing. The yielded frame is reused: use it before the next."""
    wanted = np.asarray(wanted, bool)
    span = start + np.flatnonzero(wanted)
    if len(span) == 0:
        return
    src = plan.timeline.source_index(span)
    box = read_box(plan.points[src], plan.resolution, (plan.width, plan.height))
    lo, hi = int(span[0]), int(span[-1]) + 1  # decode only as far as the wanted frames reach
    canvas = None if box is None else np.zeros((plan.height, plan.width, 3), np.uint8)  # None: whole frames
    for i, j, rgb in source_frames(plan, lo, hi, box):
        if wanted[i - start]:
            if canvas is not None:
                x, y, w, h = box
                canvas[y:y + h, x:x + w] = rgb
                rgb = canvas
            yield i, j, rgb
