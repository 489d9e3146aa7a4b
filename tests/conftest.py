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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts on one intra-op thread, whatever an earlier test or task set.

    The tensors here are tiny: extra threads only add OpenMP barriers, and on a shared,
    oversubscribed CPU their spin-waiting makes each small op up to ~100x slower.
    """
    torch.set_num_threads(1)
    yield
