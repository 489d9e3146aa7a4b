"""Forecasting windows over one (multi-channel) series, split in time.

Windows follow Informer's data loader: an input of `seq_len` steps, a decoder
target of `label_len` known steps plus `horizon` future steps, stride 1, every
window kept (the official test loader drops its last partial batch; we do not).
Splits: `ett` is the ETT benchmark's 12/4/4 months of 30 days (the rest of the file
unused); `ratio` is train/val/test fractions (official default 0.7/0.1/0.2). Val and
test windows start `seq_len` steps before their split so every target step is used.

Items hold *raw* values: the task standardises with the training split's mean and
std (ddof=0, as the official StandardScaler), which it stores, so a checkpoint
forecasts new files with the statistics it was trained with.
Features: `S` the target only; `M` every column (target last) predicting all;
`MS` every column predicting the target.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from domains.timeseries.embedded import is_embedded, load_embedded
from domains.timeseries.tables import load_series
from domains.timeseries.timefeatures import (
    calendar_fields,
    frequency_code,
    season_length,
    time_features,
)
from zoo.errors import DataError, ZooError
from zoo.training import BaseDataModule

log = logging.getLogger(__name__)

FEATURE_MODES = ("S", "M", "MS")


class SeriesArrays:
    """A series as aligned arrays: raw values (T, C), timeF marks (T, F), calendar fields (T, 5)."""

    def __init__(self, frame: pd.DataFrame, freq: str):
        self.index = frame.index
        self.values = frame.to_numpy(np.float32, copy=True)
        self.marks = time_features(frame.index, freq)
        self.calendar = calendar_fields(frame.index)


class ForecastWindows(Dataset):
    """Every window whose input starts in [start, end - seq_len - horizon]."""

    def __init__(self, series: SeriesArrays, start: int, end: int, seq_len: int, label_len: int, horizon: int):
        self.series, self.start = series, start
        self.seq_len, self.label_len, self.horizon = seq_len, label_len, horizon
        self.count = end - start - seq_len - horizon + 1

    def __len__(self) -> int:
        return max(self.count, 0)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.start + i
        e = s + self.seq_len
        y = slice(e - self.label_len, e + self.horizon)
        arrays = self.series
        return {
            "x": torch.from_numpy(arrays.values[s:e]),
            "y": torch.from_numpy(arrays.values[y]),
            "x_mark": torch.from_numpy(arrays.marks[s:e]),
            "y_mark": torch.from_numpy(arrays.marks[y]),
            "x_cal": torch.from_numpy(arrays.calendar[s:e]),
            "y_cal": torch.from_numpy(arrays.calendar[y]),
        }


class FutureWindow(Dataset):
    """The one window that forecasts past the end of the series; future targets are zeros."""

    def __init__(self, series: SeriesArrays, freq: str, seq_len: int, label_len: int, horizon: int):
        end = len(series.values)
        future = pd.date_range(series.index[-1], periods=horizon + 1, freq=freq)[1:]
        known = slice(end - label_len, end)
        y = np.concatenate([series.values[known], np.zeros((horizon, series.values.shape[1]), np.float32)])
        self.item = {
            "x": torch.from_numpy(series.values[end - seq_len :]),
            "y": torch.from_numpy(y),
            "x_mark": torch.from_numpy(series.marks[end - seq_len :]),
            "y_mark": torch.from_numpy(np.concatenate([series.marks[known], time_features(future, freq)])),
            "x_cal": torch.from_numpy(series.calendar[end - seq_len :]),
            "y_cal": torch.from_numpy(np.concatenate([series.calendar[known], calendar_fields(future)])),
            "future_ns": torch.from_numpy(future.as_unit("ns").asi8.copy()),
        }

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.item


def split_borders(n: int, split: str, ratios: list[float], freq: str, seq_len: int) -> list[tuple[int, int]]:
    """[(start, end)] of train, val, test rows; val/test start seq_len early (Informer's borders)."""
    if split == "ett":
        try:
            per_day = pd.Timedelta("1D") / pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        except ValueError:  # weeks, months, ...: no fixed length
            per_day = 0.0
        if per_day < 1 or per_day != int(per_day):
            raise DataError(
                f"data.split=ett counts 30-day months and needs daily or finer data, not {freq!r}; use data.split=ratio"
            )
        month = 30 * int(per_day)
        n_train, n_val, n_test = 12 * month, 4 * month, 4 * month
        if n < n_train + n_val + n_test:
            raise DataError(
                f"data.split=ett needs 20 months ({n_train + n_val + n_test} rows at {freq!r}), the series has "
                f"{n}; use data.split=ratio"
            )
    elif split == "ratio":
        if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) > 1 + 1e-9:
            raise DataError(
                f"data.ratios={list(ratios)}: give three non-negative train/val/test fractions summing to at most 1"
            )
        n_train, n_test = int(n * ratios[0]), int(n * ratios[2])
        n_val = n - n_train - n_test
    else:
        raise DataError(f"data.split={split!r}; choose ett or ratio")
    return [(0, n_train), (n_train - seq_len, n_train + n_val), (n_train + n_val - seq_len, n_train + n_val + n_test)]


