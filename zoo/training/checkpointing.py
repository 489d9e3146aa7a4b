"""Atomic checkpoint files and resolution of `ckpt_path=last`.

Lightning's default writer opens the final path and writes into it, so a run
killed mid-save leaves a truncated `last.ckpt` that can't be resumed. Here the
bytes go to a temporary file in the same folder, are fsynced, and replace the
target in one rename.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from zoo.errors import ZooError
from zoo.io import atomic_path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path, fsync=True) as tmp:
        torch.save(obj, tmp)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are all-or-nothing."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)


def find_last_checkpoint(root: str | os.PathLike) -> Path:
    """The most recently written `last.ckpt` under `root` (for `ckpt_path=last`)."""
    candidates = sorted(Path(root).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ZooError(
            f"ckpt_path=last: no checkpoints/last.ckpt under {root}; train first, or give ckpt_path=<file.ckpt>"
        )
    return candidates[-1]
