"""Known defects of the bad-input corpus, fixed at their cause (docs/reliability.md, "Still open"):
another domain's checkpoint or saved model, a data config that needs a path, PPO settings without a
range, a scaffold split with no training molecules, FASTQ faults blamed on the right record, genomics
prediction ids from a `name` column, and time-series fills that make up most of a series.

The CLI side of each is a row of `tests/bad_inputs/<domain>/README.md` (run by `tests/test_bad_inputs.py`);
these tests pin the pieces in process, cheaply.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from domains.chem.data import PropertyDataModule
from domains.genomics.data import SequenceDataModule
from domains.genomics.fasta import read_records
from domains.rl.ppo import PPOConfig, ppo_loss
from domains.timeseries.data import TimeSeriesDataModule
from domains.timeseries.tables import load_series
from tests.test_training import config
from zoo import create_model
from zoo.errors import DataError, ZooError
from zoo.factory import open_weights
from zoo.hub import save_pretrained
from zoo.training import run
from zoo.training.loading import check_domain, recorded_domain, require_domain
from zoo.training.validation import check_config

CORPUS = Path(__file__).parent / "bad_inputs"


# ----------------------------------------------------------------------------- another domain's weights


def saved_task(folder: Path, target: str) -> Path:
    """A saved model whose config.json records the task `target` trained it."""
    torch.manual_seed(0)
    return save_pretrained(
        create_model("test_transformer", num_classes=3), folder, task={"target": target, "hparams": {}}
    )


def test_the_domain_is_read_off_the_recorded_task_class(tmp_path):
    folder = saved_task(tmp_path / "ts", "domains.timeseries.tasks.ForecastTask")
    weights = open_weights(folder)
    assert recorded_domain(weights) == "timeseries"
    with pytest.raises(ZooError) as err:
        check_domain(weights, OmegaConf.create({"domain": "genomics", "mode": "finetune"}))
    assert str(err.value) == (
        f"{folder} is a timeseries model (saved by that domain's task); use zoo timeseries finetune "
        "(this is zoo genomics)"
    )
    assert check_domain(weights, OmegaConf.create({"domain": "timeseries", "mode": "predict"})) is weights
    # a task outside `domains.` (a test fixture, a user's own package) or a bare backbone: nothing to compare
    for target in ("tests.fixtures.toy.CountingTask", None):
        other = (
            saved_task(tmp_path / str(target), target)
            if target
            else save_pretrained(create_model("test_transformer", num_classes=3), tmp_path / "bare")
        )
        assert recorded_domain(open_weights(other)) is None


def test_finetune_from_another_domains_model_is_refused_before_training(tmp_path):
    folder = saved_task(tmp_path / "ts", "domains.timeseries.tasks.ForecastTask")
    run_dir = tmp_path / "toy" / "finetune" / "f"
    with pytest.raises(ZooError, match=r"is a timeseries model .*use zoo timeseries finetune \(this is zoo toy\)"):
        run(config(run_dir, "mode=finetune", f"weights={folder}", "trainer.max_epochs=1"))
    assert not list(run_dir.rglob("*.ckpt"))


def test_python_loaders_that_need_their_domains_task_refuse_others(tmp_path):
    from domains.rl.hub import load_policy

    folder = saved_task(tmp_path / "ts", "domains.timeseries.tasks.ForecastTask")
    with pytest.raises(ZooError) as err:
        load_policy(folder)
    assert str(err.value) == (
        f"{folder} holds a timeseries model (domains.timeseries.tasks.ForecastTask), not a rl model; "
        "give a .ckpt of `zoo rl train` or a `zoo rl export` folder"
    )
    bare = open_weights(save_pretrained(create_model("test_transformer", num_classes=3), tmp_path / "bare"))
    with pytest.raises(ZooError, match=r"holds a backbone only \(no task\), not a code model; give"):
        require_domain(bare, "code", "give a .ckpt")
    assert require_domain(bare, "rl", "", unrecorded_ok=True) is bare  # an old .ckpt: the caller's fallback
    fixture = open_weights(saved_task(tmp_path / "fx", "tests.fixtures.toy.CountingTask"))
    with pytest.raises(ZooError, match=r"holds a model of task tests\.fixtures\.toy\.CountingTask, not a rl"):
        require_domain(fixture, "rl", "", unrecorded_ok=True)


# ----------------------------------------------------------------------------- a data config that needs a path


def timeseries_config(*overrides: str):
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_data_ett_without_a_path_asks_for_one():
    cfg = timeseries_config("data=ett")
    with pytest.raises(ZooError) as err:
        check_config(cfg)
    assert str(err.value).startswith("data=ett needs data.path=<ETTh1.csv|")
    check_config(timeseries_config("data=ett", "data.path=/data/ETTh1.csv"))  # given: no complaint here
    check_config(timeseries_config())  # the default data (embedded CO2) needs no path
    with pytest.raises(DataError, match="data=ett needs data.path="):  # Python callers of the datamodule
        TimeSeriesDataModule(**{k: v for k, v in OmegaConf.to_container(cfg.data).items() if k != "_target_"})


# ----------------------------------------------------------------------------- PPO settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_minibatches": 0}, "task.ppo.num_minibatches=0: must be >= 1"),
        ({"update_epochs": 0}, "task.ppo.update_epochs=0: must be >= 1"),
        ({"gamma": 1.5}, "task.ppo.gamma=1.5: must be in [0, 1]"),
        ({"gae_lambda": -0.1}, "task.ppo.gae_lambda=-0.1: must be in [0, 1]"),
        ({"clip_eps": -0.2}, "task.ppo.clip_eps=-0.2: must be > 0"),
        ({"clip_eps": 0}, "task.ppo.clip_eps=0: must be > 0"),
        ({"gamma": "high"}, "task.ppo.gamma='high': must be a number in [0, 1]"),
    ],
)
def test_ppo_settings_out_of_range_are_one_line(settings, message):
    with pytest.raises(ZooError) as err:
        check_config(OmegaConf.create({"task": {"ppo": settings}}))
    assert str(err.value) == message
    with pytest.raises(ZooError) as err:  # the same line for Python callers
        PPOConfig(**settings)
    assert str(err.value) == message


def test_the_range_bounds_are_inclusive():
    check_config(OmegaConf.create({"task": {"ppo": {"gamma": 1, "gae_lambda": 0.0, "clip_eps": 0.1}}}))
    PPOConfig(gamma=1.0, gae_lambda=1.0)


def test_more_minibatches_than_samples_in_a_rollout_are_refused():
    settings = {"data": {"num_envs": 2, "rollout_steps": 1}, "task": {"ppo": {"num_minibatches": 4}}}
    with pytest.raises(ZooError) as err:
        check_config(OmegaConf.create(settings))
    assert str(err.value).startswith(
        "task.ppo.num_minibatches=4: more than the 2 samples in one rollout (data.num_envs=2 x data.rollout_steps=1)"
    )
    settings["task"]["ppo"]["num_minibatches"] = 2
    check_config(OmegaConf.create(settings))


def test_a_one_sample_minibatch_gives_a_finite_loss():
    # 2 envs x 1 step in 2 minibatches: one sample each, whose advantage has no spread to normalise by
    logits = torch.zeros(1, 1, 2, requires_grad=True)
    one = torch.ones(1, 1)
    loss, _ = ppo_loss(logits, torch.zeros(1, 1, dtype=torch.long), -one, one, one, one, 2 * one, PPOConfig())
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


# ----------------------------------------------------------------------------- chem scaffold split


def test_a_scaffold_split_with_no_training_molecules_says_so():
    path = str(CORPUS / "chem" / "too_few_for_scaffold_split.csv")
    module = PropertyDataModule(path=path, target_columns=["pic50"])
    with pytest.raises(DataError) as err:
        module.task_kwargs()
    assert str(err.value) == (
        f"{path}: data.split=scaffold of 10 molecules leaves the training split empty (train/val/test 0/0/10): too "
        "few molecules for a scaffold split (1 Bemis-Murcko scaffold set(s)); use data.split=random or give more "
        "molecules"
    )
    random = PropertyDataModule(path=path, target_columns=["pic50"], split="random")
    assert len(random.splits[0]) == 8 and np.isfinite(random.task_kwargs()["target_mean"]).all()


# ----------------------------------------------------------------------------- FASTQ faults


def test_a_fastq_record_without_its_plus_line_is_blamed_on_itself():
    path = CORPUS / "genomics" / "missing_plus_line.fq"
    with pytest.raises(DataError) as err:
        list(read_records(path))
    assert str(err.value).startswith(
        f"{path}:1 (record 'r1'): malformed FASTQ: no '+' line after its sequence (lines 2-3) before the next "
        "header '@r2' at line 4"
    )
    with pytest.raises(DataError, match=r"quality_too_short.fq:8 \(record 'r2'\): malformed FASTQ: 5 quality"):
        list(read_records(CORPUS / "genomics" / "quality_too_short.fq"))


def test_fastq_quality_lines_may_start_with_at_or_plus_and_sequences_may_wrap(tmp_path):
    (tmp_path / "ok.fq").write_text("@r1 first\nACGT\nAC\n+r1 first\n@III\nII\n@r2\nGG\n+\n+I\n")
    assert [(r.id, r.seq) for r in read_records(tmp_path / "ok.fq")] == [("r1", "ACGTAC"), ("r2", "GG")]
    (tmp_path / "named.fq").write_text("@r1\nACGT\n+r9\nIIII\n")
    with pytest.raises(DataError, match=r"named.fq:3 \(record 'r1'\): .*'\+' line names 'r9'"):
        list(read_records(tmp_path / "named.fq"))
    (tmp_path / "long.fq").write_text("@r1\nACGT\n+\nIIIIII\n")
    with pytest.raises(DataError, match=r"long.fq:4 \(record 'r1'\): malformed FASTQ: 6 quality values for 4 bases"):
        list(read_records(tmp_path / "long.fq"))


# ----------------------------------------------------------------------------- genomics prediction ids


@pytest.mark.parametrize(("suffix", "sep", "column"), [(".csv", ",", "name"), (".tsv", "\t", "Name")])
def test_genomics_prediction_ids_come_from_a_name_column(tmp_path, suffix, sep, column):
    rng = np.random.default_rng(0)
    train = ["sequence,label"] + ["".join(rng.choice(list("ACGT"), 12)) + f",{'ab'[i % 2]}" for i in range(30)]
    (tmp_path / "train.csv").write_text("\n".join(train) + "\n")
    rows = [f"{column}{sep}sequence"] + [f"probe_{i}{sep}ACGTACGT" for i in range(5)]
    (tmp_path / f"new{suffix}").write_text("\n".join(rows) + "\n")
    module = SequenceDataModule(path=str(tmp_path / "train.csv"), predict_path=str(tmp_path / f"new{suffix}"))
    module.setup("predict")
    batch = next(iter(module.predict_dataloader()))
    assert list(batch["id"]) == [f"probe_{i}" for i in range(5)]
    assert all(e.id.startswith("row") for e in module.splits["train"])  # no id column: ids are rows


def test_a_missing_label_column_names_the_real_key(tmp_path):
    (tmp_path / "t.csv").write_text("sequence,kind\nACGT,a\n")
    with pytest.raises(DataError, match=r"no label column .*data.label_columns=\[name\]"):
        SequenceDataModule(path=str(tmp_path / "t.csv")).setup("fit")


# ----------------------------------------------------------------------------- time-series fills


def sparse_long_csv(tmp_path: Path) -> str:
    """Series 'full' on every one of 600 hours, series 'sparse' on 40 of them."""
    stamps = pd.date_range("2021-01-01", periods=600, freq="h")
    full = pd.DataFrame({"unique_id": "full", "ds": stamps, "y": np.sin(np.arange(600) / 10)})
    sparse = pd.DataFrame({"unique_id": "sparse", "ds": stamps[::15], "y": np.arange(40.0)})
    path = tmp_path / "long.csv"
    pd.concat([full, sparse]).to_csv(path, index=False)
    return str(path)


def test_a_fill_that_would_make_up_most_of_a_series_is_refused(tmp_path, caplog):
    path = sparse_long_csv(tmp_path)
    with pytest.raises(DataError) as err:
        load_series(path, fill="interpolate")
    assert str(err.value) == (
        f"{path}: series 'sparse' would be 560 of 600 values filled by data.fill=interpolate (93%, above "
        "data.max_fill_fraction=0.2); give it more rows, leave it out with data.columns=[...], or allow it with "
        "data.max_fill_fraction=1"
    )
    with caplog.at_level(logging.INFO, logger="domains.timeseries.tables"):
        frame, _ = load_series(path, fill="interpolate", max_fill_fraction=1)
    assert frame.shape == (600, 2) and not frame.isna().any().any()
    assert "data.fill=interpolate filled 560 of 600 values of series 'sparse'" in caplog.text
    assert len(load_series(path, columns=["full"], fill="interpolate")[0]) == 600  # the full series alone: no fill


def test_the_fill_limit_is_a_data_setting(tmp_path):
    path = sparse_long_csv(tmp_path)
    cfg = timeseries_config(f"data.path={path}", "data.fill=ffill", "data.features=M", "data.target=full")
    assert cfg.data.max_fill_fraction == 0.2
    settings = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"}
    with pytest.raises(DataError, match=r"series 'sparse' would be 560 of 600 values filled by data.fill=ffill"):
        TimeSeriesDataModule(**settings).setup("fit")
    module = TimeSeriesDataModule(**{**settings, "max_fill_fraction": 0.95})
    module.setup("fit")
    assert list(module.frame.columns) == ["sparse", "full"]
    with pytest.raises(ZooError, match=r"data.max_fill_fraction=1.5: must be in \[0, 1\]"):
        check_config(timeseries_config("data.max_fill_fraction=1.5"))
