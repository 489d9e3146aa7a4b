"""An interrupted ETTh1 benchmark cell resumes from its last.ckpt and keeps one continuous log.

Paper-size cells take longer than a working session on a CPU, so repeating the command
must continue the run, not restart it or lose the epochs already logged. The data is a
synthetic hourly series in the ETT layout (20 months, so the 12/4/4 split applies).
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pandas as pd
import pytest

from benchmarks.timeseries_ett import epochs_run, model_overrides, run_cell

LIMITS = ["++trainer.limit_train_batches=3", "++trainer.limit_val_batches=2", "++trainer.limit_test_batches=2"]


@pytest.fixture(scope="module")
def ett_like(tmp_path_factory):
    hours = 20 * 30 * 24
    t = np.arange(hours)
    noise = np.random.default_rng(0).normal(size=(hours, 2))
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2016-07-01", periods=hours, freq="h"),
            "HUFL": np.sin(2 * np.pi * t / 24) + 0.1 * noise[:, 0],
            "OT": np.cos(2 * np.pi * t / 168) + 0.1 * noise[:, 1],
        }
    )
    path = tmp_path_factory.mktemp("ett") / "ett_like.csv"
    frame.to_csv(path, index=False)
    return str(path)


def train_informer(data: str, folder, epochs: int) -> dict:
    args = argparse.Namespace(informer="informer", epochs=epochs, limit_train_batches=3, ar_lags=48)
    return run_cell(data, "M", 24, [*model_overrides("informer", "M", 24, args), *LIMITS], folder)


def val_rows(folder) -> list[dict[str, str]]:
    return [row for row in csv.DictReader((folder / "logs" / "metrics.csv").open()) if row["val/loss"]]


def test_interrupted_cell_resumes_from_last_checkpoint_with_one_log(ett_like, tmp_path):
    folder = tmp_path / "M_24_informer"
    train_informer(ett_like, folder, epochs=1)
    # as if killed during epoch 2: no metrics.json, and a row logged after the checkpoint; the
    # first epoch's val/loss is marked, so a run that restarted instead of resuming would show
    log = folder / "logs" / "metrics.csv"
    (folder / "metrics.json").unlink()
    rows = list(csv.DictReader(log.open()))
    next(row for row in rows if row["val/loss"])["val/loss"] = "0.123"
    rows.append({"epoch": "1", "step": "1000000", "val/loss": "0.5"})
    with log.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    result = train_informer(ett_like, folder, epochs=3)

    rows = val_rows(folder)
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]  # continued after epoch 1, not restarted
    assert rows[0]["val/loss"] == "0.123"  # the first run's epoch kept as it was logged, not rerun
    steps = [int(row["step"]) for row in csv.DictReader((folder / "logs" / "metrics.csv").open())]
    assert steps == sorted(steps)  # the stale row of the cut-short epoch is gone
    assert epochs_run(folder).startswith("3 (")
    assert not (folder / "logs" / "metrics.before_resume.csv").exists()
    assert "test/mse" in result["metrics"]


def test_cell_stopped_in_its_first_epoch_starts_clean(ett_like, tmp_path):
    folder = tmp_path / "M_24_informer"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "metrics.csv").write_text("epoch,step,val/loss\n0,5,9.9\n")
    train_informer(ett_like, folder, epochs=1)
    rows = val_rows(folder)
    assert len(rows) == 1 and rows[0]["val/loss"] != "9.9"  # the stale log went with the folder
