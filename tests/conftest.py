"""Test-wide settings: tiny models run fastest on one thread (and CI has two cores to share)."""

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    """Every test writes its run folders under its own tmp dir, never into the checkout."""
    monkeypatch.setenv("ZOO_RUNS_DIR", str(tmp_path / "runs"))
