"""Catalog dubbing on Ray Data: the thin Ray layer over ``lsray.pipeline``'s stages.

``job.run_job`` is the one code path behind ``lsray dub``, ``lsray submit`` (through
``python -m lsray.batch.entrypoint``) and the benchmark. Importing this package does not import Ray.
"""

from lsray.batch.config import BatchConfig, StageConfig, load_batch_config
from lsray.batch.job import JobSpec, JobOutcome

__all__ = ["BatchConfig", "JobOutcome", "JobSpec", "StageConfig", "load_batch_config"]
