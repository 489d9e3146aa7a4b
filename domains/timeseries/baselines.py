"""Forecasts that need no gradient training, run by the same `zoo timeseries` verbs.

- `repeat_last`: the last observed value over the whole horizon.
- `seasonal_naive`: the last season repeated (season from the frequency, or `season=`).
- `classic_ar`: AR(p) with intercept fitted by least squares (statsmodels `AutoReg`) on each
  channel's training rows, forecast recursively over the horizon (the "Classic-AR"
  of Triebe et al. 2019).
Every channel is forecast on its own (for `MS` only the target). A model config selects
them with `runner: domains.timeseries.baselines.run_baseline`; `train`/`eval` report
val and test metrics like the trained models, `predict` writes the forecast CSV and PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from domains.timeseries.data import ForecastWindows, TimeSeriesDataModule
from domains.timeseries.metrics import forecast_errors
from domains.timeseries.plotting import forecast_rows, plot_forecast_file
from zoo.errors import ZooError
from zoo.io import write_csv_atomic
from zoo.models.linear_forecasters import RepeatLast, SeasonalNaive

BASELINES = ("repeat_last", "seasonal_naive", "classic_ar")


class ClassicAR:
    """Per-channel AR(p) + intercept by ordinary least squares; `(N, L, C)` windows -> `(N, H, C)`."""

    def __init__(self, lags: int, horizon: int):
        self.lags, self.horizon = lags, horizon

    def fit(self, rows: np.ndarray) -> ClassicAR:
        from statsmodels.tsa.ar_model import AutoReg

        if len(rows) <= 2 * self.lags:
            raise ZooError(
                f"classic AR with {self.lags} lags needs more than {2 * self.lags} training rows, got {len(rows)}; lower model.kwargs.lags"
            )
        # params: [intercept, coefficient of lag 1, ..., lag p] per channel
        self.params = np.stack(
            [
                AutoReg(rows[:, c].astype(np.float64), lags=self.lags, trend="c").fit().params
                for c in range(rows.shape[1])
            ]
        )
        return self

    def coefficients(self) -> np.ndarray:
        """`(C, p)` AR coefficients, lag 1 first."""
        return self.params[:, 1:]

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if windows.shape[1] < self.lags:
            raise ZooError(
                f"classic AR with {self.lags} lags needs windows of at least that length (seq_len), got {windows.shape[1]}"
            )
        history = windows[:, -self.lags :].astype(np.float64)  # (N, p, C), oldest first
        intercept, weights = self.params[:, 0], self.params[:, :0:-1]  # weights (C, p) oldest lag first
        steps = []
        for _ in range(self.horizon):
            nxt = intercept + np.einsum("npc,cp->nc", history, weights)
            steps.append(nxt)
            history = np.concatenate([history[:, 1:], nxt[:, None]], axis=1)
        return np.stack(steps, axis=1)


def make_baseline(name: str, kwargs: dict, dm: TimeSeriesDataModule):
    """A callable from raw windows `(N, L, C)` to raw forecasts `(N, H, C)`."""
    if name == "repeat_last":
        module = RepeatLast(dm.horizon)
    elif name == "seasonal_naive":
        module = SeasonalNaive(dm.horizon, int(kwargs.get("season") or dm.season_length()))
    elif name == "classic_ar":
        return ClassicAR(int(kwargs.get("lags") or dm.seq_len), dm.horizon).fit(
            target_channels(dm.train_rows, dm.features)
        )
    else:
        raise ZooError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return lambda windows: module(torch.from_numpy(np.array(windows))).numpy()


def target_channels(values: np.ndarray, features: str) -> np.ndarray:
    return values if features == "M" else values[..., -1:]


def window_arrays(dataset: ForecastWindows) -> tuple[np.ndarray, np.ndarray]:
    """All windows of a split at once: inputs `(N, L, C)` and future targets `(N, H, C)`."""
    span = dataset.seq_len + dataset.horizon
    rows = dataset.series.values[dataset.start : dataset.start + len(dataset) + span - 1]
    windows = np.lib.stride_tricks.sliding_window_view(rows, span, axis=0).transpose(0, 2, 1)
    return windows[:, : dataset.seq_len], windows[:, dataset.seq_len :]


def evaluate(forecaster, dm: TimeSeriesDataModule, split: str) -> dict[str, float]:
    """Metrics on the standardised (training statistics) and on the original scale."""
    x, y = window_arrays(getattr(dm, f"{split}_set"))
    x, y = target_channels(x, dm.features), target_channels(y, dm.features)
    pred = forecaster(x)
    mean, std = (target_channels(np.asarray(v), dm.features) for v in dm.scaler())
    scale = target_channels(np.asarray(dm.mase_scale()), dm.features)
    scaled = forecast_errors(torch.as_tensor((pred - mean) / std), torch.as_tensor((y - mean) / std), list(scale / std))
    original = forecast_errors(torch.as_tensor(pred), torch.from_numpy(np.array(y)), list(scale))
    return {
        **{f"{split}/{k}": v for k, v in scaled.items()},
        **{f"{split}/original/{k}": v for k, v in original.items()},
    }


def write_forecast(forecaster, dm: TimeSeriesDataModule, output: Path) -> int:
    item = dm.predict_set[0]
    x = target_channels(item["x"].numpy()[None], dm.features)
    names = list(dm.frame.columns) if dm.features == "M" else [dm.frame.columns[-1]]
    rows = forecast_rows(torch.as_tensor(forecaster(x)), item["future_ns"][None], names)
    write_csv_atomic(output, rows)
    plot_forecast_file(str(output), dm.frame, dm.season_length())
    return len(rows)


def run_baseline(cfg: DictConfig) -> dict:
    """`runner` entry point: evaluate (train/eval/finetune) or forecast (predict) a baseline."""
    from zoo.training.runner import output_dir, write_run_record

    mode = str(cfg.mode)
    if mode == "export":
        raise ZooError(f"baseline {cfg.model.baseline!r} has no weights to export")
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("predict" if mode == "predict" else "fit")
    kwargs = dict(cfg.model.get("kwargs") or {})
    if mode == "predict" and cfg.model.baseline == "classic_ar":
        dm.make_splits()  # the AR is fitted on the training rows
    forecaster = make_baseline(str(cfg.model.baseline), kwargs, dm)
    out = output_dir(cfg)
    result: dict = {"mode": mode, "output_dir": str(out), "baseline": str(cfg.model.baseline)}
    if mode == "predict":
        target = Path(cfg.get("output") or out / "predictions.csv")
        result.update(predictions=str(target), rows=write_forecast(forecaster, dm, target))
    else:
        result["metrics"] = {**evaluate(forecaster, dm, "val"), **evaluate(forecaster, dm, "test")}
    write_run_record(out, cfg, result)
    return result
