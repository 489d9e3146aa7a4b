"""Training machinery on PyTorch Lightning + Hydra: tasks, datamodules, `run(cfg)`.

A domain command is written on `runs` (run folder, lock, `ckpt_path` incl. `last`, run record) and
`loading` (`build_task`, `restore_task`, `load_for_inference`); see docs/extending.md.
"""

from zoo.training.data import BaseDataModule
from zoo.training.loading import build_task, load_for_inference, restore_task
from zoo.training.runner import run
from zoo.training.runs import lock_run, resolve_checkpoint, run_folder, write_run_record
from zoo.training.task import BaseTask

__all__ = [
    "BaseDataModule",
    "BaseTask",
    "build_task",
    "load_for_inference",
    "lock_run",
    "resolve_checkpoint",
    "restore_task",
    "run",
    "run_folder",
    "write_run_record",
]
