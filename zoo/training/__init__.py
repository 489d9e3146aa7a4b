"""Training machinery on PyTorch Lightning + Hydra: tasks, datamodules, `run(cfg)`."""

from zoo.training.data import BaseDataModule
from zoo.training.runner import run
from zoo.training.task import BaseTask

__all__ = ["BaseDataModule", "BaseTask", "run"]
