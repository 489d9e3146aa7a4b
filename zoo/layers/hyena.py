"""The Hyena operator with its implicit long filter, as in HyenaDNA.

Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models",
ICML 2023 (arXiv:2302.10866); Nguyen et al., "HyenaDNA: Long-Range Genomic
Foundation Models at Single Nucleotide Resolution", NeurIPS 2023
(arXiv:2306.15794).

An order-N Hyena operator projects the input to N+1 streams, mixes each with a
short causal depthwise convolution, then alternates elementwise gating with long
causal convolutions whose kernels come from a small MLP of the position (the
*implicit filter*), windowed by an exponential decay. Parameter shapes follow the
official release (`standalone_hyenadna.py`) so its checkpoints map one to one;
see docs/hyenadna_conversion.md for the key mapping.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.layers.fftconv import fftconv


def positional_features(seq_len: int, emb_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Filter inputs `z` (L, emb_dim) = [t, cos(f w), -sin(f w)] and normalised time `t` (L, 1).

    t runs 0..1; w = 2 pi n / L for n = 0..L-1; the (emb_dim - 1) / 2 band
    frequencies f run linearly from 1e-4 to bands - 1.
    """
    if emb_dim < 3 or emb_dim % 2 == 0:
        raise ValueError(f"emb_dim={emb_dim}: it must be odd and >= 3 (time plus cosine/sine pairs)")
    bands = (emb_dim - 1) // 2
    t = torch.linspace(0, 1, seq_len)[:, None]
    w = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[:, None] / seq_len
    f = torch.linspace(1e-4, bands - 1, bands)[None, :]
    return torch.cat([t, torch.cos(f * w), -torch.sin(f * w)], dim=-1), t


def decay_rates(
    channels: int, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5, target: float = 1e-2
) -> torch.Tensor:
    """Per-channel rates of the exponential window: the window reaches `target` after
    `slow_decay_pct` (first channel) down to `fast_decay_pct` (last) of the normalised length."""
    return torch.linspace(math.log(target) / slow_decay_pct, math.log(target) / fast_decay_pct, channels)


class ImplicitFilter(nn.Module):
    """Long convolution kernels `(channels, L)` from an MLP of position, times a decaying window.

    The MLP alternates Linear layers with sin(freq * x); one `freq` vector is shared
    by every sine, as in the official code (one `Sin` module reused). The window is
    exp(-t |delta_c|) + shift. `bias` is the per-channel skip term of the convolution.
    """

    def __init__(
        self,
        channels: int,
        seq_len: int,
        emb_dim: int = 5,
        width: int = 64,
        num_inner: int = 2,
        freq: float = 10.0,
        train_freq: bool = True,
        shift: float = 0.05,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        target: float = 1e-2,
        modulate: bool = True,
        normalized: bool = False,
    ):
        super().__init__()
        self.seq_len, self.shift, self.modulate, self.normalized = seq_len, shift, modulate, normalized
        z, t = positional_features(seq_len, emb_dim)
        # Fixed in the released training configs (lr_pos_emb = 0), so buffers; saved so checkpoints keep them.
        self.register_buffer("z", z)
        self.register_buffer("t", t)
        self.register_buffer("deltas", decay_rates(channels, fast_decay_pct, slow_decay_pct, target))
        freq_init = torch.full((width,), float(freq))
        if train_freq:
            self.freq = nn.Parameter(freq_init)
        else:
            self.register_buffer("freq", freq_init)
        sizes = [emb_dim] + [width] * (num_inner + 1)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.mlp.append(nn.Linear(width, channels, bias=False))
        self.bias = nn.Parameter(torch.randn(channels))

    def raw(self, length: int) -> torch.Tensor:
        """The MLP output `(L, channels)` before the window."""
        if length > self.seq_len:
            raise ValueError(f"sequence length {length} exceeds the filter's max_seq_len {self.seq_len}")
        h = self.z[:length]
        for linear in self.mlp[:-1]:
            h = torch.sin(self.freq * linear(h))
        return self.mlp[-1](h)

    def forward(self, length: int) -> torch.Tensor:
        h = self.raw(length)
        if self.modulate:
            h = h * (torch.exp(-self.t[:length] * self.deltas.abs()) + self.shift)
        if self.normalized:
            h = h / h.abs().sum(dim=-1, keepdim=True)
        return h.transpose(0, 1)


class HyenaOperator(nn.Module):
    """Order-N Hyena: in_proj -> short causal conv -> N-1 rounds of (gate, long conv) -> gate -> out_proj.

    Input and output `(B, L, d_model)`; causal. Streams are split as
    [x_0, ..., x_{N-1}, v]; round o gates v with x_{N-1-o} and convolves it with
    kernel o (kernels stacked order-major over channels, as the released
    inference code does); the result is gated with x_0.
    """

    def __init__(
        self,
        d_model: int,
        max_seq_len: int,
        order: int = 2,
        filter_order: int = 64,
        short_filter_order: int = 3,
        dropout: float = 0.0,
        **filter_kwargs,
    ):
        super().__init__()
        if order < 2:
            raise ValueError(f"Hyena order must be >= 2, got {order}")
        self.d_model, self.order = d_model, order
        width = d_model * (order + 1)
        self.in_proj = nn.Linear(d_model, width)
        self.short_filter = nn.Conv1d(width, width, short_filter_order, padding=short_filter_order - 1, groups=width)
        self.filter = ImplicitFilter(d_model * (order - 1), max_seq_len, width=filter_order, **filter_kwargs)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[1]
        streams = self.short_filter(self.in_proj(u).transpose(1, 2))[..., :length]
        *gates, v = streams.split(self.d_model, dim=1)
        kernels = self.filter(length).view(self.order - 1, self.d_model, length)
        skips = self.filter.bias.view(self.order - 1, self.d_model)
        for o, gate in enumerate(reversed(gates[1:])):
            v = fftconv(self.dropout(v * gate), kernels[o], skips[o], causal=True)
        return self.out_proj((v * gates[0]).transpose(1, 2))
