"""Forecasting baselines as registered closed-form models inside `run`, the data contract, declared capabilities.

The reference numbers below were produced by the old baseline runner
(`domains.timeseries.baselines.run_baseline`, which replaced `run` through a
`runner:` model config) on the same file and windows, before it was deleted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from statsmodels.tsa.ar_model import AutoReg

from domains.timeseries.data import TimeSeriesDataModule
from domains.timeseries.tasks import ForecastTask
from zoo import from_pretrained
from zoo.errors import ZooError
from zoo.models.base import SequenceBackbone
from zoo.training import run

FAST = ["trainer.enable_progress_bar=false", "seq_len=48", "label_len=24", "horizon=12"]


def config(run_dir: Path, *overrides: str):
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        return compose(
            "train", overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *FAST, *overrides]
        )


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory) -> str:
    """The file of tests/test_timeseries_cli.py: hourly load (daily cycle + trend) and a temperature covariate."""
    t = np.arange(720)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=720, freq="h"),
            "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(720),
            "load": 2 * np.sin(2 * np.pi * t / 24) + 0.01 * t + 0.1 * rng.standard_normal(720),
        }
    )
    path = tmp_path_factory.mktemp("data") / "load.csv"
    frame.to_csv(path, index=False)
    return str(path)


# What the old baseline runner reported (target `load`, seq_len 48, horizon 12).
OLD_RUNNER = {
    ("repeat_last", "S", ()): {
        "val/mse": 1.112871297, "val/mae": 0.8788314871, "val/mase": 7.196604009, "test/mse": 1.084948459,
        "test/mae": 0.8635011831, "test/smape": 0.4499064735, "test/original/mse": 4.305368412,
        "test/original/mase": 7.071066715,
    },
    ("seasonal_naive", "MS", ()): {  # season from the frequency: 24 hours
        "val/mse": 0.02120279163, "val/mae": 0.1285079206, "val/mase": 1.052329861, "test/mse": 0.01996515202,
        "test/mae": 0.1239996936, "test/smape": 0.07406499363, "test/original/mse": 0.07922711364,
        "test/original/mase": 1.015412745,
    },
    ("seasonal_naive", "M", ("model.kwargs.season=7",)): {
        "val/mse": 2.296640552, "val/mae": 1.336280647, "val/mase": 9.639883602, "test/mse": 2.222720691,
        "test/mae": 1.316718055, "test/smape": 1.121748162, "test/original/mse": 3.768883961,
        "test/original/mase": 9.488580021,
    },
    ("classic_ar", "M", ("model.kwargs.lags=24",)): {
        "val/mse": 0.01130136385, "val/mae": 0.07531849887, "val/mase": 0.5280877409, "test/mse": 0.01300117853,
        "test/mae": 0.08373008767, "test/smape": 0.1521597636, "test/original/mse": 0.01195131241,
        "test/original/mase": 0.5821124723,
    },
    ("classic_ar", "MS", ()): {  # lags = seq_len
        "val/mse": 0.00285786339, "val/mae": 0.04408478216, "val/mase": 0.3610029052, "test/mse": 0.00293032338,
        "test/mae": 0.0420553339, "test/smape": 0.02518400681, "test/original/mse": 0.01162831434,
        "test/original/mase": 0.344384093,
    },
    ("classic_ar", "S", ("model.kwargs.lags=5",)): {
        "val/mse": 1.084799086, "val/mae": 0.7849833301, "val/mase": 6.428097154, "test/mse": 2.053611072,
        "test/mae": 1.125434526, "test/smape": 0.9359813142, "test/original/mse": 8.149283192,
        "test/original/mase": 9.215995037,
    },
}  # fmt: skip
# The old runner's `predict` of classic_ar (features M, lags 24): the first hours of temp, load after the series.
OLD_AR_FORECAST = [[0.9912381816, 7.2213821153], [0.9745938152, 7.7708596024], [0.8532652691, 8.2564499703]]
# What every trained forecaster reports (tests/test_timeseries_cli.py trains them).
TRAINED_KEYS = {
    f"{split}/{name}" for split in ("val", "test") for name in ("loss", "mse", "mae", "rmse", "mape", "smape", "mase")
}
TRAINED_KEYS |= {f"test/original/{name}" for name in ("mse", "mae", "rmse", "mape", "smape", "mase")}


@pytest.mark.parametrize("model,features,extra", OLD_RUNNER, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_baselines_through_run_equal_the_old_runner(tmp_path, series_csv, model, features, extra):
    data = [f"data.path={series_csv}", "data.target=load", f"data.features={features}"]
    result = run(config(tmp_path / "run", *data, f"model={model}", *extra))
    metrics = result["metrics"]
    assert set(metrics) >= TRAINED_KEYS, TRAINED_KEYS - set(metrics)
    for key, old in OLD_RUNNER[model, features, extra].items():
        assert metrics[key] == pytest.approx(old, rel=2e-6), key  # float32 forecasts against the old float64 ones
    assert metrics["val/loss"] == pytest.approx(metrics["val/mse"], rel=1e-6)  # task.loss=mse
    assert Path(result["best_checkpoint"]).is_file()


def test_classic_ar_checkpoint_round_trips_its_coefficients(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.features=M", "model=classic_ar", "model.kwargs.lags=24"]
    trained = run(config(tmp_path / "train", *data))
    ckpt = trained["best_checkpoint"]

    # the buffers hold statsmodels' least-squares fit on the standardised training rows, per channel
    state = torch.load(ckpt, weights_only=True)
    mean, std = (np.array(state["hyper_parameters"][k]) for k in ("scaler_mean", "scaler_std"))
    rows = pd.read_csv(series_csv)[["temp", "load"]].to_numpy()[: int(720 * 0.7)]
    scaled = (rows - mean) / std
    for c in range(2):
        params = AutoReg(scaled[:, c], lags=24, trend="c").fit().params
        np.testing.assert_allclose(state["state_dict"]["backbone.coefficients"][c].numpy(), params[1:], rtol=1e-4)
        np.testing.assert_allclose(state["state_dict"]["backbone.intercept"][c].item(), params[0], atol=1e-6)
    restored = from_pretrained(ckpt)
    assert torch.equal(restored.coefficients, state["state_dict"]["backbone.coefficients"])

    evaluated = run(config(tmp_path / "eval", *data, "mode=eval", f"ckpt_path={ckpt}"))
    for key in ("test/mse", "test/mae", "test/original/mse", "test/original/mase"):
        assert evaluated["metrics"][key] == pytest.approx(trained["metrics"][key], rel=1e-6), key

    forecasts = {}
    for name, source in (("restored", [f"ckpt_path={ckpt}"]), ("fresh", [])):  # fresh: fitted by predict itself
        out = tmp_path / f"{name}.csv"
        predicted = run(config(tmp_path / name, *data, "mode=predict", f"output={out}", *source))
        assert predicted["rows"] == 12 and out.with_suffix(".png").stat().st_size > 1000
        forecasts[name] = pd.read_csv(out)
    assert list(forecasts["fresh"].columns) == ["ds", "horizon", "temp", "load"]
    np.testing.assert_allclose(forecasts["restored"][["temp", "load"]], forecasts["fresh"][["temp", "load"]], rtol=1e-5)
    np.testing.assert_allclose(forecasts["fresh"][["temp", "load"]].to_numpy()[:3], OLD_AR_FORECAST, rtol=1e-5)


def test_naive_checkpoint_evaluates_with_the_data_season(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.target=load", "model=seasonal_naive"]
    trained = run(config(tmp_path / "train", *data))
    state = torch.load(trained["best_checkpoint"], weights_only=True)
    assert state["hyper_parameters"]["model_kwargs"]["season"] == 24  # hourly rows: one day
    evaluated = run(config(tmp_path / "eval", *data, "mode=eval", f"ckpt_path={trained['best_checkpoint']}"))
    assert evaluated["metrics"]["test/mse"] == pytest.approx(trained["metrics"]["test/mse"], rel=1e-6)


# ----------------------------------------------------------------------------- the data contract


def datamodule(series_csv: str, stage: str = "fit", **kwargs) -> TimeSeriesDataModule:
    dm = TimeSeriesDataModule(path=series_csv, **{"seq_len": 48, "label_len": 24, "horizon": 12, **kwargs})
    dm.setup(stage)
    return dm


def test_contract_with_other_channels_is_one_line(series_csv):
    task = ForecastTask(model="repeat_last", seq_len=48, label_len=24, horizon=12, channels=["load"], freq="h")
    assert task.data_contract() == {
        "channels": ["load"], "features": "S", "freq": "h", "seq_len": 48, "label_len": 24, "horizon": 12,
    }  # fmt: skip
    dm = datamodule(series_csv, target="temp")
    with pytest.raises(ZooError, match=r"load.csv: this model was trained on channels \['load'\].*gives \['temp'\]"):
        dm.accept_contract(task.data_contract())
    with pytest.raises(ZooError, match=r"trained on data of frequency 'd' but the data's is 'h'.*resample"):
        datamodule(series_csv, target="load").accept_contract({**task.data_contract(), "freq": "d"})


def test_contract_windows_are_adopted(series_csv):
    """The windows are how the file is cut: a restored model's lengths replace the configured ones."""
    dm = datamodule(series_csv, target="load")
    dm.accept_contract({"channels": ["load"], "freq": "h", "seq_len": 24, "label_len": 12, "horizon": 6})
    assert dm.predict_set[0]["x"].shape == (24, 1) and dm.predict_set[0]["y"].shape == (18, 1)
    assert dm.test_set[0]["x"].shape == (24, 1) and len(dm.test_set) == 144 - 6 + 1  # every test row a target
    predicting = datamodule(series_csv, target="load", stage="predict")
    predicting.accept_contract({"channels": ["load"], "seq_len": 24})
    assert predicting.predict_set[0]["x"].shape == (24, 1) and predicting.test_set is None


