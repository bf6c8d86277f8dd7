"""UNet levels of the LatentSync UNet3D, built from diffusers blocks with frames folded into batch.

Every tensor here is (b f) c h w. Spatial layers (convs, spatial attention) are per frame, as
upstream. Upstream's resnet GroupNorms, however, run on the 5-D (b, c, f, h, w) tensor, so their
statistics span all frames of a window: :func:`video_group_norm` reproduces that exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.upsampling import Upsample2D
from torch import nn

from lsray.models.config import UNetConfig
from lsray.models.temporal import MotionModule, TemporalTransformer


def video_group_norm(norm: nn.GroupNorm, x: torch.Tensor, frames: int) -> torch.Tensor:
    """Apply ``norm`` with statistics over all frames of each clip, as upstream's 5-D GroupNorm."""
    bf, c, h, w = x.shape
    x5 = x.view(bf // frames, frames, c, h, w).transpose(1, 2)  # b c f h w
    y = F.group_norm(x5, norm.num_groups, norm.weight, norm.bias, norm.eps)
    return y.transpose(1, 2).reshape(bf, c, h, w)


class VideoResnetBlock(ResnetBlock2D):
    """diffusers' ResnetBlock2D (same parameters and names) with cross-frame GroupNorm statistics."""

    def forward(self, x: torch.Tensor, temb: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        # x: (b f) c h w ; temb: (b f) t
        h = self.nonlinearity(video_group_norm(self.norm1, x, frames))
        h = self.conv1(h)
        h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.nonlinearity(video_group_norm(self.norm2, h, frames))
        h = self.conv2(self.dropout(h))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class UNetLevel(nn.Module):
    """One down, mid or up level: resnets, optional audio cross-attention and motion modules.

    Keeps upstream's attribute names (``resnets``, ``attentions``, ``motion_modules``,
    ``downsamplers`` / ``upsamplers``) so state-dict keys match LatentSync checkpoints.
    """

    def __init__(
        self,
        cfg: UNetConfig,
        in_channels: list[int],
        out_channels: int,
        cross_attention: bool,
        motion: bool,
        n_attn: int | None = None,
    ) -> None:
        super().__init__()
        temb = cfg.time_embed_dim
        self.resnets = nn.ModuleList(
            VideoResnetBlock(
                in_channels=c,
                out_channels=out_channels,
                temb_channels=temb,
                groups=cfg.norm_num_groups,
                eps=cfg.norm_eps,
                non_linearity=cfg.act_fn,
            )
            for c in in_channels
        )
        n_attn = len(in_channels) if n_attn is None else n_attn
        heads = cfg.attention_head_dim  # upstream passes "attention_head_dim" as the head count
        self.attentions = (
            nn.ModuleList(
                Transformer2DModel(
                    num_attention_heads=heads,
                    attention_head_dim=out_channels // heads,
                    in_channels=out_channels,
                    num_layers=1,
                    cross_attention_dim=cfg.cross_attention_dim if cfg.add_audio_layer else None,
                    norm_num_groups=cfg.norm_num_groups,
                )
                for _ in range(n_attn)
            )
            if cross_attention
            else None
        )
        mm = cfg.motion_module_kwargs
        self.motion_modules = (
            nn.ModuleList(
                MotionModule(
                    TemporalTransformer(
                        channels=out_channels,
                        heads=mm.num_attention_heads,
                        n_blocks=mm.num_transformer_block,
                        n_attn=len(mm.attention_block_types),
                        pos_len=cfg.temporal.max_len if mm.temporal_position_encoding else None,
                        norm_groups=mm.norm_num_groups,
                        band=cfg.temporal.band,
                        anchor_stride=cfg.temporal.anchor_stride,
                        anchor_pos_len=cfg.temporal.max_len,
                        dim_div=mm.temporal_attention_dim_div,
                        zero_init=mm.zero_initialize,
                    )
                )
                for _ in range(n_attn)
            )
            if motion
            else None
        )

    def _attend(self, i: int, x: torch.Tensor, audio: torch.Tensor | None, frames: int,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        if self.attentions is not None:
            x = self.attentions[i](x, encoder_hidden_states=audio, return_dict=False)[0]
        if self.motion_modules is not None:
            x = self.motion_modules[i](x, frames, positions)
        return x


class DownLevel(UNetLevel):
    def __init__(self, cfg: UNetConfig, cin: int, cout: int, cross_attention: bool, motion: bool, downsample: bool) -> None:
        super().__init__(cfg, [cin] + [cout] * (cfg.layers_per_block - 1), cout, cross_attention, motion)
        self.downsamplers = (
            nn.ModuleList([Downsample2D(cout, use_conv=True, out_channels=cout, padding=cfg.downsample_padding, name="op")])
            if downsample
            else None
        )

    def forward(self, x, temb, audio, frames, positions=None):  # (b f) c h w -> same, plus skips
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = self._attend(i, resnet(x, temb, frames), audio, frames, positions)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidLevel(UNetLevel):
    def __init__(self, cfg: UNetConfig, channels: int) -> None:
        super().__init__(cfg, [channels, channels], channels, True, cfg.motion_module_mid_block, n_attn=1)
        for r in self.resnets:
            r.output_scale_factor = cfg.mid_block_scale_factor

    def forward(self, x, temb, audio, frames, positions=None):
        x = self.resnets[0](x, temb, frames)
        return self.resnets[1](self._attend(0, x, audio, frames, positions), temb, frames)


class UpLevel(UNetLevel):
    def __init__(self, cfg: UNetConfig, in_channels: list[int], cout: int, cross_attention: bool, motion: bool, upsample: bool) -> None:
        super().__init__(cfg, in_channels, cout, cross_attention, motion)
        self.upsamplers = nn.ModuleList([Upsample2D(cout, use_conv=True, out_channels=cout)]) if upsample else None

    def forward(self, x, temb, audio, frames, skips: list[torch.Tensor], upsample_size: tuple[int, int] | None,
                positions=None):
        for i, resnet in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = self._attend(i, resnet(x, temb, frames), audio, frames, positions)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, output_size=upsample_size)
        return x
