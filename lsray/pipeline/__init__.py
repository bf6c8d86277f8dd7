"""The lip-sync DAG as plain stages (no Ray): prepare -> voice -> audio -> sample -> render."""

from lsray.pipeline.options import SYNC_MODES, DubOptions, SyncMode
from lsray.pipeline.records import ClipPlan, ClipResult, ClipShard, ClipSpec, RenderedSegment
from lsray.pipeline.timeline import Timeline, make_timeline

__all__ = [
    "SYNC_MODES",
    "ClipPlan",
    "ClipResult",
    "ClipShard",
    "ClipSpec",
    "DubOptions",
    "RenderedSegment",
    "SyncMode",
    "Timeline",
    "make_timeline",
]
