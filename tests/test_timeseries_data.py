"""Reading series (wide, long, Parquet, embedded), splits, windows, scaling, time features, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domains.timeseries.data import TimeSeriesDataModule, split_borders
from domains.timeseries.tables import load_series
from domains.timeseries.timefeatures import (
    calendar_fields,
    season_length,
    time_features,
)
from zoo.errors import DataError


def hourly_frame(n: int = 400, start: str = "2020-01-01") -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
            "load": np.sin(2 * np.pi * t / 24) + 0.01 * t,
            "temp": np.cos(2 * np.pi * t / 24),
            "OT": np.sin(2 * np.pi * t / 12) + 5.0,
        }
    )


def write(tmp_path, frame: pd.DataFrame, name: str = "series.csv") -> str:
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return str(path)


def datamodule(path: str, **kw) -> TimeSeriesDataModule:
    dm = TimeSeriesDataModule(path=path, **{"seq_len": 48, "label_len": 24, "horizon": 12, **kw})
    dm.setup("fit")
    return dm


def test_wide_csv_features_and_windows(tmp_path):
    path = write(tmp_path, hourly_frame().drop(columns=["OT"]).assign(OT=hourly_frame().OT))
    for features, channels in [("S", ["OT"]), ("M", ["load", "temp", "OT"]), ("MS", ["load", "temp", "OT"])]:
        dm = datamodule(path, features=features, target="OT")
        assert list(dm.frame.columns) == channels and dm.freq == "h"
    dm = datamodule(path, features="M", target="load")
    assert list(dm.frame.columns) == ["temp", "OT", "load"]  # the target goes last
    item = dm.train_set[5]
    np.testing.assert_array_equal(item["x"].numpy(), dm.frame.to_numpy(np.float32)[5:53])
    np.testing.assert_array_equal(item["y"].numpy(), dm.frame.to_numpy(np.float32)[53 - 24 : 53 + 12])
    assert item["x_mark"].shape == (48, 4) and item["y_cal"].shape == (36, 5)


def test_ratio_split_keeps_every_window(tmp_path):
    dm = datamodule(write(tmp_path, hourly_frame(400)), features="S")
    (a, b), (c, d), (e, f) = split_borders(400, "ratio", [0.7, 0.1, 0.2], "h", 48)
    assert (a, b, c, d, e, f) == (0, 280, 232, 320, 272, 400)  # val/test start seq_len early, as Informer's loader
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [280 - 60 + 1, 88 - 60 + 1, 128 - 60 + 1]
    last = dm.test_set[len(dm.test_set) - 1]
    assert last["y"][-1, 0].item() == pytest.approx(dm.frame.OT.iloc[-1], rel=1e-6)  # the last row is a target


def test_ett_split_is_12_4_4_months_of_30_days():
    assert split_borders(17420, "ett", [], "h", 96) == [(0, 8640), (8640 - 96, 11520), (11520 - 96, 14400)]
    assert split_borders(69680, "ett", [], "15min", 96)[2] == (4 * 11520 - 96, 4 * 14400)
    with pytest.raises(DataError, match="20 months"):
        split_borders(1000, "ett", [], "h", 96)
    with pytest.raises(DataError, match="daily or finer"):
        split_borders(10000, "ett", [], "W-SUN", 8)


def test_scaler_and_mase_scale_use_only_the_training_rows(tmp_path):
    frame = hourly_frame(400)
    path_a = write(tmp_path, frame, "a.csv")
    frame.loc[300:, "load"] += 1000.0  # only test rows change
    path_b = write(tmp_path, frame, "b.csv")
    a, b = datamodule(path_a, features="S", target="load"), datamodule(path_b, features="S", target="load")
    assert a.task_kwargs()["scaler_mean"] == b.task_kwargs()["scaler_mean"]
    assert a.task_kwargs()["scaler_std"] == b.task_kwargs()["scaler_std"]
    rows = frame.load.to_numpy()[:280]
    assert a.task_kwargs()["scaler_std"][0] == pytest.approx(rows.std())  # ddof=0, as the official scaler
    assert a.task_kwargs()["mase_scale"][0] == pytest.approx(np.abs(rows[24:] - rows[:-24]).mean())  # daily season


def test_long_layout_and_parquet_equal_the_wide_file(tmp_path):
    wide = hourly_frame(200)
    long = (
        wide.melt(id_vars="date", var_name="unique_id", value_name="y")
        .rename(columns={"date": "ds"})
        .sample(frac=1.0, random_state=0)
    )
    frame_wide, _ = load_series(write(tmp_path, wide))
    frame_long, freq = load_series(write(tmp_path, long, "long.csv"))
    frame_parquet, _ = load_series(write(tmp_path, wide, "wide.parquet"))
    assert freq == "h"
    pd.testing.assert_frame_equal(frame_long[frame_wide.columns], frame_wide, check_freq=False)
    pd.testing.assert_frame_equal(frame_parquet, frame_wide, check_freq=False)


def test_embedded_default_series():
    dm = TimeSeriesDataModule(seq_len=96, label_len=48, horizon=24)
    dm.setup("fit")
    assert list(dm.frame.columns) == ["co2"] and len(dm.frame) == 2284 and dm.freq == "W-SAT"
    assert not dm.frame.isna().any().any()
    assert dm.task_kwargs()["season"] == 52 and dm.task_kwargs()["freq"] == "w"
    future = pd.to_datetime(dm.predict_set[0]["future_ns"].numpy())
    assert future[0] == pd.Timestamp("2002-01-05") and (np.diff(future) == np.timedelta64(7, "D")).all()


def test_time_features_follow_the_frequency():
    stamp = pd.DatetimeIndex(["2021-03-15 07:30:00"])  # a Monday
    np.testing.assert_allclose(
        time_features(stamp, "h")[0], [7 / 23 - 0.5, 0 / 6 - 0.5, 14 / 30 - 0.5, 73 / 365 - 0.5], rtol=1e-6
    )
    assert time_features(stamp, "15min").shape == (1, 5) and time_features(stamp, "D").shape == (1, 3)
    assert time_features(stamp, "W-SAT").shape == (1, 2) and time_features(stamp, "MS").shape == (1, 1)
    assert calendar_fields(stamp)[0].tolist() == [3, 15, 0, 7, 2]
    assert [season_length(f) for f in ("h", "15min", "D", "W", "MS", "QS")] == [24, 96, 7, 52, 12, 4]


# ------------------------------------------------------------------ bad input


def bad_file(tmp_path, edit) -> str:
    frame = hourly_frame(200).astype({"load": object})
    edit(frame)
    return write(tmp_path, frame)


@pytest.mark.parametrize(
    "edit,fill,message",
    [
        (
            lambda f: f.loc.__setitem__((10, "date"), f.date[8]),
            "error",
            r"series.csv:12: timestamp .* earlier than the row before .*sort",
        ),
        (lambda f: f.loc.__setitem__((10, "date"), f.date[9]), "error", r"series.csv:12: duplicate timestamp"),
        (
            lambda f: f.loc.__setitem__((10, "date"), "not a date"),
            "error",
            r"series.csv:12: column 'date' value 'not a date' is not a timestamp",
        ),
        (
            lambda f: f.loc.__setitem__((7, "load"), "n/a?"),
            "error",
            r"series.csv:9: column 'load' value 'n/a\?' is not a number",
        ),
        (
            lambda f: f.loc.__setitem__((7, "temp"), np.nan),
            "error",
            r"series.csv:9: column 'temp' is empty \(at 2020-01-01 07:00:00\).*data.fill",
        ),
        (
            lambda f: f.drop(index=[50, 51], inplace=True),
            "error",
            r"series.csv:52: 2 timestamp\(s\) missing .*first 2020-01-03 02:00:00 \(just before this row\).*data.fill",
        ),
        (lambda f: None, "sometimes", r"data.fill='sometimes'"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, edit, fill, message):
    with pytest.raises(DataError, match=message):
        datamodule(bad_file(tmp_path, edit), fill=fill)


def test_fill_policies(tmp_path):
    def edit(frame):
        frame.loc[7, "temp"] = np.nan
        frame.drop(index=[50, 51], inplace=True)

    path = bad_file(tmp_path, edit)
    truth = hourly_frame(200)
    interpolated = datamodule(path, fill="interpolate", features="M").frame
    assert len(interpolated) == 200
    assert interpolated.temp.iloc[7] == pytest.approx((truth.temp[6] + truth.temp[8]) / 2)
    assert interpolated.OT.iloc[50] == pytest.approx(truth.OT[49] + (truth.OT[52] - truth.OT[49]) / 3)
    assert datamodule(path, fill="ffill", features="M").frame.temp.iloc[7] == pytest.approx(truth.temp[6])
    assert datamodule(path, fill="zero", features="M").frame.OT.iloc[51] == 0.0


def test_unknown_names_and_sizes(tmp_path):
    path = write(tmp_path, hourly_frame(200))
    with pytest.raises(DataError, match="no target column 'oil'.*data.target"):
        datamodule(path, target="oil")
    with pytest.raises(DataError, match="no date column 'time'"):
        datamodule(path, date_col="time")
    with pytest.raises(DataError, match="fewer than seq_len \\+ horizon = 548"):
        datamodule(path, horizon=500)
    with pytest.raises(DataError, match="no such file"):
        datamodule(str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match="features='X'"):
        TimeSeriesDataModule(path=path, features="X")
    with pytest.raises(DataError, match="repeats timestamp"):
        long = pd.DataFrame({"unique_id": ["a", "a"], "ds": ["2020-01-01", "2020-01-01"], "y": [1.0, 2.0]})
        load_series(write(tmp_path, long, "long.csv"))


def test_univariate_runs_read_only_the_target(tmp_path):
    frame = hourly_frame(200).astype({"temp": object})
    frame.loc[5, "temp"] = "sensor fault"
    frame.loc[9, "load"] = np.nan
    path = write(tmp_path, frame)
    assert list(datamodule(path, features="S", target="OT").frame.columns) == ["OT"]
    with pytest.raises(DataError, match=r"series.csv:7: column 'temp' value 'sensor fault' is not a number"):
        datamodule(path, features="M", target="OT")
    with pytest.raises(DataError, match=r"data.target='OT' is not among data.columns=\['load'\]"):
        datamodule(path, features="MS", target="OT", columns=["load"])


def long_frame() -> pd.DataFrame:
    """Two series on one hourly grid: 'north' has 100 rows, 'south' starts 10 hours later."""
    stamps = pd.date_range("2020-01-01", periods=100, freq="h")
    north = pd.DataFrame({"unique_id": "north", "ds": stamps, "y": np.arange(100.0)})
    south = pd.DataFrame({"unique_id": "south", "ds": stamps[10:], "y": 2.0 * np.arange(10, 100)})
    return pd.concat([north, south], ignore_index=True)


def test_long_layout_with_several_series_names_the_series_and_row(tmp_path):
    frame = long_frame()
    path = write(tmp_path, frame, "long.csv")
    with pytest.raises(DataError, match=r"series 'south' has no row at 2020-01-01 00:00:00.*data.fill"):
        load_series(path)
    filled, _ = load_series(path, fill="interpolate")
    assert list(filled.columns) == ["north", "south"] and len(filled) == 100
    assert filled.south.iloc[0] == 20.0 and filled.south.iloc[50] == 100.0  # edges held, values kept
    south, _ = load_series(path, columns=["south"])  # one series alone has no hole
    assert len(south) == 90 and south.index[0] == pd.Timestamp("2020-01-01 10:00")
    frame.loc[120, "y"] = np.nan
    with pytest.raises(DataError, match=r"long.csv:122: column 'y' is empty \(series 'south'\)"):
        load_series(write(tmp_path, frame, "long.csv"), columns=["south"])
    with pytest.raises(DataError, match="no target column 'east'"):
        datamodule(path, target="east", fill="interpolate")


@pytest.mark.parametrize(
    "content,message",
    [
        ("", "the file is empty"),
        ("date,load\n", "the file has no rows"),
        (
            "date,load\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 01:30,3\n2020-01-01 03:00,4\n",
            r"series.csv:4: timestamp 2020-01-01 01:30:00 is not on the 'h' grid",
        ),
    ],
)
def test_malformed_files(tmp_path, content, message):
    (tmp_path / "series.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load_series(str(tmp_path / "series.csv"), freq="h" if "grid" in message else None)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_series(str(tmp_path / "broken.parquet"))
