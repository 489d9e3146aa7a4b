"""Causal video Transformer over patch tokens: the attention baseline of ConvS5, with a KV-cache step.

The Transformer baseline of Smith et al., "Convolutional State Space Models for
Long-Range Spatiotemporal Modeling" (NeurIPS 2023), which like TECO (Yan et al., ICML
2023) attends over the tokens of a compressed frame latent: each frame is encoded
(`video_base.FrameEncoder`), its latent map cut into p x p patches, one token each
(Dosovitskiy et al., ICLR 2021), and a pre-norm Transformer (Vaswani et al., NeurIPS
2017) runs over all tokens of the video with a *block-causal* mask: a token sees every
token of its own frame and of earlier frames, none of later ones. Tokens get a learned
spatial embedding plus a sinusoidal embedding of the frame index counted from the last
reset, so sequences of any length run and a reset makes a clip look as if it ran alone.

`step` feeds one frame: its tokens attend to the cached keys/values of every earlier
frame (the KV cache) and to each other, which equals the parallel form. The cache grows
by one frame of tokens per step: memory per generated frame is O(t), unlike ConvS5's
constant state, and each step costs O(t) attention.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.models.video_base import VideoPredictor
from zoo.registry import register_model


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Vaswani et al.'s sinusoidal embedding of integer positions (...) -> (..., dim)."""
    freqs = torch.exp(torch.arange(0, dim, 2, device=positions.device) * (-math.log(10000.0) / dim))
    angles = positions.to(torch.float64).unsqueeze(-1) * freqs
    return torch.stack((angles.sin(), angles.cos()), -1).flatten(-2)[..., :dim]


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, L, dim); cache (keys, values) (B, heads, S, dh) of earlier tokens; allowed (B, 1, L, S + L)."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        k, v = torch.cat((cache[0], k), 2), torch.cat((cache[1], v), 2)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.proj(out.transpose(1, 2).flatten(2)), (k, v)


class TransformerLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, dropout)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x, allowed, cache):
        out, cache = self.attn(self.norm1(x), allowed, cache)
        x = x + out
        return x + self.mlp(self.norm2(x)), cache


