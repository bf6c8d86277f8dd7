"""The lip-sync DAG as plain stages (no Ray): prepare -> voice -> audio -> sample -> render.

Names are imported on first use, so light modules (``lsray.pipeline.options`` for the CLI) do not
pull in torch, mediapipe or ffmpeg.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SYNC_MODES": "lsray.pipeline.options",
    "DubOptions": "lsray.pipeline.options",
    "SyncMode": "lsray.pipeline.options",
    "ClipPlan": "lsray.pipeline.records",
    "ClipResult": "lsray.pipeline.records",
    "ClipShard": "lsray.pipeline.records",
    "ClipSpec": "lsray.pipeline.records",
    "RenderedSegment": "lsray.pipeline.records",
    "Timeline": "lsray.pipeline.timeline",
    "make_timeline": "lsray.pipeline.timeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lsray.pipeline' has no attribute {name!r}")
