"""Atomic checkpoint files.

Lightning's default writer opens the final path and writes into it, so a run
killed mid-save leaves a truncated `last.ckpt` that can't be resumed. Here the
bytes go to a temporary file in the same folder, are fsynced, and replace the
target in one rename.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from zoo.io import atomic_path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path, fsync=True) as tmp:
        torch.save(obj, tmp)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are all-or-nothing."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)
