"""`run(cfg)`: one composed Hydra config in, a finished run folder out.

Modes: `train` and `finetune` (fit, then test the best checkpoint), `eval`
(test), `predict` (stream rows to a CSV), `export` (write a hub folder). A
config with `runner: pkg.module.function` is handed to that function instead,
for domain verbs that are not a Lightning loop (sampling, embedding export).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from zoo.errors import ZooError
from zoo.hub import save_pretrained
from zoo.io import write_text_atomic
from zoo.registry import is_model, list_models, unknown_name_error
from zoo.training.checkpointing import AtomicCheckpointIO, find_last_checkpoint
from zoo.training.writers import StreamingCSVWriter

log = logging.getLogger(__name__)

MODES = ("train", "finetune", "eval", "predict", "export")


def output_dir(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside a Hydra app, `paths.output_dir` otherwise."""
    try:
        path = Path(cfg.paths.output_dir)
    except InterpolationResolutionError:
        path = Path(cfg.paths.log_dir) / str(cfg.domain) / str(cfg.mode) / str(cfg.paths.run_id)
    return path


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
    return instantiate(cfg.trainer, callbacks=callbacks + list(extra_callbacks), logger=loggers, plugins=plugins)


def check_model_name(cfg: DictConfig) -> None:
    name = OmegaConf.select(cfg, "model.name")
    if name is not None and not is_model(str(name)):
        raise unknown_name_error(str(name), list_models())


def resolve_ckpt(cfg: DictConfig) -> str | None:
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        return None
    if ckpt == "last":
        return str(find_last_checkpoint(Path(cfg.paths.log_dir) / str(cfg.domain)))
    if not Path(ckpt).is_file():
        raise ZooError(
            f"ckpt_path={ckpt!r} does not exist; give a .ckpt file from a run's checkpoints/ folder, or ckpt_path=last"
        )
    return str(ckpt)


def build_task(
    cfg: DictConfig, datamodule: pl.LightningDataModule, ckpt: str | None, from_checkpoint: bool
) -> pl.LightningModule:
    """Fresh from the config (train/finetune), or restored from `ckpt` (eval/predict/export)."""
    task_cls = get_class(cfg.task._target_)
    if from_checkpoint and ckpt:
        return task_cls.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    configured = OmegaConf.select(cfg, "model.kwargs") or OmegaConf.create({})
    model_kwargs = {**OmegaConf.to_container(configured, resolve=True), **datamodule.model_kwargs()}
    return instantiate(
        cfg.task, model_kwargs=model_kwargs, **datamodule.task_kwargs(), _recursive_=False, _convert_="all"
    )


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else str(value)
    return dict(sorted(out.items()))


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.get("runner"):
        return get_method(cfg.runner)(cfg)
    mode = str(cfg.mode)
    if mode not in MODES:
        raise ZooError(
            f"mode={mode!r} is not one of {', '.join(MODES)}; this domain's other verbs have their own config"
        )
    check_model_name(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out = output_dir(cfg)
    ckpt = resolve_ckpt(cfg)
    if mode in ("eval", "predict", "export") and not (ckpt or cfg.get("weights")):
        raise ZooError(
            f"`{mode}` needs trained weights: add ckpt_path=<run>/checkpoints/best.ckpt (or ckpt_path=last) or weights=<folder|hf://org/repo>"
        )

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup({"train": "fit", "finetune": "fit", "eval": "test"}.get(mode, "predict"))
    task = build_task(cfg, datamodule, ckpt, from_checkpoint=mode in ("eval", "predict", "export"))

    result: dict[str, Any] = {"mode": mode, "model": OmegaConf.select(cfg, "model.name"), "output_dir": str(out)}
    if mode == "export":
        target = Path(cfg.get("output") or out / "model")
        save_pretrained(
            task.backbone, target, card={"command": cfg.get("command")}, extra_files=task.export_extras(str(target))
        )
        result["model_dir"] = str(target)
    elif mode == "predict":
        if type(task).predict_step is pl.LightningModule.predict_step:
            raise ZooError(
                f"domain {cfg.domain!r} has no `predict` ({type(task).__name__} defines no predict_step); use `zoo {cfg.domain} eval`"
            )
        writer = StreamingCSVWriter(cfg.get("output") or out / "predictions.csv")
        trainer = build_trainer(cfg, [writer])
        trainer.predict(task, datamodule=datamodule, return_predictions=False)
        task.on_predictions_written(str(writer.output), datamodule)
        result.update(predictions=str(writer.output), rows=writer.rows_written)
    else:
        trainer = build_trainer(cfg)
        if mode == "eval":
            trainer.test(task, datamodule=datamodule)
        else:
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
            fit_metrics = _scalars(trainer.callback_metrics)
            if cfg.get("test_after_fit", True) and getattr(datamodule, "test_set", None) is not None:
                best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
                trainer.test(task, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            if trainer.checkpoint_callback:
                result["best_checkpoint"] = trainer.checkpoint_callback.best_model_path
                last = Path(trainer.checkpoint_callback.dirpath or out) / "last.ckpt"
                if last.is_file():  # absent when callbacks.last_checkpoint=null
                    result["last_checkpoint"] = str(last)
        result["metrics"] = {**(fit_metrics if mode != "eval" else {}), **_scalars(trainer.callback_metrics)}
        if not trainer.is_global_zero:
            return result
    write_run_record(out, cfg, result)
    return result


def write_run_record(out: Path, cfg: DictConfig, result: dict[str, Any]) -> None:
    """The run folder's `config.yaml` and `metrics.json` (for domain runners too), each written atomically."""
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=False))
    write_text_atomic(
        out / "metrics.json", json.dumps(result, indent=2) + "\n"
    )  # last: its presence means the run finished
