"""The data pieces every domain shares: `BaseDataModule` (dataloader plumbing), `ListDataset`, `TextContract`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from zoo.errors import ZooError


class TextContract:
    """A data contract (tokenizer, catalogue, limits) that travels as task hyper-parameter text.

    Subclasses give `to_dict()` and `from_dict(data, where)`. The text is JSON without a `$`, so it
    passes through Hydra/OmegaConf (task kwargs, hyper-parameters) verbatim: item text or a BPE
    piece like `${x}` would otherwise be read as an interpolation.
    """

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Any, where: str = "the data contract"):
        raise NotImplementedError

    def to_text(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=True).replace("$", "\\u0024")

    @classmethod
    def from_text(cls, text: str, where: str = "the task's contract"):
        try:
            return cls.from_dict(json.loads(text), where)
        except json.JSONDecodeError as err:
            raise ZooError(f"{where} is not JSON ({err.msg})") from None


class ListDataset(Dataset):
    """Examples already in memory (records, windows, histories), indexed as a map-style dataset."""

    def __init__(self, items: Sequence[Any]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


class BaseDataModule(pl.LightningDataModule):
    """Subclasses fill `train_set`/`val_set`/`test_set`/`predict_set` in `setup`.

    `model_kwargs()` and `task_kwargs()` pass facts only the data knows (vocabulary
    size, input channels, class names) to the model and task; `run(cfg)` merges them
    over the config. The other way, `accept_contract(contract)` receives a built or
    restored task's `data_contract()` (its tokenizer, channels, environment): a
    datamodule adopts it or says in one line why this data cannot meet it.
    """

    collate_fn: Callable | None = None

    def __init__(
        self, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False, seed: int = 0, shuffle: bool = True
    ):
        super().__init__()
        self.batch_size, self.num_workers, self.pin_memory, self.seed = batch_size, num_workers, pin_memory, seed
        self.shuffle = shuffle
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.predict_set: Dataset | None = None

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def task_kwargs(self) -> dict[str, Any]:
        return {}

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Adopt the task's data contract (called by the runner after setup, before any batch)."""

    def _sampler(self, dataset: Dataset, shuffle: bool) -> DistributedSampler | None:
        """The datamodule deals its own samples (the trainer configs set use_distributed_sampler=false).

        The order is a function of (seed, epoch) alone and rank r takes perm[r::world], so each
        global batch under DDP holds the same samples as the batch of a one-process run.
        """
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        if world == 1 and not shuffle:
            return None
        return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed)

    def _loader(self, dataset: Dataset | None, split: str, shuffle: bool = False) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} has no {split} split; set self.{split}_set in setup()")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self._sampler(dataset, shuffle),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "train", shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_set, "predict")
