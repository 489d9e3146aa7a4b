"""`zoo timeseries` end to end on tiny files (through `zoo.training.run`, as the CLI): train -> predict -> eval,
baselines, other backbones, audio, bad data."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module

from tests.zoo_cli import one_line_error, zoo
from zoo.errors import DataError, ZooError
from zoo.registry import is_model
from zoo.training import run

FAST = ["trainer.enable_progress_bar=false", "seq_len=48", "label_len=24", "horizon=12"]


def config(run_dir: Path, *overrides: str):
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        return compose(
            "train", overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *FAST, *overrides]
        )


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory) -> str:
    """Hourly load with a daily cycle and a trend, plus a temperature covariate."""
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


def test_train_predict_eval_round_trip(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.target=load", "model=informer", "model.name=test_informer"]
    trained = run(config(tmp_path / "train", *data, "trainer.max_epochs=2"))
    metrics = trained["metrics"]
    for name in ("mse", "mae", "rmse", "mape", "smape", "mase"):
        assert math.isfinite(metrics[f"test/{name}"]) and math.isfinite(metrics[f"test/original/{name}"])
    assert metrics["test/mase"] == pytest.approx(metrics["test/original/mase"], rel=1e-4)  # scale-free

    out = tmp_path / "forecast.csv"
    predicted = run(
        config(tmp_path / "predict", *data, "mode=predict", f"ckpt_path={trained['best_checkpoint']}", f"output={out}")
    )
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert predicted["rows"] == len(rows) == 12 and list(rows[0]) == ["ds", "horizon", "load"]
    assert rows[0]["ds"] == "2021-01-31T00:00:00" and rows[-1]["horizon"] == "12"
    assert out.with_suffix(".png").stat().st_size > 1000

    evaluated = run(config(tmp_path / "eval", *data, "mode=eval", f"ckpt_path={trained['best_checkpoint']}"))
    assert evaluated["metrics"]["test/mse"] == pytest.approx(metrics["test/mse"], rel=1e-5)
    # one channel: the original-scale errors are the standardised ones times the training std
    std = torch.load(trained["best_checkpoint"], weights_only=True)["hyper_parameters"]["scaler_std"][0]
    assert metrics["test/original/mse"] == pytest.approx(metrics["test/mse"] * std**2, rel=1e-4)
    assert metrics["test/original/mae"] == pytest.approx(metrics["test/mae"] * std, rel=1e-4)
    with pytest.raises(ZooError, match=r"trained on channels \['load'\].*gives \['temp'\]"):
        run(
            config(
                tmp_path / "wrong",
                *data[:-2],
                "data.target=temp",
                "mode=eval",
                f"ckpt_path={trained['best_checkpoint']}",
            )
        )


def test_finetune_starts_from_the_trained_weights(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.target=load", "model=informer", "model.name=test_informer"]
    trained = run(config(tmp_path / "train", *data, "trainer.max_epochs=1"))
    weights = f"weights={trained['best_checkpoint']}"
    unchanged = run(
        config(tmp_path / "zero", *data, "mode=finetune", weights, "trainer.max_epochs=0", "trainer.min_epochs=0")
    )
    assert unchanged["metrics"]["test/mse"] == pytest.approx(trained["metrics"]["test/mse"], rel=1e-5)
    frame = pd.read_csv(series_csv).assign(load=lambda f: f.load * 1.5 + 3.0)  # another site: same shape, other level
    frame.to_csv(tmp_path / "other.csv", index=False)
    tuned = run(
        config(
            tmp_path / "tuned",
            f"data.path={tmp_path / 'other.csv'}",
            *data[1:],
            "mode=finetune",
            weights,
            "trainer.max_epochs=1",
            "task.freeze_backbone=true",
        )
    )
    assert math.isfinite(tuned["metrics"]["test/mse"]) and Path(tuned["best_checkpoint"]).is_file()


def test_dlinear_learns_and_beats_the_naive_baselines(tmp_path, series_csv):
    data = [f"data.path={series_csv}", "data.target=load", "data.features=MS"]
    dlinear = run(
        config(tmp_path / "dlinear", *data, "model=dlinear", "trainer.max_epochs=6", "task.optimizer.lr=0.01")
    )["metrics"]
    last = run(config(tmp_path / "last", *data, "model=repeat_last"))["metrics"]
    seasonal = run(config(tmp_path / "seasonal", *data, "model=seasonal_naive"))["metrics"]
    assert json.loads((tmp_path / "seasonal" / "metrics.json").read_text())["metrics"] == seasonal
    assert dlinear["test/mse"] < seasonal["test/mse"] < last["test/mse"], (
        dlinear["test/mse"],
        seasonal["test/mse"],
        last["test/mse"],
    )


def test_classic_ar_and_naive_predict_without_training(tmp_path, series_csv):
    out = tmp_path / "ar.csv"
    result = run(
        config(
            tmp_path / "ar",
            f"data.path={series_csv}",
            "data.features=M",
            "model=classic_ar",
            "model.kwargs.lags=24",
            "mode=predict",
            f"output={out}",
        )
    )
    frame = pd.read_csv(out)
    assert result["rows"] == 12 and list(frame.columns) == ["ds", "horizon", "temp", "load"]
    # a daily cycle plus noise: the AR forecast of the next 12 hours follows the cycle
    expected = 2 * np.sin(2 * np.pi * np.arange(720, 732) / 24) + 0.01 * np.arange(720, 732)
    assert np.abs(frame.load.to_numpy() - expected).max() < 0.5


BACKBONES = {
    "transformer": "test_transformer",
    "s5": "test_s5",
    "hyena": "test_hyenadna",
    "mamba": "test_mamba",
    "lstm": "test_lstm",
}


@pytest.mark.parametrize("config_name,tiny", BACKBONES.items())
def test_any_backbone_is_a_forecaster(tmp_path, config_name, tiny):
    """Every backbone config names a registered model.

    Its tiny variant forecasts (B, horizon, channels) with gradients.
    """
    from domains.timeseries.tasks import ForecastTask

    assert is_model(config(tmp_path, f"model={config_name}").model.name)
    task = ForecastTask(
        model=tiny,
        seq_len=48,
        label_len=24,
        horizon=12,
        features="M",
        channels=["temp", "load"],
        freq="h",
        instance_norm=True,
    )
    batch = {"x": torch.randn(3, 48, 2), "y": torch.randn(3, 36, 2)}
    pred = task.forecast(batch)
    assert pred.shape == (3, 12, 2)
    torch.nn.functional.mse_loss(pred, task.target(batch)).backward()
    assert all(p.grad is not None for p in task.backbone.parameters() if p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize("config_name,tiny", BACKBONES.items())
def test_any_backbone_learns_the_daily_cycle(tmp_path, series_csv, config_name, tiny):
    data = [f"data.path={series_csv}", "data.target=load", "trainer.max_epochs=3"]
    learned = run(config(tmp_path / "m", *data, f"model={config_name}", f"model.name={tiny}"))["metrics"]["test/mse"]
    naive = run(config(tmp_path / "naive", *data, "model=repeat_last"))["metrics"]["test/mse"]
    assert learned < 0.5 * naive, (learned, naive)


@pytest.mark.parametrize("model", ["transformer", "arnet"])
def test_other_models_forecast_through_the_same_task(tmp_path, series_csv, model):
    extra = (
        ["model.name=test_transformer"] if model == "transformer" else ["task.sparsity=0.2", "task.instance_norm=false"]
    )
    metrics = run(
        config(
            tmp_path / model,
            f"data.path={series_csv}",
            "data.features=M",
            f"model={model}",
            "trainer.max_epochs=1",
            *extra,
        )
    )["metrics"]
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
            wave = np.sin(2 * np.pi * pitch * (1 + 0.05 * rng.standard_normal()) * t) + 0.1 * rng.standard_normal(
                len(t)
            )
            soundfile.write(tmp_path / "clips" / label / f"{i}.wav", wave.astype(np.float32), 16000)
    common = [
        "experiment=audio",
        f"data.root={tmp_path / 'clips'}",
        "data.sample_rate=4000",
        "data.n_mels=16",
        "data.batch_size=4",
        "model=transformer",
        "model.name=test_transformer",
        "monitor=val/loss",
        "monitor_mode=min",
    ]
    trained = run(config(tmp_path / "train", *common, "trainer.max_epochs=8"))
    assert trained["metrics"]["test/acc"] >= 0.75  # chance is 0.5
    out = tmp_path / "labels.csv"
    run(
        config(
            tmp_path / "predict", *common, "mode=predict", f"ckpt_path={trained['best_checkpoint']}", f"output={out}"
        )
    )
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 16 and list(rows[0]) == ["path", "label", "p_high", "p_low"]
    assert np.mean([(r["label"] in Path(r["path"]).parent.name) for r in rows]) >= 0.75


def broken_copy(series_csv: str, folder: Path, edit) -> Path:
    frame = pd.read_csv(series_csv).astype({"load": object})
    edit(frame)
    frame.to_csv(folder / "broken.csv", index=False)
    return folder / "broken.csv"


BAD_INPUTS = {  # edit of the 720-row hourly file -> what the one-line error says
    "unsorted": (
        lambda f: f.loc.__setitem__((40, "date"), f.date[30]),
        r"broken.csv:42: timestamp .* earlier than the row before",
    ),
    "duplicate": (lambda f: f.loc.__setitem__((40, "date"), f.date[39]), r"broken.csv:42: duplicate timestamp"),
    "gap": (lambda f: f.drop(index=[100, 101, 102], inplace=True), r"broken.csv:102: 3 timestamp\(s\) missing"),
    "nan": (lambda f: f.loc.__setitem__((60, "load"), np.nan), r"broken.csv:62: column 'load' is empty"),
    "text": (
        lambda f: f.loc.__setitem__((70, "load"), "12,5 kW"),
        r"broken.csv:72: column 'load' value '12,5 kW' is not a number",
    ),
    "target": (lambda f: None, r"no target column 'price'"),
    "horizon": (lambda f: None, r"the train split has .* fewer than seq_len \+ horizon = 1048"),
}


def cli_overrides(name: str, path: Path) -> list[str]:
    extra = {"target": ["data.target=price"], "horizon": ["horizon=1000"]}.get(name, [])
    return [f"data.path={path}", "data.target=load", "seq_len=48", "label_len=24", *extra, "trainer.max_epochs=1"]


# A subprocess per case costs seconds of imports: one runs by default, the rest with the slow tests.
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n == "gap" else pytest.mark.slow) for n in sorted(BAD_INPUTS)]
)
def test_bad_input_is_one_line_and_exit_code_2_from_the_cli(tmp_path, series_csv, name):
    edit, message = BAD_INPUTS[name]
    result = zoo(
        "timeseries", "train", *cli_overrides(name, broken_copy(series_csv, tmp_path, edit)), runs=tmp_path / "runs"
    )
    assert re.search(message, one_line_error(result))


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_every_bad_input_raises_its_data_error(tmp_path, series_csv, name):
    edit, message = BAD_INPUTS[name]
    with pytest.raises(DataError, match=message):
        run(
            config(tmp_path / "bad", *cli_overrides(name, broken_copy(series_csv, tmp_path, edit)), "model=repeat_last")
        )


def test_bad_data_stops_the_run_with_a_data_error(tmp_path, series_csv):
    # The CLI prints a DataError as one line with exit code 2 (tests/test_cli.py checks that path).
    with pytest.raises(DataError, match="no target column 'price'.*data.target"):
        run(config(tmp_path / "bad", f"data.path={series_csv}", "data.target=price"))
    with pytest.raises(DataError, match="no target column 'price'"):
        run(config(tmp_path / "bad_baseline", f"data.path={series_csv}", "data.target=price", "model=seasonal_naive"))


def demo_config(run_dir: Path, *overrides: str):
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        return compose(
            "train", overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *overrides]
        )


def test_demo_overrides_compose_and_name_a_logged_metric(tmp_path):
    from domains.timeseries import DEMO
    from domains.timeseries.metrics import NAMES

    assert demo_config(tmp_path, *DEMO["train"]).trainer.max_epochs == 2
    demo_config(tmp_path, "mode=predict", *DEMO["predict"], "ckpt_path=x.ckpt")  # the demo runner adds ckpt_path
    assert DEMO["metric"] in {f"test/{name}" for name in NAMES}


@pytest.mark.slow
def test_demo_trains_predicts_and_beats_seasonal_naive(tmp_path):
    from domains.timeseries import DEMO

    trained = run(demo_config(tmp_path / "train", *DEMO["train"]))
    predicted = run(
        demo_config(tmp_path / "predict", "mode=predict", *DEMO["predict"], f"ckpt_path={trained['best_checkpoint']}")
    )
    assert predicted["rows"] == 24 and Path(predicted["predictions"]).with_suffix(".png").is_file()
    naive = run(demo_config(tmp_path / "naive", "model=seasonal_naive"))["metrics"]
    assert trained["metrics"][DEMO["metric"]] < naive[DEMO["metric"]], (
        trained["metrics"][DEMO["metric"]],
        naive[DEMO["metric"]],
    )
