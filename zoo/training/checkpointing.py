"""Atomic checkpoint files, and a guard against training on for nothing (non-finite losses).

Lightning's default writer opens the final path and writes into it, so a run
killed mid-save leaves a truncated `last.ckpt` that can't be resumed. Here the
bytes go to a temporary file in the same folder, are fsynced, and replace the
target in one rename.
"""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
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


class NonFiniteLossGuard(pl.Callback):
    """Stop, in one line, a training whose loss was not finite on any batch of an epoch.

    Such a run would otherwise write checkpoints of NaN weights and exit 0. Checked on the
    epoch's last batch, before validation and checkpointing run.
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.finite = self.seen = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:  # manual optimisation (RL): the logged loss
            loss = trainer.callback_metrics.get("train/loss")
        if loss is None:
            return
        self.seen += 1
        self.finite += bool(torch.isfinite(torch.as_tensor(loss)).all())
        last = batch_idx + 1 >= trainer.num_training_batches
        if last and self.seen and not self.finite:
            raise ZooError(
                f"the training loss was not finite (NaN/inf) on any of the {self.seen} batches of epoch "
                f"{trainer.current_epoch}: check the data for inf/NaN inputs or targets, zero-sized settings "
                "(e.g. data.num_envs=0), or lower the learning rate"
            )
