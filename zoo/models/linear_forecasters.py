"""Window-to-horizon forecasters: DLinear, NLinear and the closed-form baselines (naive, classic AR).

DLinear and NLinear: Zeng, Chen, Zhang, Xu, "Are Transformers Effective for Time
Series Forecasting?", AAAI 2023 (official code cure-lab/LTSF-Linear). DLinear splits
the window into a moving-average trend (kernel 25, ends padded by repetition) and the
remainder, maps each with a Linear over time (weights initialised to 1/seq_len) and
sums them; NLinear subtracts the last value, maps, and adds it back.

Both map a fixed `(B, seq_len, C)` window to `(B, pred_len, C)`; as backbones their
"features" are that forecast (num_features = C), so `forward_features` needs
`L == seq_len`. All are `forecaster = "window"` models.

The baselines are window forecasters fitted without gradients (`closed_form = True`: the
runner calls the task's `fit_closed_form`, which calls `fit(rows)`): `repeat_last` (the last
value over the horizon), `seasonal_naive` (the last season repeated) and `classic_ar`
(AR(p) + intercept per channel by least squares, statsmodels `AutoReg`, forecast
recursively: the "Classic-AR" of Triebe et al., "AR-Net: A simple Auto-Regressive Neural
Network for time-series", 2019). Each channel is forecast on its own.
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


class ClosedFormForecaster(WindowForecaster):
    """A window forecaster fitted without gradients (`closed_form`): `fit(rows)` once, then `forecast`.

    `fitted` is a persistent buffer, so a checkpoint records whether the model was fitted and
    a parameter-free baseline still has a state to save. The naive forecasts are born fitted.
    """

    closed_form = True

    def _setup_closed_form(self, seq_len: int, pred_len: int, in_features: int | None, fitted: bool) -> int:
        channels = self._setup(seq_len, pred_len, in_features, None, 0, "")
        self.register_buffer("fitted", torch.tensor(fitted))
        return channels

    def fit(self, rows: torch.Tensor) -> None:
        """Fit on training rows `(T, k)`, the last k of the model's channels (k <= in_features).

        The channels before them (covariates that are not forecast) are left unfitted.
        """
        self.fitted.fill_(True)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not bool(self.fitted):
            raise ZooError(
                f"{type(self).__name__} has not been fitted: call fit(rows) first, or run it with "
                "`zoo timeseries train model=<name>`, which fits it on the training rows"
            )
        return self.window_forecast(self._values(x, mask))

    def window_forecast(self, values: torch.Tensor) -> torch.Tensor:
        """`(B, seq_len, C)` values -> `(B, pred_len, C)` forecast."""
        raise NotImplementedError


class RepeatLast(ClosedFormForecaster):
    """Naive forecast: the last observed value, repeated over the horizon."""

    def __init__(self, seq_len: int = 96, pred_len: int = 24, in_features: int | None = None):
        super().__init__()
        self._setup_closed_form(seq_len, pred_len, in_features, fitted=True)

    def window_forecast(self, values: torch.Tensor) -> torch.Tensor:
        return values[:, -1:].expand(-1, self.pred_len, -1)


class SeasonalNaive(ClosedFormForecaster):
    """Seasonal naive forecast: y[T + h] = y[T + h - m * ceil(h / m)] for season length m.

    `season=None` asks the forecasting task for the data's period (`takes_season`); built
    alone, None is 1, which is repeat-last.
    """

    #: the time-series task passes the data's seasonal period as `season` when the config gives none.
    takes_season = True

    def __init__(
        self, seq_len: int = 96, pred_len: int = 24, season: int | None = None, in_features: int | None = None
    ):
        super().__init__()
        season = 1 if season is None else int(season)
        if not 1 <= season <= seq_len:
            raise ZooError(
                f"seasonal_naive with season={season} needs 1 <= season <= seq_len={seq_len}; "
                "set model.kwargs.season or a longer seq_len"
            )
        self._setup_closed_form(seq_len, pred_len, in_features, fitted=True)
        self.season = season

    def window_forecast(self, values: torch.Tensor) -> torch.Tensor:
        last_season = values[:, -self.season :]
        reps = -(-self.pred_len // self.season)
        return last_season.repeat(1, reps, 1)[:, : self.pred_len]


class ClassicAR(ClosedFormForecaster):
    """AR(p) with intercept per channel, forecast recursively (the "Classic-AR" of Triebe et al. 2019).

    Fitted by ordinary least squares on each channel's training rows with statsmodels'
    `AutoReg(trend="c")` (an optional dependency: `pip install longzoo[timeseries]`). The
    coefficients are buffers (`intercept` (C,), `coefficients` (C, p), lag 1 first, float64),
    so checkpoints and exported folders carry them. `lags=None` is `seq_len`.
    """

    def __init__(self, seq_len: int = 96, pred_len: int = 24, lags: int | None = None, in_features: int | None = None):
        super().__init__()
        lags = seq_len if lags is None else int(lags)
        if not 1 <= lags <= seq_len:
            raise ZooError(
                f"classic_ar with lags={lags} needs 1 <= lags <= seq_len={seq_len} (the input window); "
                "raise seq_len or lower model.kwargs.lags"
            )
        channels = self._setup_closed_form(seq_len, pred_len, in_features, fitted=False)
        self.lags = lags
        self.register_buffer("intercept", torch.zeros(channels, dtype=torch.float64))
        self.register_buffer("coefficients", torch.zeros(channels, lags, dtype=torch.float64))

    def fit(self, rows: torch.Tensor) -> None:
        from statsmodels.tsa.ar_model import AutoReg

        rows = torch.as_tensor(rows, dtype=torch.float64).cpu()
        if rows.ndim != 2 or not 1 <= rows.shape[1] <= self.num_features:
            raise ZooError(
                f"classic_ar fits rows (T, k) with k <= {self.num_features} channels, got shape {tuple(rows.shape)}"
            )
        if len(rows) <= 2 * self.lags:
            raise ZooError(
                f"classic_ar with {self.lags} lags needs more than {2 * self.lags} training rows, got {len(rows)}; "
                "lower model.kwargs.lags"
            )
        # params per channel: [intercept, lag 1, ..., lag p]; the channels before the last k are not forecast.
        params = torch.stack(
            [
                torch.from_numpy(AutoReg(rows[:, c].numpy(), lags=self.lags, trend="c").fit().params)
                for c in range(rows.shape[1])
            ]
        )
        k = len(params)
        with torch.no_grad():
            self.intercept.zero_()
            self.coefficients.zero_()
            self.intercept[-k:] = params[:, 0]
            self.coefficients[-k:] = params[:, 1:]
        super().fit(rows)

    def window_forecast(self, values: torch.Tensor) -> torch.Tensor:
        # Recursion in float64, as statsmodels forecasts: each step is fed back as the newest lag.
        history = values[:, -self.lags :].to(torch.float64)  # (B, p, C), oldest first
        oldest_first = self.coefficients.to(torch.float64).flip(-1).T  # (p, C)
        intercept = self.intercept.to(torch.float64)
        steps = []
        for _ in range(self.pred_len):
            step = intercept + (history * oldest_first).sum(1)
            steps.append(step)
            history = torch.cat([history[:, 1:], step[:, None]], dim=1)
        return torch.stack(steps, dim=1).to(values.dtype)


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


@register_model
def repeat_last(**kw) -> RepeatLast:
    return RepeatLast(**kw)


@register_model
def seasonal_naive(**kw) -> SeasonalNaive:
    return SeasonalNaive(**kw)


@register_model
def classic_ar(**kw) -> ClassicAR:
    return ClassicAR(**kw)
