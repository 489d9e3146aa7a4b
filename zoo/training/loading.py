"""Tasks from configs, checkpoints and saved folders: one way each.

- `build_task(cfg, datamodule, weights)`: a fresh task from the config, the data's facts
  (`model_kwargs`, `task_kwargs`) merged in, the backbone initialised from `weights`.
- `restore_task(weights)`: the task a `.ckpt` or an exported folder recorded (class, hyper-parameters,
  every tensor), whichever way it was given (tag, `hf://`, folder, `.ckpt`).
- `load_for_inference(cfg)`: what `eval`, `predict`, `export` and domain verbs use: the checkpoint
  `ckpt_path` names (`last` included), else the `weights` folder, restored as trained.
- `check_domain(weights, cfg)`: a checkpoint or saved task of another domain is refused in one line;
  the domain is read off the recorded task class (`domains.<domain>....`), a string, so the core
  imports no domain.
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
    # an object with tensors: given at call time, not merged into the config
    return build(weights=without_unfit_head(build, weights))


def without_unfit_head(build: Any, weights: Weights | None) -> Weights | None:
    """`weights` less their classifier head when it was trained to predict something else than the new task.

    A task class declares the hyper-parameters that say what its head predicts (`head_defined_by`, default
    `("task_type",)`); where the weights' recorded task has another value for one of them (a regression head
    for 0/1 classification, other class names) the head is dropped, so the model re-initialises it, and a
    warning says why. Decided so rather than refused: fine-tuning a trained backbone for a new target is the
    point of `finetune`; reusing the old head silently was the bug. Same values: the head is kept.
    """
    recorded = ((weights.task or {}).get("hparams") or {}) if weights is not None else {}
    keys = getattr(getattr(build, "func", None), "head_defined_by", ("task_type",))
    new = getattr(build, "keywords", {})
    changed = [k for k in keys if k in recorded and k in new and _plain(recorded[k]) != _plain(new[k])]
    if not changed or weights.architecture is None:
        return weights
    from dataclasses import replace

    from zoo.registry import model_class

    head = getattr(model_class(weights.architecture["name"]), "head_name", "head") + "."
    log.warning(
        "%s was trained for %s, this fine-tune for %s: its classifier head is re-initialised, not reused",
        weights.source,
        ", ".join(f"{k}={_plain(recorded[k])}" for k in changed),
        ", ".join(f"{k}={_plain(new[k])}" for k in changed),
    )
    return replace(weights, state_dict={k: v for k, v in weights.state_dict.items() if not k.startswith(head)})


def _plain(value: Any) -> Any:
    value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return list(value) if isinstance(value, tuple) else value


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
    task.data_settings = record.get("data")
    missing, unexpected = task.load_state_dict(weights.task_state_dict(), strict=False)
    if missing or unexpected:
        raise ZooError(
            f"{weights.source} does not fit {cls.__name__}: missing {missing[:4]}, unexpected {unexpected[:4]}; "
            "was it written by another version of this task?"
        )
    return task.eval()


def recorded_domain(weights: Weights) -> str | None:
    """The domain whose task wrote `weights` (`domains.timeseries.tasks.ForecastTask` -> `timeseries`), if any."""
    target = str((weights.task or {}).get("target") or "")
    parts = target.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "domains" else None


def check_domain(weights: Weights, cfg: DictConfig) -> Weights:
    """`weights` as given, unless its task belongs to another domain than `cfg.domain`: then one line."""
    domain, recorded = cfg.get("domain"), recorded_domain(weights)
    if domain and recorded and recorded != str(domain):
        kind = "checkpoint" if weights.path.suffix == ".ckpt" else "model (saved by that domain's task)"
        raise ZooError(
            f"{weights.source} is a {recorded} {kind}; use zoo {recorded} {cfg.get('mode') or '...'} "
            f"(this is zoo {domain})"
        )
    return weights


def require_domain(weights: Weights, domain: str, usage: str, unrecorded_ok: bool = False) -> Weights:
    """`weights` as given when a `domain` task wrote it; otherwise one line saying what it holds, then `usage`.

    Stricter than `check_domain`, for callers that need that domain's task (its heads,
    tokenizer, hyper-parameters), not only a backbone: a source that records no task is
    refused too, unless `unrecorded_ok` (the caller has a fallback task for old checkpoints).
    """
    target = str((weights.task or {}).get("target") or "")
    recorded = recorded_domain(weights)
    if recorded == domain or (unrecorded_ok and not target):
        return weights
    holds = f"a {recorded} model ({target})" if recorded else f"a model of task {target}" if target else None
    raise ZooError(f"{weights.source} holds {holds or 'a backbone only (no task)'}, not a {domain} model; {usage}")


def open_checked(source: str | Weights, cfg: DictConfig) -> Weights:
    """`open_weights(source)`, refused in one line when it holds another domain's task."""
    return check_domain(open_weights(source), cfg)


