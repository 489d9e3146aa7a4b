"""`BaseTask`: a LightningModule built from a registered model *name*.

Never an nn.Module passed through YAML: the task builds its backbone with
`create_model(model, **model_kwargs)` so checkpoints record a name and plain
kwargs and reload without the original config. `weights` (a tag, `hf://`
address, folder or `.ckpt`) is loaded once at construction and is not saved in
the hyper-parameters, so reloading a checkpoint never downloads again. A task
with `weights_decide_architecture = True` builds what the weights record (a
zoo folder, a `.ckpt`, a converted release) rather than `model`, keeping only
its `task_set_kwargs` (the head), so `finetune weights=...` needs no matching `model=`.
Optimizer and scheduler are Hydra partials (or their configs with `_target_`),
instantiated only in `configure_optimizers`.

What the task's inputs must look like (a tokenizer, channel names, an
environment) is its `data_contract()`: saved in every checkpoint
(`checkpoint["zoo"]`) and exported folder, handed by the runner to the
datamodule (`BaseDataModule.accept_contract`) once the task exists, so a
restored model always reads data the way it was trained. A task never reaches
into `trainer.datamodule` for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from zoo.factory import Weights, architecture_for, create_model, load_state_into, open_weights

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _build(spec: Any, *args: Any) -> Any:
    """Call a partial, or instantiate a `{_target_: ...}` config, with positional args."""
    if spec is None:
        return None
    if callable(spec):
        return spec(*args)
    spec = dict(spec)
    spec.setdefault("_partial_", True)
    return instantiate(spec)(*args)


class BaseTask(pl.LightningModule):
    weights_decide_architecture = False  # True: build what `weights` record, not `model`
    task_set_kwargs: tuple[str, ...] = ("num_classes", "global_pool")  # the task sets these, whatever the weights say
    stop_reason: str | None = None  # set by a task that ends training itself (`stop_training`), logged at the end

    def stop_training(self, reason: str) -> None:
        """End training after this epoch, for a reason of the task's own (a schedule, a fitted baseline)."""
        self.stop_reason = reason
        self.trainer.should_stop = True

    def __init__(
        self,
        model: str = "test_transformer",
        model_kwargs: dict[str, Any] | None = None,
        weights: str | Weights | None = None,
        freeze_backbone: bool = False,
        optimizer: Callable | dict | None = None,
        scheduler: Callable | dict | None = None,
        scheduler_interval: str = "step",
        backbone_lr_scale: float = 1.0,
    ):
        super().__init__()
        # Callables (partials) can't be stored in a weights_only checkpoint; configs (dicts) can.
        unsaved = ["weights"] + [
            name for name, v in (("optimizer", optimizer), ("scheduler", scheduler)) if callable(v)
        ]
        self.save_hyperparameters(ignore=unsaved)
        self.optimizer_spec, self.scheduler_spec = optimizer, scheduler
        model_kwargs = dict(_plain(model_kwargs) or {})
        self.weights = open_weights(weights) if weights else None  # read once; subclasses take their files from it
        if self.weights_decide_architecture:
            model, model_kwargs = architecture_for(model, model_kwargs, self.weights, keep=self.task_set_kwargs)
        model_kwargs = self.backbone_kwargs(model, model_kwargs)
        self.hparams["model"], self.hparams["model_kwargs"] = model, model_kwargs  # what a restored checkpoint rebuilds
        self.backbone = create_model(model, **model_kwargs)
        if self.weights is not None:
            load_state_into(self.backbone, self.weights.state_dict, self.weights.source)
        if freeze_backbone:
            self.freeze_backbone()

    def backbone_kwargs(self, model: str, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The kwargs the backbone is built with, once its architecture is known (language models add their head).

        Called during `__init__`, before the subclass has set anything up: use only the arguments.
        """
        return model_kwargs

    # ------------------------------------------------------------------ contract

    def data_contract(self) -> dict[str, Any]:
        """What this task's inputs must look like, JSON-serialisable (e.g. `{"tokenizer": {...}}`)."""
        return {}

    def saved_contract(self) -> dict[str, Any]:
        """The data contract recorded with `weights` (empty without weights or record)."""
        return dict(self.weights.data_contract) if self.weights is not None else {}

    def task_record(self) -> dict[str, Any]:
        """How to rebuild this task: its class and hyper-parameters (what `zoo.load_pipeline` reads)."""
        cls = type(self)
        record = {"target": f"{cls.__module__}.{cls.__qualname__}", "hparams": dict(self.hparams)}
        if self.data_settings:
            record["data"] = self.data_settings
        return record

    #: the data config the task was trained with (set by the runner; recorded so that `eval`,
    #: `predict` and `export` read data the same way unless the user overrides a key).
    data_settings: dict[str, Any] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["zoo"] = {
            "task": self.task_record()["target"],
            "data_contract": self.data_contract(),
            "data": self.data_settings,
        }

    # ------------------------------------------------------------------ parameters

    def head_modules(self) -> list[nn.Module]:
        """Modules trained at the full learning rate and kept trainable when the backbone is frozen."""
        extra = [m for name, m in self.named_children() if name != "backbone"]
        return [self.backbone.get_classifier(), *extra]

    def freeze_backbone(self) -> None:
        head_params = {id(p) for m in self.head_modules() for p in m.parameters()}
        frozen = 0
        for p in self.backbone.parameters():
            if id(p) not in head_params:
                p.requires_grad_(False)
                frozen += p.numel()
        log.info("froze %s backbone parameters; the head stays trainable", f"{frozen:,}")

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Four groups: backbone/head x decay/no-decay (norms, biases and 1-d tensors get no decay)."""
        head_ids = {id(p) for m in self.head_modules() for p in m.parameters()}
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                no_decay = p.ndim < 2 or name.endswith(".bias") or "norm" in name.lower()
                groups.setdefault((id(p) in head_ids, no_decay), []).append(p)
        scale = self.hparams.backbone_lr_scale
        return [
            {"params": params, "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": 1.0 if is_head else scale}
            for (is_head, no_decay), params in groups.items()
        ]

    def configure_optimizers(self):
        spec = self.optimizer_spec or {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.01}
        partial_opt = spec if callable(spec) else instantiate({**dict(spec), "_partial_": True})
        base_lr = partial_opt.keywords.get("lr", 1e-3) if hasattr(partial_opt, "keywords") else 1e-3
        weight_decay = partial_opt.keywords.get("weight_decay", 0.0) if hasattr(partial_opt, "keywords") else 0.0
        groups = self.parameter_groups(weight_decay)
        for group in groups:
            group["lr"] = base_lr * group.pop("lr_scale")
        optimizer = partial_opt(groups)
        scheduler = _build(self.scheduler_spec, optimizer)
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval},
        }

    # ------------------------------------------------------------------ steps

    def shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "test")

    # ------------------------------------------------------------------ outputs

    def on_predictions_written(self, path: str, datamodule: Any) -> None:
        """Hook after `predict` has written its CSV: draw plots beside it."""

    def export_extras(self, folder: str) -> dict[str, str | bytes]:
        """Extra files for `export` (e.g. a tokenizer), name -> content."""
        return {}
