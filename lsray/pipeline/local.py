"""The in-process runner: the one clip flow's steps in a loop, one clip at a time.

Shards are cut lazily and each flows through audio -> sample -> render before the next is cut,
so memory is bounded by one shard whatever the clip's length.
"""

from __future__ import annotations

from typing import Callable

from lsray.errors import LsrayError
from lsray.pipeline.flow import ClipFlow, failed
from lsray.pipeline.memory import release_free_memory
from lsray.pipeline.records import ClipResult, ClipSpec

ProgressFn = Callable[[int, int], None]  # (frames done, frames total)


def run_clip(flow: ClipFlow, spec: ClipSpec, progress: ProgressFn | None = None, windows_per_call: int = 4) -> ClipResult:
    """Dub one clip. Bad input becomes ``status="error"`` with a message naming the problem;
    nothing is left under the output name unless the clip succeeded. ``windows_per_call``:
    windows of a shard denoised per UNet call (results do not depend on it)."""
    plan, segments = None, []
    try:
        plan = flow.prepare(spec)
        keyframes = flow.keyframes(plan)
        anchors = flow.anchors(flow.audio(keyframes)) if keyframes is not None else None
        for shard in flow.shard(plan, anchors):
            [shard] = flow.sample([flow.audio(shard)], max_windows=windows_per_call)
            segments.append(flow.render(shard))
            release_free_memory()
            if progress:
                progress(shard.stop, plan.timeline.output_frames)
        return flow.assemble(plan, segments)
    except LsrayError as exc:
        if plan is not None:
            flow.discard(plan, segments)
        return failed(spec.clip_id, exc)
