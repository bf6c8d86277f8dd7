"""The clip DAG over DeploymentHandles: prepare -> anchors -> (audio -> sample -> render per shard) -> assemble.

The steps of the one clip flow (``lsray.pipeline.flow``), in the in-process runner's order. Shards arrive as a
stream from the prepare deployment; each one's audio -> sample -> render chain is issued at once
(responses are passed handle to handle, so a shard's arrays go replica to replica, not through
the caller), with at most ``max_in_flight`` shards of one clip between stages (memory bound).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable

from lsray.pipeline.records import ClipResult, ClipSpec
from lsray.pipeline.flow import ClipFailed


@dataclass
class StageHandles:
    prepare: Any  # DeploymentHandle -> PrepareDeployment
    audio: Any
    sample: Any
    render: Any


async def dub_clip(handles: StageHandles, spec: ClipSpec, *, max_in_flight: int = 4,
                   progress: Callable[[int, int], None] | None = None) -> ClipResult:
    """Dub one clip; raises :class:`ClipFailed` for bad input, anything else is a bug."""
    gate = asyncio.Semaphore(max_in_flight)
    tasks: list[asyncio.Task] = []
    plan = None
    done = 0

    async def chain(shard):
        nonlocal done
        try:
            tokens = handles.audio.remote(shard)
            sampled = handles.sample.remote(tokens)
            segment = await handles.render.render.remote(sampled)
            done += shard.frames
            if progress:
                progress(done, shard.plan.timeline.output_frames)
            return segment
        finally:
            gate.release()

    try:
        plan, keyframes = await handles.prepare.plan.remote(spec)
        anchors = None
        if keyframes is not None:  # the anchor pass, once, before any shard is cut
            anchors = await handles.sample.anchors.remote(handles.audio.remote(keyframes))
        async for shard in handles.prepare.options(stream=True).shards.remote(plan, anchors):
            await gate.acquire()
            tasks.append(asyncio.create_task(chain(shard)))
        if not tasks:
            raise ClipFailed(f"{spec.video}: nothing to dub (no output frames)")
        segments = await asyncio.gather(*tasks)
        return await handles.render.assemble.remote(plan, list(segments))
    except BaseException:
        for task in tasks:
            task.cancel()
        if plan is not None:  # the staged voice track and segments of a clip that ends here
            handles.render.discard.remote(plan, [t.result() for t in tasks if t.done() and not t.cancelled()
                                                 and t.exception() is None])
        raise
