"""The recsys datamodule and the contract a trained recommender carries (catalogue, tokenizer, sentences).

`RecDataModule` reads the embedded MovieLens-100k (`path: null`) or the user's files (`data.path`: a RecBole
`.inter` or a `.jsonl` of histories, a RecBole dataset folder, with `data.item_path` or the item file beside
it; readers in `domains.recsys.movielens`), keeps the first `max_users` users and the `max_items` most
interacted items, and splits leave-one-out. `zero_shot` holds a fraction of the items out of training
entirely (`movielens.zero_shot_split`): the test then asks for held-out items only.

Batches are catalogue indices, not tokens: `{"sequences": [[i, ...], ...]}` for training and
`{"histories": [[i, ...], ...], "targets": (B,)}` for validation and test. The task turns them into its
model's inputs (sentences for Recformer, ids for SASRec), so one datamodule serves every model and a
restored model reads data with its own tokenizer.

`RecContract` is what the data tells a new task and what a trained task hands back (`data_contract()`):
the item catalogue (the model's item table has one row per item, in this order), the item-text tokenizer
and the sentence limits. A restored task gives the datamodule its catalogue, and the data's histories are
re-indexed to it by item id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from domains.recsys.movielens import (
    Catalogue,
    Interactions,
    leave_one_out,
    load_movielens_100k,
    most_popular_items,
    read_user_data,
    zero_shot_split,
)
from domains.recsys.sentences import SentenceConfig
from domains.recsys.tokenizer import ItemTokenizer
from zoo.errors import DataError, ZooError
from zoo.training import BaseDataModule
from zoo.training.data import ListDataset, TextContract

log = logging.getLogger(__name__)

EMBEDDED = "MovieLens-100k (RecBole's bundled ml-100k)"


# ----------------------------------------------------------------------------- the contract


def catalogue_from_records(records: Sequence[Mapping[str, str]], source: str = "<model catalogue>") -> Catalogue:
    """[{"item": id, key: value, ...}, ...] (the `Catalogue.to_jsonl` lines) -> Catalogue."""
    ids = [str(r["item"]) for r in records]
    attributes = [{k: str(v) for k, v in r.items() if k != "item"} for r in records]
    return Catalogue(ids, attributes, source)


@dataclass
class RecContract(TextContract):
    """The catalogue a model ranks (item table row i = item i), its tokenizer (None: never built, e.g. a model
    that needs no text) and the sentence limits."""

    catalogue: Catalogue
    sentences: SentenceConfig
    tokenizer: ItemTokenizer | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "catalogue": [{"item": i, **a} for i, a in zip(self.catalogue.item_ids, self.catalogue.attributes)],
            "sentences": asdict(self.sentences),
        }
        if self.tokenizer is not None:
            out["tokenizer"] = json.loads(self.tokenizer.to_json())
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the data contract") -> RecContract:
        try:
            catalogue = catalogue_from_records(data["catalogue"], where)
            sentences = SentenceConfig(**data["sentences"])
        except (KeyError, TypeError) as err:
            raise ZooError(f"{where} is not a recsys contract (catalogue, sentences, tokenizer): {err}") from None
        tokenizer = data.get("tokenizer")
        tokenizer = ItemTokenizer.from_json(json.dumps(tokenizer), where) if tokenizer else None
        return cls(catalogue, sentences, tokenizer)


# ----------------------------------------------------------------------------- reading


def _user_files(path: str, item_path: str | None) -> tuple[Path, Path]:
    """(histories, items) for `data.path` / `data.item_path` (see the module docstring)."""
    histories = Path(path)
    if not histories.exists():
        raise DataError(f"data.path={path}: no such file or folder; give a .inter or .jsonl file of histories")
    if histories.is_dir():  # a RecBole dataset folder: <name>.inter + <name>.item
        inter = sorted(histories.glob("*.inter"))
        if len(inter) != 1:
            raise DataError(f"data.path={path}: a RecBole folder needs exactly one .inter file, found {len(inter)}")
        histories = inter[0]
    if item_path:
        items = Path(item_path)
    elif histories.suffix == ".jsonl":
        items = histories.with_name(histories.stem + ".items.jsonl")
    else:
        items = histories.with_suffix(".item")
    if not items.is_file():
        raise DataError(
            f"data.path={path}: no item file {items} beside it; give the item text with data.item_path=<.item|.jsonl>"
        )
    return histories, items


def _checked_sentences(sentences: Mapping[str, Any] | None) -> SentenceConfig:
    try:
        config = SentenceConfig(**dict(sentences or {}))
    except TypeError as err:
        raise ZooError(
            f"data.sentences: {err}; keys are max_attr_num, max_attr_length, max_items, max_tokens"
        ) from None
    for key, value in asdict(config).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ZooError(f"data.sentences.{key}={value!r}: must be a whole number >= 1")
    return config


def collate(records: list[Any]) -> dict[str, Any]:
    """Training sequences -> {"sequences"}; (history, target) cases -> {"histories", "targets"}."""
    if isinstance(records[0], tuple):
        return {"histories": [list(h) for h, _ in records], "targets": torch.tensor([t for _, t in records])}
    return {"sequences": [list(s) for s in records]}


class RecDataModule(BaseDataModule):
    """Histories and item text for sequential recommendation (module docstring).

    path, item_path: the user's files (null: the embedded MovieLens-100k). max_users, max_items: a subset
    (null: all). zero_shot: fraction of items held out of training; zero_shot_train: "unseen" trains
    without them, "seen" on everything (same test cases: the gap). tokenizer: a tokenizer.json or a folder
    with vocab.json + merges.txt (null: byte-level BPE of `vocab_size` trained on the training items' text).
    sentences: `SentenceConfig` limits.
    """

    def __init__(
        self,
        path: str | None = None,
        item_path: str | None = None,
        max_users: int | None = 300,
        max_items: int | None = 400,
        zero_shot: float | None = None,
        zero_shot_train: str = "unseen",
        tokenizer: str | None = None,
        vocab_size: int = 2048,
        sentences: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, seed=seed)
        for key, value in (("max_users", max_users), ("max_items", max_items), ("vocab_size", vocab_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ZooError(f"data.{key}={value!r}: must be a whole number >= 1 (or null: all)")
        if zero_shot is not None and not (isinstance(zero_shot, (int, float)) and 0 < zero_shot < 1):
            raise ZooError(f"data.zero_shot={zero_shot!r}: give the fraction of items to hold out, in (0, 1), or null")
        if zero_shot_train not in ("unseen", "seen"):
            raise ZooError(f"data.zero_shot_train={zero_shot_train!r}: choose unseen or seen")
        if item_path and not path:
            raise ZooError("data.item_path needs data.path (the histories it describes)")
        self.path, self.item_path, self.max_users, self.max_items = path, item_path, max_users, max_items
        self.zero_shot, self.zero_shot_train = zero_shot, zero_shot_train
        self.tokenizer_source, self.vocab_size = tokenizer, vocab_size
        self.sentences = _checked_sentences(sentences)
        self.collate_fn = collate
        self.interactions: Interactions | None = None
        self.held_out: list[int] = []
        self._tokenizer: ItemTokenizer | None = None

    # ------------------------------------------------------------------ reading and splitting

    def read(self) -> Interactions:
        if self.path:
            data = read_user_data(*_user_files(self.path, self.item_path))
            if self.max_users:
                data = data.subset(self.max_users)
        else:
            data = load_movielens_100k(self.max_users)
        if self.max_items and self.max_items < len(data.catalogue):
            data = most_popular_items(data, self.max_items)
        return data

    def setup(self, stage: str | None = None) -> None:
        if self.interactions is None:
            self.interactions = self.read()
            self._split()

    def _split(self) -> None:
        data = self.interactions
        split = leave_one_out(data)
        train, valid, test = split.train, split.valid, split.test
        self.held_out = []
        if self.zero_shot:
            zs = zero_shot_split(split, len(data.catalogue), float(self.zero_shot), self.seed)
            valid, test = zs.valid, zs.test
            if self.zero_shot_train == "unseen":
                train, self.held_out = zs.train, zs.held_out
            if not test:
                raise DataError(
                    f"zero-shot: no test case asks for one of the {len(zs.held_out)} held-out items; "
                    "use more users (data.max_users) or a larger data.zero_shot"
                )
        train = [s for s in train if len(s) >= 2]  # a next-item pair at least
        if not train or not valid or not test:
            raise DataError(
                f"{self.source}: {len(train)} training sequences, {len(valid)} validation and {len(test)} test cases; "
                "leave-one-out needs users with 3 or more interactions"
            )
        self.train_items = sorted({i for s in train for i in s})
        self.train_set, self.val_set = ListDataset(train), ListDataset(valid)
        self.test_set = ListDataset(test)
        log.info(
            "%s: %d users, %d items; %d training sequences, %d validation and %d test cases%s",
            self.source,
            len(data.users),
            len(data.catalogue),
            len(train),
            len(valid),
            len(test),
            f"; {len(self.held_out)} items held out of training" if self.held_out else "",
        )

    @property
    def source(self) -> str:
        return str(self.path) if self.path else EMBEDDED

    @property
    def catalogue(self) -> Catalogue:
        self.setup()
        return self.interactions.catalogue

    def user_histories(self) -> tuple[list[str], list[list[int]]]:
        """Every user and their whole history (catalogue indices, oldest first): what to recommend next."""
        self.setup()
        return list(self.interactions.users), [list(h) for h in self.interactions.histories]

    # ------------------------------------------------------------------ the contract

    def tokenizer(self) -> ItemTokenizer:
        """The data's tokenizer: `tokenizer` if given, else BPE on the text of the training items only (the
        zero-shot items' text is never seen before the test)."""
        if self._tokenizer is None:
            if self.tokenizer_source:
                self._tokenizer = load_tokenizer(self.tokenizer_source)
            else:
                cat = self.catalogue
                texts = [t for i in self.train_items for kv in cat.attributes[i].items() for t in kv]
                self._tokenizer = ItemTokenizer.train(texts, vocab_size=self.vocab_size)
        return self._tokenizer

    def contract(self) -> RecContract:
        return RecContract(self.catalogue, self.sentences, self.tokenizer())

    def task_kwargs(self) -> dict[str, Any]:
        return {"contract": self.contract().to_text(), "held_out": list(self.held_out)}

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Re-index the histories to the model's catalogue (by item id) when it is not this data's."""
        if not contract:
            return
        model = catalogue_from_records(contract["catalogue"])
        self.setup()
        if model.item_ids == self.catalogue.item_ids:
            return
        data = self.interactions
        histories = []
        for user, history in zip(data.users, data.histories):
            ids = [data.catalogue.item_ids[i] for i in history]
            unknown = [i for i in ids if i not in model.index]
            if unknown:
                raise DataError(
                    f"{self.source}: item {unknown[0]!r} (user {user!r}) is not among the model's {len(model)} items; "
                    "evaluate on the data the model was trained on (same data.max_items), or rank new items by "
                    "text with `zoo recsys predict items=<file>`"
                )
            histories.append([model.index[i] for i in ids])
        log.info("%s: histories re-indexed to the model's catalogue of %d items", self.source, len(model))
        self.interactions = Interactions(model, list(data.users), histories)
        self._split()


def load_tokenizer(source: str) -> ItemTokenizer:
    """A tokenizer.json, or a folder with one, or with the official BPE files vocab.json + merges.txt."""
    path = Path(source)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return ItemTokenizer.load(path / "tokenizer.json")
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            return ItemTokenizer.from_bpe_files(path / "vocab.json", path / "merges.txt")
        raise ZooError(f"data.tokenizer={source}: the folder has neither tokenizer.json nor vocab.json + merges.txt")
    if not path.is_file():
        raise ZooError(f"data.tokenizer={source}: no such file; give a tokenizer.json or a folder")
    return ItemTokenizer.load(path)
