"""Temporal ("motion") modules: LatentSync's AnimateDiff layers plus hierarchical attention.

Upstream's motion module attends over all frames of a window at every spatial position. Upgrade 3
(DESIGN.md) adds two things as options of the same module, both identity at load time:
- a *local band*: each frame attends only to frames within +-``band`` (a boolean mask);
- *global anchors*: every frame cross-attends to the anchor frames (every ``anchor_stride``-th),
  through a new branch whose output projection starts at zero.
Parameter names match upstream (``temporal_transformer.transformer_blocks.N.attention_blocks.M``)
so checkpoints load key for key; the attention layers themselves are diffusers' ``Attention``.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """The transformer sinusoid table upstream stores as ``pos_encoder.pe``: (1, length, dim)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, length, dim)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionalEncoding(nn.Module):
    """Adds ``pe[:, :frames]`` to (n, frames, c) sequences; ``pe`` is a checkpointed buffer."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid_table(max_len, dim))

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        # positions: (f,) frame times (None: 0..f-1, upstream's); the table's rows are frame times
        last = x.shape[1] - 1 if positions is None else int(positions.max())
        if last >= self.pe.shape[1]:
            raise ValueError(
                f"frame position {last} exceeds the temporal positional encoding ({self.pe.shape[1]} "
                "frames); raise temporal.max_len"
            )
        pe = self.pe[:, : x.shape[1]] if positions is None else self.pe[:, positions]
        return x + pe.to(x.dtype)


def short_sequence_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) [masked]) v for many short sequences: (n, heads, f, d).

    Temporal attention runs over b*h*w sequences of a window's frames (16-64). For such short
    sequences the explicit product is several times faster than the fused SDPA kernels on CPU
    (they are tuned for long sequences) and needs only n*heads*f*f scores.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)  # n heads fq fk
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(scores.softmax(dim=-1), v)


class MaskedSDPAProcessor:
    """diffusers attention processor taking one (frames_q, frames_k) boolean mask for all rows.

    The stock processors expand a mask per batch row and head; temporal attention runs over
    b*h*w rows with the same mask, so broadcasting it keeps memory independent of resolution.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        n, fq, _ = hidden_states.shape
        q = attn.to_q(hidden_states)  # n fq (heads d)
        k = attn.to_k(context)
        v = attn.to_v(context)
        q, k, v = (t.view(n, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2) for t in (q, k, v))
        out = short_sequence_attention(q, k, v, attention_mask)  # n heads fq d
        out = out.transpose(1, 2).reshape(n, fq, -1)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)


class TemporalSelfAttention(Attention):
    """Upstream's ``VersatileAttention`` in "Temporal_Self" mode: attention across frames.

    A subclass of diffusers' ``Attention`` (as upstream subclasses its CrossAttention) so the
    parameter names are upstream's: ``attention_blocks.M.to_q`` and ``attention_blocks.M.pos_encoder.pe``.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, pos_len: int | None) -> None:
        super().__init__(query_dim=dim, heads=heads, dim_head=head_dim, bias=False, processor=MaskedSDPAProcessor())
        self.pos_encoder = PositionalEncoding(dim, pos_len) if pos_len else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,  # type: ignore[override]
                positions: torch.Tensor | None = None) -> torch.Tensor:
        # x: (b h w) f c — one temporal sequence per spatial position
        if self.pos_encoder is not None:
            x = self.pos_encoder(x, positions)
        return super().forward(x, attention_mask=mask)


class AnchorAttention(nn.Module):
    """Upgrade 3's global branch: every frame cross-attends to the anchor frames.

    Zero-initialised output projection: at load time the branch adds exactly zero.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, pos_len: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pos_encoder = PositionalEncoding(dim, pos_len)
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=head_dim, bias=False, processor=MaskedSDPAProcessor())
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, x: torch.Tensor, anchor_idx: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        # x: (b h w) f c ; anchors: (b h w) a c
        h = self.pos_encoder(self.norm(x), positions)
        return self.attn(h, encoder_hidden_states=h[:, anchor_idx])


def band_mask(positions: torch.Tensor, band: int | None) -> torch.Tensor | None:
    """(f, f) boolean mask, True where frames i and j are at most ``band`` frames apart in time
    (``positions``: (f,) frame times); None means full attention (no band, or it spans them all).
    In the anchor pass's keyframe sequences (8 frames apart) a band of 2 leaves each keyframe
    only itself: keyframes meet through the anchor branch."""
    if band is None or band >= int(positions.max() - positions.min()):
        return None
    return (positions[:, None] - positions[None, :]).abs() <= band


class TemporalTransformerBlock(nn.Module):
    """Upstream ``TemporalTransformerBlock``: [norm -> temporal attention] x M, then norm -> FF."""

    def __init__(self, dim: int, heads: int, head_dim: int, n_attn: int, pos_len: int | None, anchor_pos_len: int | None) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalSelfAttention(dim, heads, head_dim, pos_len) for _ in range(n_attn)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(n_attn))
        self.anchor = AnchorAttention(dim, heads, head_dim, anchor_pos_len) if anchor_pos_len else None
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, anchor_idx: torch.Tensor | None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        # x: (b h w) f c
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), mask, positions) + x
        if self.anchor is not None and anchor_idx is not None:
            x = self.anchor(x, anchor_idx, positions) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    """Upstream ``TemporalTransformer3DModel``: GroupNorm, linear in, blocks, linear out, residual."""

    def __init__(
        self,
        channels: int,
        heads: int,
        n_blocks: int,
        n_attn: int,
        pos_len: int | None,
        norm_groups: int,
        band: int | None,
        anchor_stride: int | None,
        anchor_pos_len: int,
        dim_div: int = 1,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        head_dim = channels // heads // dim_div
        inner = heads * head_dim
        self.band = band
        self.anchor_stride = anchor_stride
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(inner, heads, head_dim, n_attn, pos_len, anchor_pos_len if anchor_stride else None)
            for _ in range(n_blocks)
        )
        self.proj_out = nn.Linear(inner, channels)
        if zero_init:
            nn.init.zeros_(self.proj_out.weight)
            nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, frames: int, positions: torch.Tensor | None = None) -> torch.Tensor:
        # x: (b f) c h w ; positions: (f,) frame times, None = 0..f-1
        bf, c, h, w = x.shape
        b = bf // frames
        residual = x
        y = self.norm(x)
        y = y.view(b, frames, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, frames, c)  # (b h w) f c
        y = self.proj_in(y)
        times = torch.arange(frames, device=y.device) if positions is None else positions.to(y.device)
        mask = band_mask(times, self.band)
        # anchors: the frames at multiples of the stride (in a keyframe sequence: every frame)
        anchor_idx = torch.nonzero(times % self.anchor_stride == 0).flatten() if self.anchor_stride else None
        if positions is not None:
            positions = times - times.min()  # the encoding sees times relative to the sequence's start
        for block in self.transformer_blocks:
            y = block(y, mask, anchor_idx, positions)
        y = self.proj_out(y)
        y = y.view(b, h, w, frames, c).permute(0, 3, 4, 1, 2).reshape(bf, c, h, w)  # (b f) c h w
        return y + residual


class MotionModule(nn.Module):
    """Upstream ``VanillaTemporalModule``: a named wrapper so keys read ``motion_modules.N.temporal_transformer``."""

    def __init__(self, temporal_transformer: TemporalTransformer) -> None:
        super().__init__()
        self.temporal_transformer = temporal_transformer

    def forward(self, x: torch.Tensor, frames: int, positions: torch.Tensor | None = None) -> torch.Tensor:
        return self.temporal_transformer(x, frames, positions)
