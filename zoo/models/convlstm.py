"""ConvLSTM frame predictor: the recurrent baseline of ConvS5, behind the same encoder and decoder.

Shi, Chen, Wang, Yeung, Wong & Woo, "Convolutional LSTM Network: A Machine Learning
Approach for Precipitation Nowcasting", NeurIPS 2015 (arXiv:1506.04214). Each cell's
gates are convolutions of the input and of the previous hidden map, with the paper's
peephole terms (Hadamard products with the cell map, eq. 3):

    i = sigma(W_xi * X_t + W_hi * H_{t-1} + W_ci o C_{t-1} + b_i)
    f = sigma(W_xf * X_t + W_hf * H_{t-1} + W_cf o C_{t-1} + b_f)
    C_t = f o C_{t-1} + i o tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)
    o = sigma(W_xo * X_t + W_ho * H_{t-1} + W_co o C_t + b_o),    H_t = o o tanh(C_t)

Layers are stacked; the last layer's H is the output latent. Training loops over time
(the recurrence is nonlinear), but each layer's input convolution W_x * X runs over every
frame at once, layer by layer. ConvS5 (Smith et al., NeurIPS 2023) reports 3x faster
training than this baseline; `benchmarks/video_speed.py` measures it side by side.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.models.video_base import VideoPredictor
from zoo.registry import register_model

State = list[tuple[torch.Tensor, torch.Tensor]]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer; `input_gates` is W_x * X + b for any number of frames, `cell` one step."""

    def __init__(self, in_dim: int, hidden: int, kernel_size: int, size: int, peephole: bool = True):
        super().__init__()
        self.hidden = hidden
        self.input_conv = nn.Conv2d(in_dim, 4 * hidden, kernel_size, padding=kernel_size // 2)
        self.hidden_conv = nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2, bias=False)
        self.peephole = nn.Parameter(torch.zeros(3, hidden, size, size)) if peephole else None
        with torch.no_grad():  # forget gate open at the start (a common LSTM init; the paper states none)
            self.input_conv.bias[hidden : 2 * hidden].fill_(1.0)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_conv(x)

    def cell(self, gates_x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = (gates_x + self.hidden_conv(h)).chunk(4, dim=1)
        if self.peephole is not None:
            i, f = i + self.peephole[0] * c, f + self.peephole[1] * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peephole is not None:
            o = o + self.peephole[2] * c
        return torch.sigmoid(o) * torch.tanh(c), c


def _restart(h: torch.Tensor, c: torch.Tensor, reset_t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if reset_t is None:
        return h, c
    keep = (~reset_t.bool()).view(-1, 1, 1, 1).to(h.dtype)
    return h * keep, c * keep


class ConvLSTMPredictor(VideoPredictor):
    """Frames -> next-frame predictions (see `VideoPredictor`); temporal model: `depth` ConvLSTM layers."""

    recurrent = True
    causal = True

    def __init__(
        self,
        image_size: int = 64,
        in_channels: int = 1,
        channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 64,
        depth: int = 2,
        kernel_size: int = 3,
        peephole: bool = True,
        output: str = "logits",
        num_classes: int | None = None,
        global_pool: str = "",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.init_video(image_size, in_channels, channels, latent_dim, num_classes, global_pool, drop_rate, output)
        self.cells = nn.ModuleList(
            ConvLSTMCell(latent_dim, latent_dim, kernel_size, self.latent_size, peephole) for _ in range(depth)
        )

    def temporal(
        self, latent: torch.Tensor, reset: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        batch, length = latent.shape[:2]
        state = state or self.init_temporal_state(batch, latent.device, latent.dtype)
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            gates = cell.input_gates(latent.flatten(0, 1)).unflatten(0, (batch, length))  # all frames at once
            outputs = []
            for t in range(length):
                h, c = cell.cell(gates[:, t], *_restart(h, c, None if reset is None else reset[:, t]))
                outputs.append(h)
            latent = torch.stack(outputs, 1)
            new_state.append((h, c))
        return latent, new_state

    def temporal_step(
        self, latent_t: torch.Tensor, state: State, reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            latent_t, c = cell.cell(cell.input_gates(latent_t), *_restart(h, c, reset_t))
            new_state.append((latent_t, c))
        return latent_t, new_state

    def init_temporal_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State:
        """(H, C) per layer, each (B, D, h, w), zeros."""
        shape = (batch, self.latent_dim, self.latent_size, self.latent_size)
        return [(torch.zeros(shape, device=device, dtype=dtype),) * 2 for _ in self.cells]


def _build(kwargs: dict[str, Any], **defaults: Any) -> ConvLSTMPredictor:
    return ConvLSTMPredictor(**{**defaults, **kwargs})


@register_model
def convlstm_small(**kwargs) -> ConvLSTMPredictor:
    """64x64 -> 16x16 latent of 64 channels, 2 ConvLSTM layers with 3x3 kernels (about convs5_small's size)."""
    return _build(kwargs, image_size=64, channels=(32, 64), latent_dim=64, depth=2)


@register_model
def convlstm_moving_mnist(**kwargs) -> ConvLSTMPredictor:
    """The ConvS5 paper's ConvLSTM baseline on Moving-MNIST (its published config): 8 layers of 256 channels, 3x3."""
    return _build(kwargs, image_size=64, channels=(64, 128), latent_dim=256, depth=8)


@register_model
def test_convlstm(**kwargs) -> ConvLSTMPredictor:
    """16x16 frames -> 4x4 latent, 1 layer: for tests (<= 100k parameters)."""
    return _build(kwargs, image_size=16, channels=(8, 16), latent_dim=16, depth=1)
