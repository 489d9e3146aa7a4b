"""Forecast CSV rows and the PNG drawn beside them: recent history, then the forecast."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from zoo.io import atomic_path


def forecast_rows(forecast: torch.Tensor, future_ns: torch.Tensor, channels: list[str]) -> list[dict]:
    """One row per (window, step): timestamp first, then the step number and one column per channel."""
    rows = []
    values = forecast.detach().cpu().double().numpy()
    stamps = future_ns.cpu().numpy()
    for window in range(values.shape[0]):
        for step in range(values.shape[1]):
            row = {"ds": pd.Timestamp(int(stamps[window, step])).isoformat(), "horizon": step + 1}
            row.update({name: float(values[window, step, c]) for c, name in enumerate(channels)})
            rows.append(row)
    return rows


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, path: str | Path, context: int) -> Path:
    """History (last `context` steps) and forecast, one panel per forecast channel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channels = [c for c in forecast.columns if c in history.columns]
    fig, axes = plt.subplots(len(channels), 1, figsize=(9, 2.6 * len(channels)), squeeze=False, sharex=True)
    recent = history.iloc[-context:]
    for ax, name in zip(axes[:, 0], channels):
        ax.plot(recent.index, recent[name], color="0.3", lw=1.2, label="history")
        ax.plot(forecast.index, forecast[name], color="tab:red", lw=1.5, label="forecast")
        ax.axvline(history.index[-1], color="0.6", ls=":", lw=1)
        ax.set_ylabel(name)
    axes[0, 0].legend(loc="upper left", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def plot_forecast_file(csv_path: str, history: pd.DataFrame, season: int = 1) -> Path:
    """Draw `<predictions>.png` next to the forecast CSV written by `zoo timeseries predict`."""
    forecast = pd.read_csv(csv_path, parse_dates=["ds"]).set_index("ds").drop(columns=["horizon"])
    context = max(4 * len(forecast), 2 * season, 48)
    return plot_forecast(history, forecast, Path(csv_path).with_suffix(".png"), context)
