"""xLSTM building blocks shared by the mLSTM and sLSTM layers, the gated feed-forward and the residual block.

Beck et al., "xLSTM: Extended Long Short-Term Memory" (NeurIPS 2024), arXiv:2405.04517.
Module and parameter names, shapes and initialisations follow the official `xlstm`
package (NX-AI/xlstm: `components/`, `blocks/xlstm_block.py`), so that with the layers in
`zoo.layers.xlstm_mlstm` (`mLSTMLayer`) and `zoo.layers.xlstm_slstm` (`sLSTMLayer`) a state
dict of its `xLSTMBlockStack` loads after renaming keys only
(`zoo.models.bio_xlstm.convert_xlstm_state_dict`).

Padding `mask` (B, L), True on real tokens, is handled inside the layers: real positions
never see padded content, and right-padded outputs equal the unpadded ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "relu^2": lambda x: F.relu(x).square(),
    "sigmoid": torch.sigmoid,
    "swish": F.silu,
    "selu": F.selu,
}


def small_init_(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Nguyen & Salazar (2019) "small init", std sqrt(2 / 5d)."""
    return nn.init.normal_(weight, std=math.sqrt(2 / (5 * dim)))


def wang_init_(weight: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    return nn.init.normal_(weight, std=2 / num_blocks / math.sqrt(dim))


def proj_up_dim(dim: int, factor: float, multiple_of: int = 64, round_up: bool = True) -> int:
    steps = factor * dim / multiple_of
    up = int((math.ceil(steps) if round_up else math.floor(steps)) * multiple_of)
    if up <= 0:
        raise ValueError(
            f"up-projection of width {dim} x {factor} rounds down to 0 (multiple of {multiple_of}); "
            "round up or use a smaller multiple"
        )
    return up


class ResidualLayerNorm(nn.Module):
    """LayerNorm whose scale is stored as an offset from 1 (zero-initialised), as in the official code."""

    def __init__(self, dim: int, bias: bool = False, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), 1 + self.weight, self.bias, self.eps)


class MultiHeadNorm(ResidualLayerNorm):
    """Per-head LayerNorm (GroupNorm with one group per head): (..., NH, DH) -> (..., NH * DH)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, heads = x.shape[:-2], x.shape[-2]
        out = F.group_norm(x.reshape(-1, self.dim), heads, 1 + self.weight, self.bias, self.eps)
        return out.reshape(*shape, self.dim)


class HeadwiseLinear(nn.Module):
    """Block-diagonal linear map (official `LinearHeadwiseExpand`): weight (heads, out/heads, in/heads)."""

    def __init__(self, features: int, num_heads: int, bias: bool = False):
        super().__init__()
        if features % num_heads:
            raise ValueError(f"HeadwiseLinear: features={features} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.weight = nn.Parameter(torch.empty(num_heads, features // num_heads, features // num_heads))
        self.bias = nn.Parameter(torch.zeros(features)) if bias else None
        nn.init.normal_(self.weight, std=math.sqrt(2 / 5 / self.weight.shape[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("...hd,hod->...ho", x.unflatten(-1, (self.num_heads, -1)), self.weight).flatten(-2)
        return y if self.bias is None else y + self.bias


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time on (B, L, C); the parameters live in `.conv` as officially."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.transpose(1, 2), (self.kernel_size - 1, 0))
        return F.conv1d(x, self.conv.weight, self.conv.bias, groups=x.shape[1]).transpose(1, 2)

    def step(self, x_t: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, C); window: the previous kernel_size - 1 inputs (B, K-1, C)."""
        full = torch.cat([window, x_t[:, None]], dim=1)
        y = torch.einsum("bkc,ck->bc", full, self.conv.weight[:, 0]) + self.conv.bias
        return y, full[:, 1:]


def rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE on interleaved pairs (Su et al., 2021) of x (B, L, H, d); positions (L,) or (B, L)."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[..., None, None] * freqs
    cos, sin = torch.cos(angles), torch.sin(angles)
    re, im = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).flatten(-2).to(x.dtype)


class GatedFeedForward(nn.Module):
    """GLU-style feed-forward of the sLSTM block: proj_down(act(gate) * up)."""

    def __init__(
        self,
        dim: int,
        proj_factor: float = 1.3,
        act: str = "gelu",
        bias: bool = False,
        dropout: float = 0.0,
        num_blocks: int = 1,
        round_proj_up_to_multiple_of: int = 64,
        round_proj_up_dim_up: bool = True,
    ):
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"GatedFeedForward: act={act!r}; choose one of {sorted(_ACTIVATIONS)}")
        self.up_dim = proj_up_dim(dim, proj_factor, round_proj_up_to_multiple_of, round_proj_up_dim_up)
        self.act = _ACTIVATIONS[act]
        self.proj_up = nn.Linear(dim, 2 * self.up_dim, bias=bias)
        self.proj_down = nn.Linear(self.up_dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        small_init_(self.proj_up.weight, dim)
        wang_init_(self.proj_down.weight, dim, num_blocks)
        for lin in (self.proj_up, self.proj_down):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.proj_up(x).split(self.up_dim, dim=-1)
        return self.dropout(self.proj_down(self.act(gate) * up))


class xLSTMBlock(nn.Module):
    """Pre-norm residual block around an mLSTM or sLSTM layer, optionally followed by a pre-norm feed-forward."""

    def __init__(self, dim: int, layer: nn.Module, ffn: nn.Module | None = None):
        super().__init__()
        self.xlstm_norm = ResidualLayerNorm(dim)
        self.xlstm = layer
        self.ffn_norm = ResidualLayerNorm(dim) if ffn is not None else None
        self.ffn = ffn

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.xlstm(self.xlstm_norm(x), mask=mask, positions=positions)
        return x if self.ffn is None else x + self.ffn(self.ffn_norm(x))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple:
        return self.xlstm.init_state(batch, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        y, state = self.xlstm.step(self.xlstm_norm(x_t), state)
        x_t = x_t + y
        return (x_t if self.ffn is None else x_t + self.ffn(self.ffn_norm(x_t))), state
