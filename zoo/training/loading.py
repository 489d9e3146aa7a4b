"""Tasks from configs, checkpoints and saved folders: one way each.

- `build_task(cfg, datamodule, weights)`: a fresh task from the config, the data's facts
  (`model_kwargs`, `task_kwargs`) merged in, the backbone initialised from `weights`.
- `restore_task(weights)`: the task a `.ckpt` or an exported folder recorded (class, hyper-parameters,
  every tensor), whichever way it was given (tag, `hf://`, folder, `.ckpt`).
- `load_for_inference(cfg)`: what `eval`, `predict`, `export` and domain verbs use: the checkpoint
  `ckpt_path` names (`last` included), else the `weights` folder, restored as trained.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.errors import ZooError
from zoo.factory import Weights, open_weights
from zoo.training.runs import resolve_checkpoint

log = logging.getLogger(__name__)


def build_task(cfg: DictConfig, datamodule: Any, weights: Weights | None = None) -> pl.LightningModule:
    """A fresh task from `cfg.task`, with the datamodule's facts and the opened `weights`."""
    configured = OmegaConf.select(cfg, "model.kwargs") or OmegaConf.create({})
    model_kwargs = {**OmegaConf.to_container(configured, resolve=True), **datamodule.model_kwargs()}
    build = instantiate(
        cfg.task,
        model_kwargs=model_kwargs,
        **datamodule.task_kwargs(),
        _partial_=True,
        _recursive_=False,
        _convert_="all",
    )
    return build(weights=weights)  # an object with tensors: given at call time, not merged into the config


def restore_task(weights: Weights, fallback: str | None = None) -> pl.LightningModule:
    """The task `weights` recorded, with every tensor it held, in eval mode.

    fallback: the task class (`pkg.Class`) to use when the source records none (a checkpoint
    written before tasks were recorded); without one such a source is refused.
    """
    record = weights.task or ({"target": fallback, "hparams": {}} if fallback else None)
    if record is None or not record.get("target"):
        raise ZooError(
            f"{weights.source} holds a backbone only, not the task that trained it; give the .ckpt of a run "
            "or a folder written by `zoo <domain> export`"
        )
    try:
        cls = get_class(record["target"])
    except Exception as err:  # a renamed or uninstalled task class
        raise ZooError(
            f"{weights.source} was trained by {record['target']}, which cannot be imported ({err})"
        ) from None
    hparams = dict(record.get("hparams") or {})
    if weights.path.suffix == ".ckpt" and not hparams:
        raise ZooError(f"{weights.path} has no hyper-parameters; was it written by a longzoo task?")
    task = cls(**hparams)
    missing, unexpected = task.load_state_dict(weights.task_state_dict(), strict=False)
    if missing or unexpected:
        raise ZooError(
            f"{weights.source} does not fit {cls.__name__}: missing {missing[:4]}, unexpected {unexpected[:4]}; "
            "was it written by another version of this task?"
        )
    return task.eval()


def load_for_inference(cfg: DictConfig, datamodule: Any = None) -> tuple[pl.LightningModule, Weights]:
    """The trained task that `ckpt_path` (`last` included) or else `weights` names, and the opened source.

    A source that records its task (a `.ckpt`, an exported folder) is restored as trained; a bare
    backbone (a registered tag, a converted release) gets the configured task around it, which
    needs the `datamodule` for the data's facts.
    """
    source = resolve_checkpoint(cfg) or cfg.get("weights")
    if not source:
        raise ZooError(
            f"`{cfg.mode}` needs trained weights: add ckpt_path=<run>/checkpoints/best.ckpt (or ckpt_path=last) "
            "or weights=<folder|hf://org/repo>"
        )
    weights = open_weights(source)
    if weights.task is None and weights.path.suffix != ".ckpt":
        if datamodule is None:
            raise ZooError(f"{weights.source} holds a backbone only; this command needs a trained task (a .ckpt)")
        return build_task(cfg, datamodule, weights), weights
    return restore_task(weights, fallback=OmegaConf.select(cfg, "task._target_")), weights


def plain_hparams(hparams: dict[str, Any], where: str) -> dict[str, Any]:
    """Hyper-parameters as JSON (for config.json); one line naming the key that cannot be written."""
    plain = {
        k: (OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v) for k, v in hparams.items()
    }
    for key, value in plain.items():
        try:
            json.dumps(value)
        except TypeError:
            raise ZooError(
                f"{where}: hyper-parameter {key!r} ({type(value).__name__}) cannot be saved as JSON"
            ) from None
    return plain
