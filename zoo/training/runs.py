"""Run folders: where a command writes, who may write there, and which checkpoint `ckpt_path` means.

The public API a domain command is written on (see docs/extending.md):

    out = run_folder(cfg)                      # runs/<domain>/<mode>/<run id>
    with lock_run(out):                        # one writer per run folder
        ckpt = resolve_checkpoint(cfg)         # ckpt_path, `last` included
        ...
        write_run_record(out, cfg, result)     # config.yaml + metrics.json, atomically

`ckpt_path=last` means, for `train`/`finetune`, the last checkpoint of *this*
run (the run id pinned by `ZOO_RUN_ID`): a resumed run continues in its own
folder and never picks up another run's weights. For every other command
(`eval`, `predict`, `export`, domain verbs) it means the newest `last.ckpt` of
the domain's training runs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from zoo.errors import ZooError
from zoo.io import write_text_atomic

TRAINING_MODES = ("train", "finetune")
RECORD_NAME = "metrics.json"  # written last: its presence means the run finished


def run_folder(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside a Hydra app, `paths.output_dir` otherwise."""
    try:
        return Path(cfg.paths.output_dir)
    except InterpolationResolutionError:  # composed outside a Hydra app (tests, Python callers)
        return Path(cfg.paths.log_dir) / str(cfg.domain) / str(cfg.mode) / str(cfg.paths.run_id)


@contextlib.contextmanager
def lock_run(out: Path, fresh_training: bool = False) -> Iterator[None]:
    """Hold the run folder's lock while the command runs; a second writer gets one line (exit 2).

    A fresh training run (not a resume) in a folder that holds a finished one is refused:
    reusing a run id would otherwise mix two runs' checkpoints. Temporary files left by a
    process killed mid-save (`.*.partial`) are removed once the lock is ours.
    """
    from filelock import FileLock, Timeout

    if _rank() > 0:  # every rank of a DDP/SLURM job runs the command: rank 0 holds the folder for all
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ZooError(
            f"run folder {out} is in use by another process (lock {out / '.lock'}); wait for it to finish "
            "or choose another ZOO_RUN_ID"
        ) from None
    try:
        if fresh_training and (out / RECORD_NAME).is_file() and (out / "checkpoints").is_dir():
            raise ZooError(
                f"run folder {out} already holds a finished run; choose another ZOO_RUN_ID, delete the folder, "
                "or resume it with ckpt_path=last"
            )
        for stale in out.glob("**/.*.partial"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


def _rank() -> int:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _newest_last(root: Path) -> Path | None:
    candidates = sorted(root.glob("*/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """The `.ckpt` that `ckpt_path` names (None when unset); `last` as the module docstring says."""
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        return None
    if str(ckpt) != "last":
        if not Path(ckpt).is_file():
            raise ZooError(
                f"ckpt_path={ckpt!r} does not exist; give a .ckpt from a run's checkpoints/ folder, or ckpt_path=last"
            )
        return str(ckpt)
    if str(cfg.get("mode")) in TRAINING_MODES:
        if "ZOO_RUN_ID" not in os.environ:
            raise ZooError(
                "ckpt_path=last resumes the run named by ZOO_RUN_ID, which is not set; run again with "
                "ZOO_RUN_ID=<the run's folder name>, or give ckpt_path=<run>/checkpoints/last.ckpt"
            )
        last = run_folder(cfg) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ZooError(
                f"ckpt_path=last: run {os.environ['ZOO_RUN_ID']!r} has no checkpoint to resume ({last} is absent: "
                "it was stopped before its first epoch ended); start it again without ckpt_path"
            )
        return str(last)
    root = Path(cfg.paths.log_dir) / str(cfg.domain)
    last = _newest_last(root)
    if last is None:
        raise ZooError(f"ckpt_path=last: no training run under {root} has checkpoints/last.ckpt; train first")
    return str(last)


def write_run_record(out: Path, cfg: DictConfig, result: dict[str, Any]) -> None:
    """The run folder's `config.yaml` and `metrics.json`, each written atomically (the record last)."""
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=False))
    write_text_atomic(out / RECORD_NAME, json.dumps(result, indent=2) + "\n")
