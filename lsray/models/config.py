"""The one configuration object of the lip-sync UNet.

Field names follow the ``model:`` section of LatentSync's ``configs/unet/stage2*.yaml`` so an
upstream config loads unchanged; the upgrade fields (audio width, hierarchical temporal attention,
LCM guidance embedding) sit beside them with defaults that reproduce upstream exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lsray.errors import BundleError, MissingWeightError


class MotionModuleConfig(BaseModel):
    """AnimateDiff-style temporal ("motion") module, as LatentSync's ``motion_module_kwargs``."""

    model_config = ConfigDict(extra="forbid")

    num_attention_heads: int = 8
    num_transformer_block: int = 1
    attention_block_types: tuple[Literal["Temporal_Self"], ...] = ("Temporal_Self", "Temporal_Self")
    temporal_position_encoding: bool = True
    temporal_position_encoding_max_len: int = 24
    temporal_attention_dim_div: int = 1
    zero_initialize: bool = True
    # Upstream builds the temporal GroupNorm with its own default of 32 groups, not the UNet's.
    norm_num_groups: int = 32


class TemporalUpgradeConfig(BaseModel):
    """Upgrade 3: hierarchical temporal attention (DESIGN.md #3).

    ``band=None`` is upstream's full-window attention; the upgrade uses ``band=2`` (+-2 frames).
    ``anchor_stride`` enables global anchors (every Nth frame) that every frame cross-attends to;
    its branch starts zero-initialised so loading a checkpoint does not change the function.
    ``max_len`` extends the positional encoding (the first 24 rows stay upstream's).
    """

    model_config = ConfigDict(extra="forbid")

    band: int | None = None
    anchor_stride: int | None = None
    max_len: int = 64

    @model_validator(mode="after")
    def _positive(self) -> "TemporalUpgradeConfig":
        if self.band is not None and self.band < 0:
            raise ValueError("temporal band must be >= 0 frames")
        if self.anchor_stride is not None and self.anchor_stride < 1:
            raise ValueError("anchor_stride must be >= 1")
        return self


class UNetConfig(BaseModel):
    """LatentSync UNet3D architecture (upstream field names) plus lsray's upgrade fields."""

    model_config = ConfigDict(extra="forbid")

    in_channels: int = 13
    out_channels: int = 4
    sample_size: int = 64
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    center_input_sample: bool = False
    down_block_types: tuple[str, ...] = (
        "CrossAttnDownBlock3D",
        "CrossAttnDownBlock3D",
        "CrossAttnDownBlock3D",
        "DownBlock3D",
    )
    mid_block_type: str = "UNetMidBlock3DCrossAttn"
    up_block_types: tuple[str, ...] = (
        "UpBlock3D",
        "CrossAttnUpBlock3D",
        "CrossAttnUpBlock3D",
        "CrossAttnUpBlock3D",
    )
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    act_fn: str = "silu"
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    cross_attention_dim: int = 384
    attention_head_dim: int = 8
    resnet_time_scale_shift: Literal["default"] = "default"
    add_audio_layer: bool = True
    use_motion_module: bool = True
    motion_module_resolutions: tuple[int, ...] = (1, 2, 4, 8)
    motion_module_mid_block: bool = False
    motion_module_decoder_only: bool = False
    motion_module_type: Literal["Vanilla"] = "Vanilla"
    motion_module_kwargs: MotionModuleConfig = Field(default_factory=MotionModuleConfig)
    # --- lsray upgrades (defaults = upstream behaviour) ---
    temporal: TemporalUpgradeConfig = Field(
        default_factory=lambda: TemporalUpgradeConfig(max_len=24)
    )
    time_cond_proj_dim: int | None = None  # upgrade 4: guidance-scale embedding of LCM students

    @model_validator(mode="after")
    def _consistent(self) -> "UNetConfig":
        n = len(self.block_out_channels)
        if len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError("block_out_channels, down_block_types and up_block_types must have one entry per level")
        if self.temporal.max_len < self.motion_module_kwargs.temporal_position_encoding_max_len:
            raise ValueError("temporal.max_len may extend the positional encoding, never shorten it")
        return self

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @classmethod
    def from_latentsync(cls, source: str | Path | dict[str, Any], **upgrades: Any) -> "UNetConfig":
        """Read an upstream unet config: a yaml path (its ``model:`` section), a JSON file or a dict.

        ``upgrades`` override fields (``cross_attention_dim=512``, ``temporal={...}``,
        ``time_cond_proj_dim=256``). Without a ``temporal`` override the positional encoding keeps
        upstream's length.
        """
        if isinstance(source, dict):
            data = dict(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise MissingWeightError(path, "unet config")
            text = path.read_text()
            try:
                data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
            except (yaml.YAMLError, json.JSONDecodeError) as exc:
                raise BundleError(f"{path}: not a valid unet config ({exc})") from exc
            if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
                data = data["model"]
        if not isinstance(data, dict):
            raise BundleError(f"unet config must be a mapping, got {type(data).__name__}")
        data.update(upgrades)
        base_len = (data.get("motion_module_kwargs") or {}).get("temporal_position_encoding_max_len", 24)
        temporal = data.get("temporal")
        if temporal is None:
            data["temporal"] = {"max_len": base_len}
        elif isinstance(temporal, dict):
            data["temporal"] = {"max_len": max(64, base_len), **temporal}
        return cls.model_validate(data)
