"""Local copies of a clip's inputs on the worker that needs them.

ffmpeg and mediapipe need real files. Local paths pass through; ``s3://`` objects are copied
once per worker with :func:`lsray.storage.local_copy` and kept in a small LRU, because the same
clip's video is read by prepare, shard and render (each possibly on another node).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict

from lsray.pipeline.records import ClipPlan, ClipSpec
from lsray.storage import S3Config, is_s3_uri, local_copy, parse_uri


class InputCache:
    def __init__(self, config: S3Config | None = None, max_files: int = 8) -> None:
        self.config = config
        self.max_files = max_files
        self._files: OrderedDict[str, tuple[str, contextlib.ExitStack]] = OrderedDict()

    def path(self, uri: str) -> str:
        if not is_s3_uri(uri):
            return parse_uri(uri).path
        if uri in self._files:
            self._files.move_to_end(uri)
            return self._files[uri][0]
        stack = contextlib.ExitStack()
        local = str(stack.enter_context(local_copy(uri, self.config)))
        self._files[uri] = (local, stack)
        while len(self._files) > self.max_files:
            _, (_, old) = self._files.popitem(last=False)
            old.close()
        return local

    def spec(self, spec: ClipSpec) -> ClipSpec:
        """``spec`` with its inputs as local paths (the output stays as it is)."""
        return dataclasses.replace(
            spec, video=self.path(spec.video), audio=self.path(spec.audio),
            face_sidecar=self.path(spec.face_sidecar) if spec.face_sidecar else None,
        )

    def plan(self, plan: ClipPlan) -> ClipPlan:
        """A copy of ``plan`` whose video and track are local on this worker."""
        return dataclasses.replace(plan, spec=self.spec(plan.spec), track=self.path(plan.track))

    def close(self) -> None:
        for _, stack in self._files.values():
            stack.close()
        self._files.clear()
