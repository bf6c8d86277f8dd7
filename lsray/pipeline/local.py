"""The in-process runner: the same stages as batch and serve, one clip at a time.

Shards are produced lazily and each flows through audio -> sample -> render before the next is
cut, so memory is bounded by one shard whatever the clip's length.
"""

from __future__ import annotations

import shutil
from typing import Callable

from lsray.errors import LsrayError
from lsray.pipeline.memory import release_free_memory
from lsray.pipeline.records import ClipResult, ClipSpec
from lsray.pipeline.render import assemble
from lsray.pipeline.stages import Stages

ProgressFn = Callable[[int, int], None]  # (frames done, frames total)


def run_clip(stages: Stages, spec: ClipSpec, progress: ProgressFn | None = None) -> ClipResult:
    """Dub one clip. Bad input becomes ``status="error"`` with a message naming the problem;
    nothing is left under the output name unless the clip succeeded."""
    plan = None
    try:
        plan = stages.voice(stages.prepare(spec))
        segments = []
        done = 0
        for shard in stages.shard(plan):
            segments.append(stages.render(stages.sample(stages.audio(shard))))
            done += shard.frames
            del shard
            release_free_memory()
            if progress:
                progress(done, plan.timeline.output_frames)
        return assemble(plan, segments)
    except LsrayError as exc:
        return ClipResult(clip_id=spec.clip_id, status="error", error=str(exc))
    finally:
        if plan is not None:
            shutil.rmtree(plan.work_dir, ignore_errors=True)
