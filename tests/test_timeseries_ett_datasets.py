"""The ETT benchmark names its dataset from the file and uses that dataset's official windows and paper numbers.

Nothing is trained: finished run folders are faked (metrics.json) so `main` only renders, and
`run_one`'s composed config is captured instead of run. The numbers checked here are copied
from the official Informer2020 scripts (scripts/ETTh2.sh, ETTm1.sh) and the paper's Tables 1-2.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks import timeseries_ett as ett
from zoo.errors import ZooError

PAPER_ARGS = argparse.Namespace(informer="informer_paper", epochs=6, limit_train_batches=1.0, ar_lags=720)


def ett_file(folder, name: str, rows: int = 48) -> str:
    """A tiny file in the ETT layout (never read by these tests beyond its name)."""
    dates = pd.date_range("2016-07-01", periods=rows, freq="15min" if "m" in name[3:] else "h")
    values = np.random.default_rng(0).normal(size=(rows, 2))
    path = folder / name
    pd.DataFrame({"date": dates, "HUFL": values[:, 0], "OT": values[:, 1]}).to_csv(path, index=False)
    return str(path)


def fake_finished_run(out, features: str, horizon: int, model: str, mse: float, mae: float) -> None:
    folder = out / f"{features}_{horizon}_{model}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"test/mse": mse, "test/mae": mae}}))


def run_main(monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["timeseries_ett", *argv])
    ett.main()


@pytest.mark.parametrize(
    "path,name",
    [
        ("/data/ETTh2.csv", "ETTh2"),
        ("etth2.csv", "ETTh2"),
        ("ETTm1.parquet", "ETTm1"),
        ("ETTm2.csv.gz", "ETTm2"),
        ("ETTh1.csv", "ETTh1"),
        ("runs/ett_like.csv", "ett_like"),
        ("weather.csv", "weather"),
    ],
)
def test_dataset_is_named_from_the_file_name(path, name):
    assert ett.dataset_name(path) == name


def test_each_dataset_gets_the_official_scripts_windows():
    # scripts/ETTh1.sh, unchanged
    assert ett.window("ETTh1", "M", 24) == (48, 48, 3) and ett.window("ETTh1", "S", 168) == (720, 336, 5)
    # scripts/ETTh2.sh: other windows than ETTh1's, factor 3 only at S 24
    assert ett.window("ETTh2", "M", 168) == (336, 336, 5) and ett.window("ETTh2", "M", 336) == (336, 168, 5)
    assert ett.window("ETTh2", "M", 720) == (720, 336, 5) and ett.window("ETTh2", "S", 24) == (48, 48, 3)
    assert ett.window("ETTh2", "M", 24) == (48, 48, 5)
    # scripts/ETTm1.sh: horizons in 15-minute steps
    assert list(ett.windows_of("ETTm1")["M"]) == list(ett.windows_of("ETTm1")["S"]) == [24, 48, 96, 288, 672]
    assert ett.window("ETTm1", "M", 24) == (672, 96, 5) and ett.window("ETTm1", "M", 672) == (672, 384, 5)
    assert ett.window("ETTm1", "S", 288) == (384, 384, 5)
    # no official script: ETTm2 borrows ETTm1's, any other file ETTh1's
    assert ett.windows_of("ETTm2") == ett.windows_of("ETTm1") and ett.windows_of("weather") == ett.windows_of("ETTh1")
    with pytest.raises(ZooError, match=r"--horizons 168: ETTm1 has official windows for horizons 24, 48, 96, 288, 672"):
        ett.window("ETTm1", "M", 168)


def test_overrides_follow_the_dataset():
    etth2 = ett.model_overrides("informer", "M", 336, PAPER_ARGS, "ETTh2")
    assert "++model.kwargs.e_layers=3" in etth2 and "++model.kwargs.d_layers=2" in etth2  # scripts/ETTh2.sh
    assert not any("layers" in o for o in ett.model_overrides("informer", "M", 24, PAPER_ARGS, "ETTh2"))
    tiny = argparse.Namespace(**{**vars(PAPER_ARGS), "informer": "informer"})
    assert not any("layers" in o for o in ett.model_overrides("informer", "M", 336, tiny, "ETTh2"))
    assert "++model.kwargs.factor=3" in ett.model_overrides("informer", "S", 24, PAPER_ARGS, "ETTh2")
    assert ett.model_overrides("seasonal_naive", "M", 96, PAPER_ARGS, "ETTm1") == [
        "model=seasonal_naive",
        "model.kwargs.season=96",  # one day of 15-minute steps
    ]
    assert ett.model_overrides("seasonal_naive", "M", 24, PAPER_ARGS, "weather") == ["model=seasonal_naive"]
    assert ett.model_overrides("classic_ar", "M", 24, PAPER_ARGS, "ETTm1") == [
        "model=classic_ar",
        "++model.kwargs.lags=672",
    ]


def test_run_one_composes_the_datasets_windows(tmp_path, monkeypatch):
    import zoo.training

    def composed(data: str, features: str, horizon: int):
        seen = []
        monkeypatch.setattr(zoo.training, "run", seen.append)
        model = ett.model_overrides("informer", features, horizon, PAPER_ARGS, ett.dataset_name(data))
        ett.run_one(data, features, horizon, model, tmp_path / "run")
        return seen[0]

    data = ett_file(tmp_path, "ETTm1.csv")
    cfg = composed(data, "M", 24)
    assert (cfg.seq_len, cfg.label_len, cfg.horizon) == (672, 96, 24)
    assert cfg.data.path == data and cfg.model.kwargs.factor == 5
    cfg = composed(ett_file(tmp_path, "ETTh2.csv"), "M", 720)
    assert (cfg.seq_len, cfg.label_len, cfg.horizon) == (720, 336, 720)
    assert (cfg.model.kwargs.e_layers, cfg.model.kwargs.d_layers) == (3, 2)


def test_etth2_table_has_its_header_and_paper_numbers(tmp_path, monkeypatch):
    data, out = ett_file(tmp_path, "ETTh2.csv"), tmp_path / "out"
    for features, horizon in (("M", 24), ("M", 720), ("S", 24), ("S", 720)):
        fake_finished_run(out, features, horizon, "repeat_last", 1.5, 0.9)
    run_main(monkeypatch, "--data", data, "--features", "M", "S", "--horizons", "24", "720", "--models", "repeat_last",
             "--out", str(out))  # fmt: skip
    table = (out / "table.md").read_text()
    assert table.startswith("ETTh2; Informer = model=informer_paper") and "ETTh1" not in table.splitlines()[0]
    assert "| M | 24 | 48 | not run |  | 0.720 / 0.665 | not run | not run | 1.500 / 0.900 |" in table
    assert "| S | 720 | 336 | not run |  | 0.277 / 0.431 |" in table and "| S | 24 | 48 |" in table
    assert "0.577 / 0.549" not in table and "0.269 / 0.435" not in table  # ETTh1's paper numbers
    assert (out / "dataset.txt").read_text().strip() == "ETTh2"
    # --render alone takes the dataset from the folder's record
    (out / "table.md").unlink()
    run_main(monkeypatch, "--render", "--out", str(out))
    assert (out / "table.md").read_text() == table
    # another dataset's runs never join this table
    with pytest.raises(ZooError, match=r"dataset.txt says ETTh2, but this table is ETTm1's"):
        run_main(monkeypatch, "--data", ett_file(tmp_path, "ETTm1.csv"), "--out", str(out))


def test_ettm1_table_uses_its_horizons_and_paper_numbers(tmp_path, monkeypatch):
    data, out = ett_file(tmp_path, "ETTm1.csv"), tmp_path / "out"
    for features, horizon in (("M", 96), ("M", 672), ("S", 96), ("S", 672)):
        fake_finished_run(out, features, horizon, "dlinear", 0.4, 0.4)
    run_main(monkeypatch, "--data", data, "--models", "dlinear", "--horizons", "96", "672", "--out", str(out))
    table = (out / "table.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("ETTm1; ")
    assert "seasonal naive (24 h)" in lines[2]
    assert "| M | 96 | 384 | not run |  | 0.678 / 0.614 | 0.400 / 0.400 |" in table
    assert "| S | 672 | 384 | not run |  | 0.512 / 0.644 | 0.400 / 0.400 |" in table
    assert "| M | 672 | 672 | not run |  | 1.192 / 0.926 | 0.400 / 0.400 |" in table
    assert len(lines) == 8  # header, blank, column names, rule, four rows


def test_ettm2_and_other_files_say_they_have_no_paper_numbers(tmp_path, monkeypatch):
    for name, windows in (("ETTm2.csv", "windows: ETTm1's official ones"), ("weather.csv", "windows: ETTh1's")):
        out = tmp_path / f"out_{name}"
        fake_finished_run(out, "M", 24, "repeat_last", 1.0, 1.0)
        run_main(monkeypatch, "--data", ett_file(tmp_path, name), "--features", "M", "--horizons", "24", "--models",
                 "repeat_last", "--out", str(out))  # fmt: skip
        header, _, columns, *_ = (out / "table.md").read_text().splitlines()
        assert header.startswith(name.split(".")[0] + "; ") and windows in header
        assert "no paper column" in header and "Informer (paper)" not in columns


def test_a_bad_horizon_stops_before_any_run(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with pytest.raises(ZooError, match="--horizons 168: ETTm1"):
        run_main(monkeypatch, "--data", ett_file(tmp_path, "ETTm1.csv"), "--horizons", "24", "168", "--out", str(out))
    assert not any(out.glob("*_*_*"))