# ----------------------------------------------------------------------------- capabilities


class WindowProbe(SequenceBackbone):
    """A model that is none of the zoo's forecasters by file, declaring the window kind."""

    forecaster = "window"

    def __init__(self, seq_len: int = 8, pred_len: int = 2, in_features: int = 1):
        super().__init__()
        self.pred_len = pred_len
        self.gain = torch.nn.Parameter(torch.tensor(2.0))
        self.init_head(in_features)

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * x[:, -1:].expand(-1, self.pred_len, -1)


def probe_window_forecaster(**kw) -> WindowProbe:
    return WindowProbe(**kw)


class OddProbe(WindowProbe):
    forecaster = "diffusion"


def probe_odd_forecaster(**kw) -> OddProbe:
    return OddProbe(**kw)


@pytest.fixture
def probes(monkeypatch):
    from zoo import list_models, registry

    list_models()  # load the registry first, then add the probes for this test only
    for factory in (probe_window_forecaster, probe_odd_forecaster):
        monkeypatch.setitem(registry._entrypoints, factory.__name__, factory)
        monkeypatch.setitem(registry._families, factory.__name__, "informer")  # a family name must not matter


def test_the_declared_forecaster_kind_decides_how_the_task_drives_a_model(probes):
    task = ForecastTask(
        model="probe_window_forecaster", seq_len=8, label_len=4, horizon=2, features="MS", channels=["a", "b"]
    )
    assert task.kind == "window"
    assert task.backbone.zoo_config["kwargs"] == {"in_features": 2, "seq_len": 8, "pred_len": 2}
    x = torch.randn(3, 8, 2)
    torch.testing.assert_close(task.forecast({"x": x}), 2 * x[:, -1:, -1:].expand(-1, 2, -1))
    with pytest.raises(ZooError, match=r"forecaster='diffusion'.*encoder_decoder, window, autoregressive"):
        ForecastTask(model="probe_odd_forecaster", seq_len=8, horizon=2, label_len=4)