class TimeSeriesDataModule(BaseDataModule):
    """A wide/long CSV or Parquet file, or an embedded statsmodels series, cut into forecasting windows."""

    def __init__(
        self,
        path: str = "statsmodels:co2",
        target: str | None = None,
        features: str = "S",
        columns: list[str] | None = None,
        date_col: str = "date",
        layout: str = "auto",
        id_col: str = "unique_id",
        ds_col: str = "ds",
        y_col: str = "y",
        fill: str = "error",
        freq: str | None = None,
        split: str = "ratio",
        ratios: tuple[float, float, float] = (0.7, 0.1, 0.2),
        seq_len: int = 96,
        label_len: int = 48,
        horizon: int = 24,
        season: int | None = None,
        delimiter: str | None = None,
        decimal: str = ".",
        max_fill_fraction: float = 0.2,
        requires_path: str | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        if requires_path and not path:  # a data config for the user's file (data=ett); the runner says so first
            raise DataError(requires_path)
        if features not in FEATURE_MODES:
            raise DataError(f"data.features={features!r}; choose S (target only), M (all -> all) or MS (all -> target)")
        if not 0 <= label_len <= seq_len or horizon < 1:
            raise DataError(f"need 0 <= label_len ({label_len}) <= seq_len ({seq_len}) and horizon ({horizon}) >= 1")
        self.path, self.target, self.features, self.columns = str(path), target, features, columns
        self.read_kwargs = dict(
            date_col=date_col,
            layout=layout,
            id_col=id_col,
            ds_col=ds_col,
            y_col=y_col,
            fill=fill,
            freq=freq,
            delimiter=delimiter,  # CSV dialect: None detects , ; or tab from the header line
            decimal=decimal,
            max_fill_fraction=max_fill_fraction,  # the share of a series data.fill may make up
        )
        self.split, self.ratios = split, list(ratios)
        self.seq_len, self.label_len, self.horizon, self.season = seq_len, label_len, horizon, season

    def load_frame(self) -> tuple[pd.DataFrame, str]:
        if is_embedded(self.path):
            frame, freq = load_embedded(self.path)
            unknown = [c for c in self.columns or [] if c not in frame.columns]
            if unknown:
                raise DataError(
                    f"{self.path}: no column {unknown[0]!r} (columns: {', '.join(frame.columns)}); fix data.columns"
                )
            return (frame[self.columns] if self.columns else frame), self.read_kwargs["freq"] or freq
        # A univariate run reads only its target, so other columns may hold anything.
        columns = self.columns or ([self.target] if self.features == "S" and self.target else None)
        return load_series(self.path, columns=columns, target=self.target, **self.read_kwargs)

    def select_channels(self, frame: pd.DataFrame) -> pd.DataFrame:
        target = self.target or frame.columns[-1]
        if target not in frame.columns:
            raise DataError(
                f"{self.path}: no target column {target!r} (columns: {', '.join(frame.columns)}); set "
                "data.target=<column>"
            )
        others = [c for c in frame.columns if c != target]
        self.target = target
        return frame[[target]] if self.features == "S" else frame[[*others, target]]

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "series", None) is not None:
            return
        frame, self.freq = self.load_frame()
        frame = self.select_channels(frame)
        self.frame, self.series = frame, SeriesArrays(frame, self.freq)
        self.train_rows = self.series.values
        self.cut_windows(splits=stage != "predict")

    def cut_windows(self, splits: bool) -> None:
        """The forecast window past the end and, with `splits`, the train/val/test windows."""
        if len(self.frame) < self.seq_len:
            raise DataError(
                f"{self.path}: {len(self.frame)} rows are fewer than seq_len={self.seq_len}; shorten seq_len or give "
                "a longer series"
            )
        self.predict_set = FutureWindow(self.series, self.freq, self.seq_len, self.label_len, self.horizon)
        if splits:
            self.make_splits()

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """A trained model's contract: the same channels in order and frequency; windows cut to its lengths.

        Channels and frequency are the file's, so a mismatch is one line saying which settings to pass;
        the window lengths are only how the file is cut, so the model's are adopted.
        """
        channels = contract.get("channels")
        if channels is not None and list(self.frame.columns) != list(channels):
            raise ZooError(
                f"{self.path}: this model was trained on channels {list(channels)} (target last) but the data gives "
                f"{list(self.frame.columns)}; pass the training run's data.target, data.features and data.columns"
            )
        freq = contract.get("freq")
        if freq is not None and frequency_code(self.freq) != freq:
            raise ZooError(
                f"{self.path}: this model was trained on data of frequency {freq!r} but the data's is "
                f"{frequency_code(self.freq)!r} ({self.freq}); resample the file to the training frequency"
            )
        self.features = contract.get("features", self.features)
        lengths = {k: int(contract[k]) for k in ("seq_len", "label_len", "horizon") if k in contract}
        changed = {k: v for k, v in lengths.items() if getattr(self, k) != v}
        if changed:
            log.info(
                "%s: windows cut as the model was trained (%s), not as configured",
                self.path,
                ", ".join(f"{k}={v}" for k, v in changed.items()),
            )
            for key, value in changed.items():
                setattr(self, key, value)
            self.cut_windows(splits=self.train_set is not None)

    def make_splits(self) -> None:
        borders = split_borders(len(self.frame), self.split, self.ratios, self.freq, self.seq_len)
        need = self.seq_len + self.horizon
        for name, (start, end) in zip(("train", "val", "test"), borders):
            if end - start < need:
                raise DataError(
                    f"{self.path}: the {name} split has {end - start} rows (with the input window), fewer than "
                    f"seq_len + horizon = {need}; shorten seq_len/horizon, change data.ratios, or give a longer series"
                )
        self.train_set, self.val_set, self.test_set = (
            ForecastWindows(self.series, start, end, self.seq_len, self.label_len, self.horizon)
            for start, end in borders
        )
        self.train_rows = self.series.values[borders[0][0] : borders[0][1]]

    def season_length(self) -> int:
        return int(self.season or season_length(self.freq))

    def scaler(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training rows (a constant channel gets std 1)."""
        std = self.train_rows.std(0, dtype=np.float64)
        return self.train_rows.mean(0, dtype=np.float64).tolist(), np.where(std > 0, std, 1.0).tolist()

    def mase_scale(self) -> list[float]:
        """In-sample MAE of the seasonal naive forecast on the training rows, per channel (MASE's denominator)."""
        m = self.season_length() if len(self.train_rows) > self.season_length() else 1
        scale = np.abs(self.train_rows[m:] - self.train_rows[:-m]).mean(0, dtype=np.float64)
        return np.where(scale > 0, scale, 1.0).tolist()

    def task_kwargs(self) -> dict:
        mean, std = self.scaler()
        return dict(
            seq_len=self.seq_len,
            label_len=self.label_len,
            horizon=self.horizon,
            features=self.features,
            channels=list(self.frame.columns),
            freq=frequency_code(self.freq),
            season=self.season_length(),
            scaler_mean=mean,
            scaler_std=std,
            mase_scale=self.mase_scale(),
        )
