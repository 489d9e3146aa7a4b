"""`run(cfg)`: one composed Hydra config in, a finished run folder out.

Modes: `train` and `finetune` (fit, then test the best checkpoint), `eval`
(test), `predict` (stream rows to a CSV), `export` (write a hub folder). A
verb's config with `runner: pkg.module.function` is handed to that function
instead (sampling, embedding export): such commands are written on the same
public pieces (`zoo.training.runs`, `zoo.training.loading`).

A model class with `closed_form = True` (a forecasting baseline) is fitted by
`task.fit_closed_form(datamodule)` instead of gradient steps, then tested and
checkpointed like any other run. `threads` (top-level config) pins torch's
intra-op threads for the command: small models on a busy CPU only spin-wait on
extra threads.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.errors import ZooError
from zoo.factory import Weights
from zoo.hub import save_pretrained
from zoo.registry import is_model, list_models, model_class, unknown_name_error
from zoo.training.checkpointing import AtomicCheckpointIO, NonFiniteLossGuard
from zoo.training.loading import (
    build_task,
    open_checked,
    open_for_inference,
    plain_hparams,
    recorded_data_config,
    restore_task,
    task_for_inference,
)
from zoo.training.runs import TRAINING_MODES, lock_run, resolve_checkpoint, run_folder, write_run_record
from zoo.training.validation import check_config
from zoo.training.writers import ResumableCSVLogger, StreamingCSVWriter

log = logging.getLogger(__name__)

MODES = ("train", "finetune", "eval", "predict", "export")


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def build_trainer(cfg: DictConfig, extra_callbacks: list[Any] = ()) -> pl.Trainer:
    callbacks = [
        c
        for c in _instantiate_all(cfg.get("callbacks"))
        if cfg.trainer.get("enable_progress_bar", True) or not isinstance(c, pl.callbacks.ProgressBar)
    ]
    loggers = _instantiate_all(cfg.get("logger")) or False
    strategy = str(cfg.trainer.get("strategy", ""))
    plugins = [] if "fsdp" in strategy else [AtomicCheckpointIO()]
    guard = [NonFiniteLossGuard()]
    return instantiate(
        cfg.trainer, callbacks=guard + callbacks + list(extra_callbacks), logger=loggers, plugins=plugins
    )


def check_model_name(cfg: DictConfig) -> None:
    name = OmegaConf.select(cfg, "model.name")
    if name is not None and not is_model(str(name)):
        raise unknown_name_error(str(name), list_models())


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Pin torch's intra-op threads for the command (None: leave torch's default), restored after."""
    saved = torch.get_num_threads()
    if threads is not None:
        if int(threads) < 1:
            raise ZooError(f"threads={threads}: give a positive number of threads, or threads=null for torch's default")
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def is_closed_form(cfg: DictConfig) -> bool:
    name = OmegaConf.select(cfg, "model.name")
    return bool(name) and bool(getattr(model_class(str(name)), "closed_form", False))


def export_task(task: pl.LightningModule, target: Path, command: str | None) -> Path:
    """The task's backbone as a zoo folder, with everything needed to rebuild the task around it."""
    backbone_keys = {f"backbone.{k}" for k in task.backbone.state_dict()}
    task_state = {k: v for k, v in task.state_dict().items() if k not in backbone_keys}
    record = task.task_record()
    record["hparams"] = plain_hparams(record["hparams"], f"export of {record['target']}")
    return save_pretrained(
        task.backbone,
        target,
        card={"command": command},
        extra_files=task.export_extras(str(target)),
        task=record,
        task_state=task_state,
        data_contract=task.data_contract(),
    )


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else str(value)
    return dict(sorted(out.items()))


