"""What flows between the Ray Data stages: one row per clip or shard, ``{clip_id, kind, blob}``.

``blob`` is the pickled payload (the pipeline's own records: ClipPlan, Keyframes, ClipAnchors,
ClipShard, RenderedSegment), so Ray Data moves opaque bytes and never has to infer an Arrow schema from
NumPy arrays, Fractions or dataclasses. ``kind`` says what the payload is:

- ``row``      ClipTicket (a catalog row on its way to prepare)
- ``keyframes`` (ClipTicket, ClipPlan, Keyframes | None)   prepare -> anchors
- ``plan``     (ClipTicket, ClipPlan, ClipAnchors | None)  anchors -> shard
- ``shard``    (ClipTicket, ClipShard)         shard -> audio -> sample -> render
- ``segment``  (ClipTicket, ClipPlan, RenderedSegment)  render -> driver -> assemble
- ``report``   (ClipTicket, ClipReport)        a clip that ended early (skipped, error)

Every stage passes rows it does not handle through unchanged, so a clip that failed at
prepare still reaches the driver and its report row.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

KINDS = ("row", "keyframes", "plan", "shard", "segment", "report")


@dataclass
class ClipTicket:
    """A clip's identity through the job: catalog row, where its output goes, its fingerprint."""

    clip_id: str
    row_json: str  # CatalogRow.model_dump_json()
    line: int | None
    out_uri: str
    fingerprint: str | None = None
    started: float | None = None  # epoch seconds, set by prepare
    frames: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)


def encode(kind: str, clip_id: str, payload: Any) -> dict[str, Any]:
    return {"clip_id": clip_id, "kind": kind, "blob": pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)}


def decode(row: dict[str, Any]) -> tuple[str, str, Any]:
    return str(row["clip_id"]), str(row["kind"]), pickle.loads(row["blob"])


def rows_of(batch: dict[str, np.ndarray]) -> Iterable[dict[str, Any]]:
    """The rows of a numpy-format batch."""
    n = len(batch["kind"])
    for i in range(n):
        yield {"clip_id": batch["clip_id"][i], "kind": batch["kind"][i], "blob": batch["blob"][i]}


def to_batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A numpy-format batch from rows (bytes stay bytes in an object array)."""
    blob = np.empty(len(rows), dtype=object)
    blob[:] = [r["blob"] for r in rows]
    return {
        "clip_id": np.array([r["clip_id"] for r in rows], dtype=object),
        "kind": np.array([r["kind"] for r in rows], dtype=object),
        "blob": blob,
    }
