"""Source frames behind a range of output frames (shared by the shard and render stages).

Output frame ``i`` shows source frame ``timeline.source_index(i)``; in bounce, loop, remap and
silence modes that map is not the identity, so a shard decodes the source span it needs once
and keeps only the frames it shows (at most one per output frame: bounded by the shard).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from lsray.media import iter_frames
from lsray.pipeline.records import ClipPlan


def source_frames(plan: ClipPlan, start: int, stop: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(output index, source index, rgb)`` for output frames ``[start, stop)``, in order."""
    src = plan.timeline.source_index(np.arange(start, stop))
    if len(src) == 0:
        return
    lo, hi = int(src.min()), int(src.max())
    wanted = set(src.tolist())
    kept: dict[int, np.ndarray] = {}
    monotonic = bool(np.all(np.diff(src) >= 0))
    out = start
    for frame in iter_frames(plan.spec.video, start=lo, limit=hi - lo + 1, fps=plan.fps):
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
