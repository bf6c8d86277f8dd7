"""Per-stage resources of the batch job: configuration, not code.

One :class:`StageConfig` per actor pool (and for the shard / assemble tasks): CPUs, GPUs,
custom resources (e.g. ``{"accelerator": 1}`` to pin the UNet on labelled nodes), the pool's
size, the batch size and the fault-tolerance knobs. A YAML file (``--config stages.yaml``)
overrides the defaults, stage by stage::

    sample:
      num_gpus: 1
      max_size: 8
    render:
      num_cpus: 2

Why the defaults are what they are: prepare (face detection + mesh) and render (paste-back +
H.264) are CPU-bound and cheap to replicate; audio (Whisper) is light; sample (VAE + UNet) is the
expensive model, so on a GPU cluster it is the stage that asks for ``num_gpus`` and everything
else is sized to keep it fed; anchors (the per-clip anchor pass, the same models on ~1/8 of the
frames) asks for the same kind of device, in a smaller pool. Batches are one clip / one shard: a shard already holds whole
16-frame windows, and small batches keep memory per worker bounded by the shard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lsray.errors import LsrayError
from lsray.precision import Precision

POOL_STAGES = ("prepare", "anchors", "audio", "sample", "render")
TASK_STAGES = ("shard", "assemble")


class BatchConfigError(LsrayError):
    """A stages config file that cannot be read or does not validate."""


class StageConfig(BaseModel):
    """Resources and pool shape of one stage."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict, description="custom resources, e.g. {accelerator: 1}")
    min_size: int = Field(1, ge=1, description="actor pool: actors kept alive")
    max_size: int = Field(1, ge=1, description="actor pool: autoscaling ceiling")
    batch_size: int = Field(1, ge=1, description="rows (clips or shards) per call")
    #: torch intra-op threads of each actor (None: what Ray's num_cpus sets, via OMP_NUM_THREADS).
    #: More than num_cpus lets a CPU-only node's sample actor use the cores the lighter CPU stages
    #: leave idle between their calls (Ray does not reserve cores, it only counts them).
    threads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _sizes(self) -> "StageConfig":
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) < min_size ({self.min_size})")
        return self

    def remote_args(self) -> dict[str, Any]:
        """This stage's resource request: keyword arguments that both ``ray.remote`` options and
        Ray Data's map APIs take by name."""
        args: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        if self.resources:
            args["resources"] = dict(self.resources)
        return args


class BatchConfig(BaseModel):
    """The whole job's resource plan plus the local-cluster sizing used when no address is given."""

    model_config = ConfigDict(extra="forbid")

    prepare: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=1, max_size=2))
    #: The anchor pass (keyframes' audio + VAE + UNet, once per clip before the fan-out): ~1/7 of
    #: the UNet work of the sample stage, on the same kind of device.
    anchors: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=1))
    audio: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=0.5))
    sample: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=1))
    render: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=0.5, max_size=2))
    shard: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=0.5))
    assemble: StageConfig = Field(default_factory=lambda: StageConfig(num_cpus=0.25))
    #: Local cluster (no --address): CPUs (None: the machine's) and the object store cap.
    local_num_cpus: int | None = Field(None, ge=1)
    object_store_memory: int = Field(1 << 30, ge=78 * 1024 * 1024, description="bytes; capped for laptops")
    #: Clips handed to the assemble tasks at once (bounds the driver's in-flight work).
    max_inflight_assembles: int = Field(8, ge=1)
    #: Times one unit of work (a clip's prepare or assembly, a shard's audio, sample or render) is
    #: run when its worker dies under it (actor killed, node lost); then that clip is reported
    #: failed with the reason and the job goes on with the others. Dead actors are restarted.
    max_attempts: int = Field(3, ge=1)
    #: A job whose pipeline gives no row for this long stops waiting and writes its report (the
    #: clips not finished are reported with the reason): e.g. the only node with a stage's
    #: resources left and nothing replaces it. Generous: one row can be a long clip's last shard.
    stall_timeout_s: float = Field(1800.0, gt=0)
    encode_preset: str = "veryfast"
    #: Sample stage: windows (of the shards in one batch) denoised per UNet call; results do not
    #: depend on it (LipSyncUNet is batch-invariant), memory and accelerator use do.
    windows_per_call: int = Field(4, ge=1)
    #: Sample stage precision (lsray.precision; None: the bundle's, auto = fp16 on CUDA, fp32 on CPU).
    precision: Precision | None = None
    #: Sample stage: torch.compile the UNet (each sample actor compiles once, on its first window).
    compile_unet: bool = False
    #: Where segments wait between render and assemble ('' = <out>/_lsray_staging); each job
    #: stages in <staging>/<job id> and removes that folder when it ends.
    staging: str = ""

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)

    def threads(self) -> dict[str, int]:
        """Stage -> torch threads, for the pool stages that set them (what each actor applies)."""
        return {name: self.stage(name).threads for name in POOL_STAGES if self.stage(name).threads is not None}


def load_batch_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> BatchConfig:
    """Defaults < the YAML/JSON file at ``path`` < ``overrides`` (both merged stage by stage)."""
    import yaml
    from pydantic import ValidationError

    data: dict[str, Any] = {}
    file_data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BatchConfigError(f"cannot read stages config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise BatchConfigError(f"stages config {path} must be a mapping of stage -> settings")
        file_data = loaded
    data = BatchConfig().model_dump()  # a file's `sample: {num_gpus: 1}` keeps sample's other defaults
    for layer in (file_data, overrides or {}):
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict) and key in (*POOL_STAGES, *TASK_STAGES):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    try:
        return BatchConfig.model_validate(data)
    except ValidationError as exc:
        raise BatchConfigError(f"invalid stages config{' ' + str(path) if path else ''}: {exc}") from exc
