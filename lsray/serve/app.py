"""The application builder named by ``deployments/serve.yaml`` (``import_path: lsray.serve.app:build_app``).

``args`` are :class:`lsray.serve.settings.ServeSettings`; deployment sizes (replicas,
autoscaling, CPUs/GPUs, queue bounds) come from the config file's ``deployments`` section.

    Ingress (FastAPI) ──► Prepare ══shards══► Audio ──► Sample (batches of queued shards) ──► Render
        └──► JobManager (job records, runs jobs over the same handles)
"""

from __future__ import annotations

from typing import Any

from lsray.serve.settings import ServeSettings


def build_app(args: dict[str, Any]):
    from lsray.serve.api import Ingress
    from lsray.serve.jobs import JobManager
    from lsray.serve.stages import AudioDeployment, PrepareDeployment, RenderDeployment, SampleDeployment

    settings = ServeSettings(**args).model_dump()  # validate once, at deploy time
    prepare = PrepareDeployment.bind(settings)
    audio = AudioDeployment.bind(settings)
    sample = SampleDeployment.bind(settings)
    render = RenderDeployment.bind(settings)
    jobs = JobManager.bind(settings, prepare, audio, sample, render)
    return Ingress.bind(settings, prepare, audio, sample, render, jobs)
