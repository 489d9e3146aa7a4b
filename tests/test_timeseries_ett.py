"""The ETTh1 benchmark's data path against a plain numpy restatement of Informer's loader (slow: needs the shared file).

Informer's `Dataset_ETT_hour`: borders 12/4/4 months of 30 days, val and test starting
seq_len rows early, StandardScaler fitted on the training rows, every stride-1 window.
The file is `../shared/data/ETTh1.csv` (benchmarks and slow tests only, never copied).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.timeseries_ett import model_overrides, run_one

ETTH1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ETTh1.csv"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not ETTH1.is_file(), reason=f"{ETTH1} is not here")]


def numpy_repeat_last_mse(features: str, seq_len: int, horizon: int) -> float:
    frame = pd.read_csv(ETTH1)
    values = frame[["OT"]].to_numpy() if features == "S" else frame.drop(columns="date").to_numpy()
    month = 30 * 24
    train = values[: 12 * month]
    scaled = (values - train.mean(0)) / train.std(0)
    start, end = 16 * month - seq_len, 20 * month
    errors = [
        scaled[s + seq_len : s + seq_len + horizon] - scaled[s + seq_len - 1]
        for s in range(start, end - seq_len - horizon + 1)
    ]
    assert len(errors) == 4 * month - horizon + 1  # every test target row, no partial batch dropped
    return float(np.mean(np.square(errors)))


@pytest.mark.parametrize("features,horizon", [("M", 24), ("S", 168)])
def test_benchmark_windows_and_scaling_equal_informers_loader(tmp_path, features, horizon):
    args = argparse.Namespace(informer="informer_paper", epochs=6, limit_train_batches=1.0, ar_lags=720)
    seq_len = {"M": 48, "S": 720}[features]
    result = run_one(
        str(ETTH1), features, horizon, model_overrides("repeat_last", features, horizon, args), tmp_path / "run"
    )
    assert result["metrics"]["test/mse"] == pytest.approx(numpy_repeat_last_mse(features, seq_len, horizon), rel=1e-6)