class VideoTransformerPredictor(VideoPredictor):
    """Frames -> next-frame predictions (see `VideoPredictor`); temporal model: block-causal attention over patches.

    State (for `step`/`prefill`): {"cache": [(keys, values)] per layer, "frames": absolute frame
    index of each cached frame (S_frames,), "start": (B,) frame where each sequence's clip started,
    "seen": frames seen so far}.
    """

    recurrent = True  # step() with a KV cache equals forward
    causal = True

    def __init__(
        self,
        image_size: int = 64,
        in_channels: int = 1,
        channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 64,
        patch_size: int = 2,
        dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        output: str = "logits",
        num_classes: int | None = None,
        global_pool: str = "",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.init_video(image_size, in_channels, channels, latent_dim, num_classes, global_pool, drop_rate, output)
        if self.latent_size % patch_size or dim % num_heads:
            raise ZooError(
                f"VideoTransformerPredictor: the {self.latent_size}x{self.latent_size} latent must split into "
                f"patch_size={patch_size} patches and dim={dim} into num_heads={num_heads}; change one of them"
            )
        self.patch_size, self.dim = patch_size, dim
        self.grid = self.latent_size // patch_size
        self.tokens_per_frame = self.grid**2
        self.patchify = nn.Conv2d(latent_dim, dim, patch_size, stride=patch_size)
        self.spatial_pos = nn.Parameter(torch.randn(self.tokens_per_frame, dim) * 0.02)
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.unpatchify = nn.Linear(dim, latent_dim * patch_size**2)

    def _tokens_to_latent(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, N, dim) -> (B, T, D, h, w): each token back to its p x p patch of the latent map."""
        b, t, p, g = tokens.shape[0], tokens.shape[1], self.patch_size, self.grid
        x = self.unpatchify(self.norm(tokens)).view(b, t, g, g, self.latent_dim, p, p)
        return x.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, self.latent_dim, g * p, g * p)

    def temporal(
        self, latent: torch.Tensor, reset: torch.Tensor | None = None, state: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        batch, length = latent.shape[:2]
        state = state or self.init_temporal_state(batch, latent.device, latent.dtype)
        frames = state["seen"] + torch.arange(length, device=latent.device)  # absolute frame index
        # Each new frame's clip start: the last reset at or before it, else the running one.
        if reset is None:
            starts = state["start"].view(-1, 1).expand(batch, length)
        else:
            marked = torch.where(reset.bool(), frames, -1)
            starts = torch.maximum(marked.cummax(1).values, state["start"].view(-1, 1))
        n = self.tokens_per_frame
        tokens = self.patchify(latent.flatten(0, 1)).flatten(2).transpose(1, 2).unflatten(0, (batch, length))
        position = sinusoid(frames - starts, self.dim).to(tokens.dtype)  # (B, T, dim): frame index within the clip
        x = (tokens + self.spatial_pos + position.unsqueeze(2)).flatten(1, 2)
        # Block-causal within the clip: query frame f sees key frame g when start(f) <= g <= f.
        key_frames = torch.cat((state["frames"], frames)).repeat_interleave(n)
        query_frames, query_starts = frames.repeat_interleave(n), starts.repeat_interleave(n, dim=1)
        allowed = (key_frames <= query_frames.unsqueeze(-1)) & (key_frames >= query_starts.unsqueeze(-1))
        caches = []
        for layer, cache in zip(self.layers, state["cache"]):
            x, cache = layer(x, allowed.unsqueeze(1), cache)
            caches.append(cache)
        new_state = {
            "cache": caches,
            "frames": torch.cat((state["frames"], frames)),
            "start": starts[:, -1],
            "seen": state["seen"] + length,
        }
        return self._tokens_to_latent(x.unflatten(1, (length, n))), new_state

    def temporal_step(
        self, latent_t: torch.Tensor, state: dict[str, Any], reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        latent, state = self.temporal(latent_t.unsqueeze(1), None if reset_t is None else reset_t.view(-1, 1), state)
        return latent[:, 0], state

    def init_temporal_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        heads = self.layers[0].attn.num_heads if len(self.layers) else 1
        empty = torch.zeros(batch, heads, 0, self.dim // heads, device=device, dtype=dtype)
        return {
            "cache": [(empty, empty) for _ in self.layers],
            "frames": torch.zeros(0, dtype=torch.long, device=device),
            "start": torch.zeros(batch, dtype=torch.long, device=device),
            "seen": 0,
        }


def _build(kwargs: dict[str, Any], **defaults: Any) -> VideoTransformerPredictor:
    return VideoTransformerPredictor(**{**defaults, **kwargs})


@register_model
def video_transformer_small(**kwargs) -> VideoTransformerPredictor:
    """64x64 -> 16x16 latent of 64 channels -> 8x8 = 64 tokens per frame of width 128, 3 layers."""
    return _build(kwargs, image_size=64, channels=(32, 64), latent_dim=64, patch_size=2, dim=128, depth=3)


@register_model
def video_transformer_moving_mnist(**kwargs) -> VideoTransformerPredictor:
    """The ConvS5 paper's Transformer baseline on Moving-MNIST (its published config): the 16x16x256 latent as one
    16x16 patch per frame, 8 layers of width 1024 with 16 heads and 4096-wide MLPs."""
    return _build(
        kwargs, image_size=64, channels=(64, 128), latent_dim=256, patch_size=16, dim=1024, depth=8, num_heads=16
    )


@register_model
def test_video_transformer(**kwargs) -> VideoTransformerPredictor:
    """16x16 frames -> 4x4 latent -> 4 tokens per frame of width 32, 2 layers: for tests (<= 100k parameters)."""
    return _build(kwargs, image_size=16, channels=(8, 16), latent_dim=16, patch_size=2, dim=32, depth=2, num_heads=2)
