"""Bad values of shared settings are one line naming the key, the value and the allowed range."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.test_training import config
from zoo.errors import ZooError
from zoo.training import run
from zoo.training.validation import check_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size=0: must be >= 1"),
        ("data.batch_size=-1", "data.batch_size=-1: must be >= 1"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': must be a whole number >= -1"),
        ("task.optimizer.lr=-1", "task.optimizer.lr=-1: must be > 0"),
        ("task.optimizer.lr=0", "task.optimizer.lr=0: must be > 0"),
        ("threads=0", "threads=0: must be >= 1"),
        ("trainer.accumulate_grad_batches=1.5", "trainer.accumulate_grad_batches=1.5: must be a whole number >= 1"),
    ],
)
def test_out_of_range_values_are_refused_before_the_run(tmp_path, override, message):
    folder = tmp_path / "toy" / "train" / "bad"
    with pytest.raises(ZooError) as err:
        run(config(folder, override))
    assert str(err.value) == message
    assert not folder.exists()  # refused before the run folder was made


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"data": {"num_envs": 0}}, "data.num_envs=0: must be >= 1"),
        ({"data": {"rollout_steps": -1}}, "data.rollout_steps=-1: must be >= 1"),
        ({"task": {"eval_episodes": 0}}, "task.eval_episodes=0: must be >= 1"),
        ({"data": {"horizon": 0}}, "data.horizon=0: must be >= 1"),
    ],
)
def test_domain_keys_are_checked_where_present(settings, message):
    with pytest.raises(ZooError, match=message):
        check_config(OmegaConf.create(settings))


def test_good_values_and_unset_keys_pass():
    check_config(OmegaConf.create({"data": {"batch_size": 8, "max_length": None}, "threads": None, "other": -5}))