def run(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    with torch_threads(cfg.get("threads")):
        if cfg.get("runner"):  # a domain verb: one writer per run folder all the same
            with lock_run(run_folder(cfg)):
                return get_method(cfg.runner)(cfg)
        mode = str(cfg.mode)
        if mode not in MODES:
            raise ZooError(
                f"mode={mode!r} is not one of {', '.join(MODES)}; this domain's other verbs have their own config"
            )
        check_model_name(cfg)
        out = run_folder(cfg)
        resuming = mode in TRAINING_MODES and cfg.get("ckpt_path") not in (None, "")
        with lock_run(out, fresh_training=mode in TRAINING_MODES and not resuming):
            return _run_locked(cfg, mode, out)


def _run_locked(cfg: DictConfig, mode: str, out: Path) -> dict[str, Any]:
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    closed_form = is_closed_form(cfg)
    fresh = mode in TRAINING_MODES or (closed_form and not cfg.get("ckpt_path"))
    # Every source is opened (and its domain checked) before the data is read.
    ckpt = resolve_checkpoint(cfg) if mode in TRAINING_MODES else None  # a resume (`last` included)
    resume = open_checked(ckpt, cfg) if ckpt else None
    weights = open_checked(cfg.weights, cfg) if fresh and resume is None and cfg.get("weights") else None
    trained = None if fresh else open_for_inference(cfg)  # eval/predict/export: the model, opened once
    data_cfg = recorded_data_config(cfg, trained, user_data_overrides())
    datamodule = instantiate(data_cfg, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup({"train": "fit", "finetune": "fit", "eval": "test"}.get(mode, "predict"))
    if resume is not None:  # a resume: the task the checkpoint records, then fit restores the rest
        task = resumed_task(cfg, resume)
    elif fresh:
        task = build_task(cfg, datamodule, weights)
    else:
        task = task_for_inference(cfg, trained, datamodule)
    if task.data_settings is None:  # recorded in its checkpoints and exports
        task.data_settings = OmegaConf.to_container(data_cfg, resolve=True)
    datamodule.accept_contract(task.data_contract())
    if closed_form:
        task.fit_closed_form(datamodule)

    result: dict[str, Any] = {"mode": mode, "model": OmegaConf.select(cfg, "model.name"), "output_dir": str(out)}
    if mode == "export":
        target = export_task(task, Path(cfg.get("output") or out / "model"), cfg.get("command"))
        result["model_dir"] = str(target)
    elif mode == "predict":
        if type(task).predict_step is pl.LightningModule.predict_step:
            raise ZooError(
                f"domain {cfg.domain!r} has no `predict` ({type(task).__name__} defines no predict_step); "
                f"use `zoo {cfg.domain} eval`"
            )
        writer = StreamingCSVWriter(cfg.get("output") or out / "predictions.csv")
        trainer = build_trainer(cfg, [writer])
        trainer.predict(task, datamodule=datamodule, return_predictions=False)
        task.on_predictions_written(str(writer.output), datamodule)
        result.update(predictions=str(writer.output), rows=writer.rows_written)
    else:
        trainer = build_trainer(cfg)
        fit_metrics: dict[str, Any] = {}
        if mode == "eval":
            trainer.test(task, datamodule=datamodule)
        elif closed_form:
            trainer.validate(task, datamodule=datamodule)
            fit_metrics = _scalars(trainer.callback_metrics)
            if cfg.get("test_after_fit", True) and getattr(datamodule, "test_set", None) is not None:
                trainer.test(task, datamodule=datamodule)
            best = out / "checkpoints" / "best.ckpt"
            trainer.save_checkpoint(best, weights_only=False)
            result["best_checkpoint"] = str(best)
        else:
            if resume is not None and resume.global_step is not None:  # rows logged after the checkpoint would repeat
                for logger in trainer.loggers:
                    if isinstance(logger, ResumableCSVLogger):
                        logger.continue_before(resume.global_step)
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
            fit_metrics = _scalars(trainer.callback_metrics)
            log_stop_reason(trainer)
            if cfg.get("test_after_fit", True) and getattr(datamodule, "test_set", None) is not None:
                best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
                trainer.test(task, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            if trainer.checkpoint_callback:
                result["best_checkpoint"] = trainer.checkpoint_callback.best_model_path
                last = Path(trainer.checkpoint_callback.dirpath or out) / "last.ckpt"
                if last.is_file():  # absent when callbacks.last_checkpoint=null
                    result["last_checkpoint"] = str(last)
        result["metrics"] = {**fit_metrics, **_scalars(trainer.callback_metrics)}
        if not trainer.is_global_zero:
            return result
    write_run_record(out, cfg, result)
    return result


def user_data_overrides() -> set[str] | None:
    """The `data.*` keys set on the command line; None where the config is the user's own whole
    (outside a Hydra app, e.g. Python callers of `run`) or a data group was chosen (`data=...`)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    if "data" in keys:
        return None
    return {k[len("data.") :] for k in keys if k.startswith("data.")}


def resumed_task(cfg: DictConfig, ckpt: Weights) -> pl.LightningModule:
    """The task a resumed checkpoint (opened) records (architecture, data settings), whatever the config now says."""
    task = restore_task(ckpt, fallback=OmegaConf.select(cfg, "task._target_")).train()
    name, recorded = OmegaConf.select(cfg, "model.name"), task.hparams.get("model")
    if name and recorded and str(name) != str(recorded):
        log.warning("resuming %s: it trained %s, so that is what continues (not model=%s)", ckpt.path, recorded, name)
    return task


def test_and_record(cfg: DictConfig, task: pl.LightningModule, datamodule: Any, label: str | None) -> dict[str, Any]:
    """A domain's own `eval` verb, once it has its task and data: test, then the run folder's record."""
    trainer = build_trainer(cfg)
    trainer.test(task, datamodule=datamodule)
    metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items())}
    out = run_folder(cfg)
    result = {"mode": "eval", "model": label, "output_dir": str(out), "metrics": metrics}
    write_run_record(out, cfg, result)
    return result


def export_and_record(cfg: DictConfig, task: pl.LightningModule, label: str | None) -> dict[str, Any]:
    """A domain's own `export` verb: the hub folder (`output`, or the run folder's `model/`), then the record."""
    out = run_folder(cfg)
    target = export_task(task, Path(cfg.get("output") or out / "model"), cfg.get("command"))
    result = {"mode": "export", "model": label, "output_dir": str(out), "model_dir": str(target)}
    write_run_record(out, cfg, result)
    return result


def log_stop_reason(trainer: pl.Trainer) -> None:
    """Say why training ended: the task's own reason, early stopping (epoch, metric) or the epoch/step budget."""
    stopper = next((c for c in trainer.callbacks if isinstance(c, pl.callbacks.EarlyStopping)), None)
    reason = getattr(trainer.lightning_module, "stop_reason", None)
    if reason:
        log.info("training stopped after %d epochs (%d steps): %s", trainer.current_epoch, trainer.global_step, reason)
    elif stopper is not None and stopper.stopped_epoch > 0:
        log.info(
            "training stopped early at epoch %d: %s did not improve for %d epochs (best %.4g)",
            stopper.stopped_epoch,
            stopper.monitor,
            stopper.patience,
            float(stopper.best_score),
        )
    else:
        log.info(
            "training ended after %d epochs (%d steps), the configured budget",
            trainer.current_epoch,
            trainer.global_step,
        )
