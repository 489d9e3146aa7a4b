"""Window-to-horizon linear forecasters and parameter-free naive baselines.

DLinear and NLinear: Zeng, Chen, Zhang, Xu, "Are Transformers Effective for Time
Series Forecasting?", AAAI 2023 (official code cure-lab/LTSF-Linear). DLinear splits
the window into a moving-average trend (kernel 25, ends padded by repetition) and the
remainder, maps each with a Linear over time (weights initialised to 1/seq_len) and
sums them; NLinear subtracts the last value, maps, and adds it back.

Both map a fixed `(B, seq_len, C)` window to `(B, pred_len, C)`; as backbones their
"features" are that forecast (num_features = C), so `forward_features` needs
`L == seq_len`. `RepeatLast` and `SeasonalNaive` have no parameters and are not
registered: the timeseries domain evaluates them directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.heads import InputStem
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


def moving_average(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Centred moving average over time of `(B, L, C)`, the ends padded by repeating the edge values."""
    pad = (kernel_size - 1) // 2
    padded = torch.cat([x[:, :1].expand(-1, pad, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
    return F.avg_pool1d(padded.transpose(1, 2), kernel_size, stride=1).transpose(1, 2)


class TimeLinear(nn.Module):
    """Linear map over the time axis, shared by channels or one per channel (`individual`)."""

    def __init__(self, seq_len: int, pred_len: int, channels: int, individual: bool, uniform_init: bool):
        super().__init__()
        n = channels if individual else 1
        self.weight = nn.Parameter(torch.empty(n, pred_len, seq_len))
        self.bias = nn.Parameter(torch.empty(n, pred_len))
        bound = seq_len**-0.5
        nn.init.uniform_(self.bias, -bound, bound)
        if uniform_init:
            nn.init.constant_(self.weight, 1.0 / seq_len)
        else:
            nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L, C) -> (B, H, C); broadcasting over channels when shared.
        return (
            torch.einsum(
                "chl,blc->bhc", self.weight.expand(x.shape[-1], -1, -1) if self.weight.shape[0] == 1 else self.weight, x
            )
            + self.bias.T
        )


class WindowForecaster(SequenceBackbone):
    """Shared plumbing: values in, a `(B, pred_len, C)` forecast out as the features."""

    causal = True
    forecaster = "window"

    def _setup(
        self,
        seq_len: int,
        pred_len: int,
        in_features: int | None,
        vocab_size: int | None,
        num_classes: int,
        global_pool: str,
    ) -> int:
        if vocab_size is None and in_features is None:
            in_features = 1
        self.seq_len, self.pred_len = seq_len, pred_len
        # Token inputs are embedded to `in_features or 1` value channels first.
        self.stem = InputStem(in_features or 1, vocab_size=vocab_size) if vocab_size else None
        channels = in_features or 1
        self.init_head(channels, num_classes, global_pool)
        return channels

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        """A window of `seq_len` steps whatever `length` asks: the model takes no other length."""
        if self.stem is not None:
            return torch.randint(0, self.stem.vocab_size, (batch, self.seq_len))
        return torch.randn(batch, self.seq_len, self.num_features)

    def _values(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None and not bool(mask.all()):
            raise ZooError(f"{type(self).__name__} maps a whole window to a horizon and takes no padding mask.")
        values = self.stem(x) if self.stem is not None else x
        if values.shape[1] != self.seq_len:
            raise ZooError(
                f"{type(self).__name__} was built for windows of seq_len={self.seq_len}, got length {values.shape[1]}."
            )
        return values

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


class DLinear(WindowForecaster):
    def __init__(
        self,
        seq_len: int = 96,
        pred_len: int = 24,
        kernel_size: int = 25,
        individual: bool = False,
        in_features: int | None = None,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        channels = self._setup(seq_len, pred_len, in_features, vocab_size, num_classes, global_pool)
        self.kernel_size = kernel_size
        self.seasonal = TimeLinear(seq_len, pred_len, channels, individual, uniform_init=True)
        self.trend = TimeLinear(seq_len, pred_len, channels, individual, uniform_init=True)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        values = self._values(x, mask)
        trend = moving_average(values, self.kernel_size)
        return self.seasonal(values - trend) + self.trend(trend)


class NLinear(WindowForecaster):
    def __init__(
        self,
        seq_len: int = 96,
        pred_len: int = 24,
        individual: bool = False,
        in_features: int | None = None,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        channels = self._setup(seq_len, pred_len, in_features, vocab_size, num_classes, global_pool)
        self.linear = TimeLinear(seq_len, pred_len, channels, individual, uniform_init=False)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        values = self._values(x, mask)
        last = values[:, -1:].detach()
        return self.linear(values - last) + last


class RepeatLast(nn.Module):
    """Naive forecast: the last observed value, repeated over the horizon."""

    def __init__(self, pred_len: int):
        super().__init__()
        self.pred_len = pred_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:].expand(-1, self.pred_len, -1)


class SeasonalNaive(nn.Module):
    """Seasonal naive forecast: y[T + h] = y[T + h - m * ceil(h / m)] for season length m."""

    def __init__(self, pred_len: int, season: int):
        super().__init__()
        if season < 1:
            raise ZooError(f"seasonal naive needs a season length >= 1, got {season}")
        self.pred_len, self.season = pred_len, season

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] < self.season:
            raise ZooError(
                f"seasonal naive with season={self.season} needs windows of at least that length, got {x.shape[1]}"
            )
        last_season = x[:, -self.season :]
        reps = -(-self.pred_len // self.season)
        return last_season.repeat(1, reps, 1)[:, : self.pred_len]


@register_model
def test_dlinear(**kw) -> DLinear:
    return DLinear(**{"seq_len": 32, "pred_len": 8, "kernel_size": 5, **kw})


@register_model
def dlinear(**kw) -> DLinear:
    return DLinear(**kw)


@register_model
def test_nlinear(**kw) -> NLinear:
    return NLinear(**{"seq_len": 32, "pred_len": 8, **kw})


@register_model
def nlinear(**kw) -> NLinear:
    return NLinear(**kw)
