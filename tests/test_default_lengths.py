"""Defaults agree within a domain: the longest input the default data config allows fits the default model."""

from __future__ import annotations

import random

from hydra import compose, initialize_config_module

from zoo.training import run


def test_genomics_longest_allowed_sequence_trains_with_every_default(tmp_path):
    with initialize_config_module("domains.genomics.configs", version_base="1.3"):
        probe = compose("train")
    longest = int(probe.data.max_length)
    rng = random.Random(0)
    rows = ["sequence,label"] + [f"{''.join(rng.choice('ACGT') for _ in range(longest))},{i % 2}" for i in range(40)]
    data = tmp_path / "longest.csv"
    data.write_text("\n".join(rows) + "\n")
    with initialize_config_module("domains.genomics.configs", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.log_dir={tmp_path}",
                f"data.path={data}",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=1",
                "trainer.enable_progress_bar=false",
                "data.batch_size=8",
            ],
        )
    result = run(cfg)  # no override but the file: the default model takes the default max_length
    assert "test/acc" in result["metrics"]
