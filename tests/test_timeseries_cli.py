"""`zoo timeseries` end to end on tiny files (through `zoo.training.run`, as the CLI): train -> predict -> eval,
baselines, other backbones, audio, bad data."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from zoo.errors import DataError
from zoo.training import run

FAST = ["trainer.enable_progress_bar=false", "seq_len=48", "label_len=24", "horizon=12"]


def config(run_dir: Path, *overrides: str):
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *FAST, *overrides])


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory) -> str:
    """Hourly load with a daily cycle and a trend, plus a temperature covariate."""
    t = np.arange(720)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "date": pd.date_range("2021-01-01", periods=720, freq="h"),
        "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(720),
        "load": 2 * np.sin(2 * np.pi * t / 24) + 0.01 * t + 0.1 * rng.standard_normal(720),
    })
    path = tmp_path_factory.mktemp("data") / "load.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_train_predict_eval_round_trip(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.target=load", "model=informer", "model.name=test_informer"]
    trained = run(config(tmp_path / "train", *data, "trainer.max_epochs=2"))
    metrics = trained["metrics"]
    for name in ("mse", "mae", "rmse", "mape", "smape", "mase"):
        assert math.isfinite(metrics[f"test/{name}"]) and math.isfinite(metrics[f"test/original/{name}"])
    assert metrics["test/mase"] == pytest.approx(metrics["test/original/mase"], rel=1e-4)  # scale-free

    out = tmp_path / "forecast.csv"
    predicted = run(config(tmp_path / "predict", *data, "mode=predict", f"ckpt_path={trained['best_checkpoint']}", f"output={out}"))
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert predicted["rows"] == len(rows) == 12 and list(rows[0]) == ["ds", "horizon", "load"]
    assert rows[0]["ds"] == "2021-01-31T00:00:00" and rows[-1]["horizon"] == "12"
    assert out.with_suffix(".png").stat().st_size > 1000

    evaluated = run(config(tmp_path / "eval", *data, "mode=eval", f"ckpt_path={trained['best_checkpoint']}"))
    assert evaluated["metrics"]["test/mse"] == pytest.approx(metrics["test/mse"], rel=1e-5)


def test_dlinear_learns_and_beats_the_naive_baselines(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.target=load", "data.features=MS"]
    dlinear = run(config(tmp_path / "dlinear", *data, "model=dlinear", "trainer.max_epochs=6", "task.optimizer.lr=0.01"))["metrics"]
    last = run(config(tmp_path / "last", *data, "model=repeat_last"))["metrics"]
    seasonal = run(config(tmp_path / "seasonal", *data, "model=seasonal_naive"))["metrics"]
    assert json.loads((tmp_path / "seasonal" / "metrics.json").read_text())["metrics"] == seasonal
    assert dlinear["test/mse"] < seasonal["test/mse"] < last["test/mse"], (dlinear["test/mse"], seasonal["test/mse"], last["test/mse"])


def test_classic_ar_and_naive_predict_without_training(tmp_path, series_csv):
    out = tmp_path / "ar.csv"
    result = run(config(tmp_path / "ar", f"data.path={series_csv}", "data.features=M", "model=classic_ar", "model.kwargs.lags=24", "mode=predict", f"output={out}"))
    frame = pd.read_csv(out)
    assert result["rows"] == 12 and list(frame.columns) == ["ds", "horizon", "temp", "load"]
    # a daily cycle plus noise: the AR forecast of the next 12 hours follows the cycle
    expected = 2 * np.sin(2 * np.pi * np.arange(720, 732) / 24) + 0.01 * np.arange(720, 732)
    assert np.abs(frame.load.to_numpy() - expected).max() < 0.5


@pytest.mark.parametrize("model", ["transformer", "arnet"])
def test_other_models_forecast_through_the_same_task(tmp_path, series_csv, model):
    extra = ["model.name=test_transformer"] if model == "transformer" else ["task.sparsity=0.2", "task.instance_norm=false"]
    metrics = run(config(tmp_path / model, f"data.path={series_csv}", "data.features=M", f"model={model}", "trainer.max_epochs=1", *extra))["metrics"]
    assert math.isfinite(metrics["test/mse"])
    if model == "arnet":
        assert metrics["train/lambda"] > 0


def test_audio_folder_classification(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    rng = np.random.default_rng(0)
    for label, pitch in (("low", 200.0), ("high", 1200.0)):
        (tmp_path / "clips" / label).mkdir(parents=True)
        for i in range(8):
            t = np.arange(int(16000 * 0.25)) / 16000  # recorded at 16 kHz, resampled to 4 kHz
            wave = np.sin(2 * np.pi * pitch * (1 + 0.05 * rng.standard_normal()) * t) + 0.1 * rng.standard_normal(len(t))
            soundfile.write(tmp_path / "clips" / label / f"{i}.wav", wave.astype(np.float32), 16000)
    common = ["experiment=audio", f"data.root={tmp_path / 'clips'}", "data.sample_rate=4000", "data.n_mels=16", "data.batch_size=4",
              "model=transformer", "model.name=test_transformer", "monitor=val/loss", "monitor_mode=min"]
    trained = run(config(tmp_path / "train", *common, "trainer.max_epochs=8"))
    assert trained["metrics"]["test/acc"] >= 0.75  # chance is 0.5
    out = tmp_path / "labels.csv"
    run(config(tmp_path / "predict", *common, "mode=predict", f"ckpt_path={trained['best_checkpoint']}", f"output={out}"))
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 16 and list(rows[0]) == ["path", "label", "p_high", "p_low"]
    assert np.mean([(r["label"] in Path(r["path"]).parent.name) for r in rows]) >= 0.75


def test_bad_data_stops_the_run_with_a_data_error(tmp_path, series_csv):
    # The CLI prints a DataError as one line with exit code 2 (tests/test_cli.py checks that path).
    with pytest.raises(DataError, match="no target column 'price'.*data.target"):
        run(config(tmp_path / "bad", f"data.path={series_csv}", "data.target=price"))
    with pytest.raises(DataError, match="no target column 'price'"):
        run(config(tmp_path / "bad_baseline", f"data.path={series_csv}", "data.target=price", "model=seasonal_naive"))
