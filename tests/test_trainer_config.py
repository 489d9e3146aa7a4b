"""Every Lightning Trainer argument is an override without `+`, and runs cut short mid-epoch end cleanly."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytorch_lightning as pl
import yaml

from tests.test_training import config
from zoo.training import run

BUILT_BY_THE_RUNNER = {"self", "logger", "callbacks", "plugins", "model_registry"}


def test_the_shared_trainer_config_names_every_trainer_argument():
    keys = set(yaml.safe_load((Path(__file__).parents[1] / "zoo/configs/trainer/default.yaml").read_text()))
    wanted = set(inspect.signature(pl.Trainer.__init__).parameters) - BUILT_BY_THE_RUNNER
    assert wanted <= keys, f"add to zoo/configs/trainer/default.yaml: {sorted(wanted - keys)}"


def test_max_steps_before_the_first_validation_ends_cleanly(tmp_path):
    # 4 batches per epoch: 3 steps end the run before any validation, so val/loss never exists
    result = run(config(tmp_path / "toy" / "train" / "r", "trainer.max_steps=3", "trainer.max_epochs=5"))
    assert (tmp_path / "toy" / "train" / "r" / "checkpoints" / "last.ckpt").is_file()
    assert "test/acc" in result["metrics"]


def test_limits_and_accumulation_are_plain_overrides(tmp_path):
    result = run(
        config(
            tmp_path / "toy" / "train" / "l",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.accumulate_grad_batches=2",
            "trainer.gradient_clip_val=1.0",
        )
    )
    assert result["metrics"]["test/acc"] >= 0