def default_to_newest_run(cfg: DictConfig) -> DictConfig:
    """`cfg` with `ckpt_path=last` (the newest training run of its domain) when neither `ckpt_path` nor
    `weights` names a model: the default of the domains whose verbs need no argument (recsys, code)."""
    if cfg.get("ckpt_path") in (None, "") and not cfg.get("weights"):
        log.info("no ckpt_path or weights given: using the newest %s training run (ckpt_path=last)", cfg.domain)
        cfg.ckpt_path = "last"
    return cfg


def open_for_inference(cfg: DictConfig) -> Weights:
    """The source that `ckpt_path` (`last` included) or else `weights` names, opened once.

    `weights=` beats `ckpt_path=last`, which a verb's config may set as its default (`zoo video predict`
    continues the newest training run unless told otherwise); a `.ckpt` path given with it still wins.
    """
    weights, ckpt = cfg.get("weights"), cfg.get("ckpt_path")
    source = weights if weights and str(ckpt) == "last" else resolve_checkpoint(cfg) or weights
    if not source:
        raise ZooError(
            f"`{cfg.mode}` needs trained weights: add ckpt_path=<run>/checkpoints/best.ckpt (or ckpt_path=last) "
            "or weights=<folder|hf://org/repo>"
        )
    return open_checked(source, cfg)


def task_for_inference(cfg: DictConfig, weights: Weights, datamodule: Any = None) -> pl.LightningModule:
    """A source that records its task (a `.ckpt`, an exported folder) restored as trained; a bare backbone
    (a registered tag, a converted release) inside the configured task, which needs the `datamodule`."""
    if weights.task is None and weights.path.suffix != ".ckpt":
        if datamodule is None:
            raise ZooError(f"{weights.source} holds a backbone only; this command needs a trained task (a .ckpt)")
        return build_task(cfg, datamodule, weights)
    return restore_task(weights, fallback=OmegaConf.select(cfg, "task._target_"))


def load_for_inference(cfg: DictConfig, datamodule: Any = None) -> tuple[pl.LightningModule, Weights]:
    """The trained task that `ckpt_path` or `weights` names, and the opened source (for domain verbs)."""
    weights = open_for_inference(cfg)
    return task_for_inference(cfg, weights, datamodule), weights


def recorded_data_config(cfg: DictConfig, weights: Weights | None, overridden: set[str] | None) -> DictConfig:
    """The data config a trained model recorded, with the keys the user set (`overridden`) taken from `cfg`.

    So `zoo <domain> predict ckpt_path=...` reads data as the training run did (its file, lengths,
    windows) and `data.path=new.csv` changes only the file. Without a record, or with
    `overridden=None` (the caller's config is meant whole), `cfg.data` as is.
    """
    recorded = ((weights.task or {}).get("data") if weights is not None else None) or None
    if not recorded or overridden is None:
        return cfg.data
    merged = OmegaConf.create(recorded)
    for key in overridden:
        value = OmegaConf.select(cfg, f"data.{key}", default=None)
        OmegaConf.update(merged, key, value, force_add=True)
    changed = sorted(k for k in recorded if k not in overridden and recorded.get(k) != OmegaConf.select(cfg.data, k))
    if changed:
        log.info("data settings from the trained model (override to change): %s", ", ".join(changed))
    return merged


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
