"""The embedded JASPAR task end to end, with its honest controls (slow: minutes on two shared cores).

Chance is 0.25 (four balanced classes). Bounds are conservative: over seeds the default
HyenaDNA scored 0.39-0.59 on held-out positions (docs/genomics.md), the shuffled control
0.25, the PWM scanner 0.96-0.99. Both strands (seed 42): the RC-equivariant DNA-xLSTM scored
0.86 / 0.88 on test / test_rc where the plain one scored 0.83 / 0.46; HyenaDNA with post-hoc
conjoining 0.52 / 0.63 (without: 0.44 / 0.25).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from zoo.training import run


def config(run_dir: Path, *overrides: str):
    with initialize_config_module("domains.genomics.configs", version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={run_dir}",
                f"paths.log_dir={run_dir.parent}",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )


@pytest.mark.slow
def test_default_hyenadna_beats_chance_on_held_out_positions(tmp_path):
    metrics = run(config(tmp_path / "default"))["metrics"]
    assert metrics["val/acc"] > 0.6, metrics  # motifs where training put them
    assert metrics["test/acc"] > 0.33, metrics  # motifs in the other half of the sequence
    assert metrics["test/pwm_scanner_acc"] > 0.9 and metrics["test_rc/pwm_scanner_acc"] > 0.9
    assert metrics["test/acc"] < metrics["test/pwm_scanner_acc"]


@pytest.mark.slow
def test_shuffled_labels_stay_at_chance(tmp_path):
    metrics = run(config(tmp_path / "shuffled", "experiment=shuffled", "trainer.max_epochs=5"))["metrics"]
    assert metrics["test/acc"] < 0.32 and metrics["test_rc/acc"] < 0.32, metrics


@pytest.mark.slow
def test_rc_equivariant_dna_xlstm_reads_the_strand_it_never_saw(tmp_path):
    metrics = run(config(tmp_path / "rc", "model=dna_xlstm_rc"))["metrics"]
    assert metrics["test_rc/acc"] > 0.6 and metrics["test/acc"] > 0.6, metrics  # training sites are all forward
    assert abs(metrics["test_rc/acc"] - metrics["test/acc"]) < 0.15, metrics


@pytest.mark.slow
def test_post_hoc_conjoining_lifts_the_reverse_strand(tmp_path):
    metrics = run(config(tmp_path / "ph", "task.rc_conjoin=true"))["metrics"]
    assert metrics["test_rc/acc"] > 0.4, metrics  # the same training without conjoining: 0.25, chance
