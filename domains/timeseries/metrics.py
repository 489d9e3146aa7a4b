"""Forecast error metrics, accumulated over batches (and devices) as sums.

MSE, MAE, RMSE; MAPE = mean |e / y| over targets with y != 0 (zeros are skipped, so
on standardised data it is unstable and best read on the original scale);
sMAPE = mean 2|e| / (|y| + |yhat|) (0 when both are 0); MASE = mean |e| / s_c with
s_c the in-sample MAE of the seasonal naive forecast on channel c's training rows
(Hyndman & Koehler, "Another look at measures of forecast accuracy", 2006).
All are means over every (window, step, channel) element, as the Informer paper
reports MSE/MAE.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

NAMES = ("mse", "mae", "rmse", "mape", "smape", "mase")


class ForecastErrors(Metric):
    full_state_update = False

    def __init__(self, mase_scale: list[float] | torch.Tensor):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(mase_scale, dtype=torch.float64))
        for name in ("se", "ae", "ape", "n_ape", "sape", "ase", "n"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """`(B, H, C)` forecasts and targets; C matches `mase_scale`."""
        pred, target = pred.double(), target.double()
        err = pred - target
        abs_err = err.abs()
        nonzero = target != 0
        denom = pred.abs() + target.abs()
        self.se += err.pow(2).sum()
        self.ae += abs_err.sum()
        self.ape += (abs_err / target.abs().where(nonzero, torch.ones_like(target)))[nonzero].sum()
        self.n_ape += nonzero.sum()
        self.sape += torch.where(denom > 0, 2 * abs_err / denom.clamp_min(1e-300), torch.zeros_like(denom)).sum()
        self.ase += (abs_err / self.scale.to(abs_err.device)).sum()
        self.n += err.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.n.clamp_min(1)
        mse = self.se / n
        return {
            "mse": mse,
            "mae": self.ae / n,
            "rmse": mse.sqrt(),
            "mape": self.ape / self.n_ape if self.n_ape > 0 else torch.tensor(float("nan"), dtype=torch.float64),
            "smape": self.sape / n,
            "mase": self.ase / n,
        }


def forecast_errors(pred: torch.Tensor, target: torch.Tensor, mase_scale: list[float]) -> dict[str, float]:
    """One-shot version for baselines and benchmarks."""
    metric = ForecastErrors(mase_scale)
    metric.update(torch.as_tensor(pred), torch.as_tensor(target))
    return {k: float(v) for k, v in metric.compute().items()}
