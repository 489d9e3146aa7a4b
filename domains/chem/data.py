"""Datamodules for SMILES: language-model training and sampling, property prediction.

Both read either an embedded RDKit data set (`embedded`) or the user's file
(`path`: CSV/TSV/.smi/SDF, gzip too), drop molecules longer than `max_tokens`,
split randomly or by Bemis-Murcko scaffold, and tokenize in the collate
function, so a model restored from a checkpoint can swap in its own vocabulary
(`datamodule.tokenizer`) before any batch is made.

The vocabulary is built from every molecule of the file (no labels are
involved) unless `tokenizer` names a saved one: a `tokenizer.json`, a model
folder from `zoo chem export`, or a chem `.ckpt`; fine-tuning sets it to the
pretrained weights so the token ids agree.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from domains.chem.embedded import load_embedded
from domains.chem.families import draw_context, families
from domains.chem.readers import Molecule, MoleculeTable, read_molecules
from domains.chem.sampling import canonical_or_none
from domains.chem.splits import murcko_scaffold, split_indices
from domains.chem.tokenizer import SmilesTokenizer, split_smiles
from zoo.errors import DataError, ZooError
from zoo.training import BaseDataModule

log = logging.getLogger(__name__)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `(B, L)` ids and the `(B, L)` mask of real tokens."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    for row, seq in zip(ids, sequences):
        row[: len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, ids != pad_id


class ContextDataset(Dataset):
    """Item i: the SMILES of one training sequence, molecule i alone or with members of its family."""

    def __init__(
        self,
        smiles: Sequence[str],
        context_size: int = 1,
        family: Sequence[Sequence[int]] | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ):
        self.smiles, self.context_size, self.family = list(smiles), context_size, family
        self.shuffle, self.seed = shuffle, seed

    def __len__(self) -> int:
        return len(self.smiles)

    def __getitem__(self, i: int) -> list[str]:
        if self.context_size <= 1 or self.family is None:
            return [self.smiles[i]]
        # Training draws a fresh family sample each time (seeded by torch's RNG, which Lightning seeds);
        # evaluation uses a fixed one per index so val/test losses are comparable between epochs.
        seed = int(torch.randint(2**31 - 1, ())) if self.shuffle else (self.seed, i)
        rng = np.random.default_rng(seed)
        return [self.smiles[j] for j in draw_context(i, self.family[i], self.context_size, rng)]


class SampleRequests(Dataset):
    """`num_samples` placeholders: the predict loop of a language model draws one molecule per item."""

    def __init__(self, num_samples: int):
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> int:
        return i


class ChemDataModule(BaseDataModule):
    """Reading, filtering, splitting and the tokenizer; subclasses make the datasets."""

    default_embedded = "nci"

    def __init__(
        self,
        path: str | None = None,
        embedded: str | None = None,
        smiles_column: str | None = None,
        id_column: str | None = None,
        target_columns: Sequence[str] | None = None,
        group_column: str | None = None,
        on_invalid: str = "error",
        rejects_path: str | None = None,
        canonical: bool = True,
        dedupe: bool = True,
        limit: int | None = None,
        split: str = "random",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_tokens: int = 128,
        tokenizer: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        delimiter: str | None = None,
        decimal: str = ".",
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, seed=seed)
        self.path, self.embedded = path, embedded or self.default_embedded
        self.read_kwargs = dict(
            smiles_column=smiles_column,
            id_column=id_column,
            target_columns=list(target_columns or []),
            group_column=group_column,
            on_invalid=on_invalid,
            rejects_path=rejects_path,
            canonical=canonical,
            dedupe=dedupe,
            limit=limit,
            delimiter=delimiter,  # CSV dialect: None detects , ; or tab from the header line
            decimal=decimal,
        )
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.max_tokens, self.tokenizer_source = max_tokens, tokenizer
        self.tokenizer: SmilesTokenizer | None = None
        self.collate_fn = self.collate

    # ---------------------------------------------------------------- reading

    def read(self, path: str | None = None) -> MoleculeTable:
        if path:  # molecules to predict: labels are optional there
            return read_molecules(path, **{**self.read_kwargs, "missing_targets": "nan", "limit": None})
        if self.path:
            return read_molecules(self.path, **self.read_kwargs)
        kwargs = {k: self.read_kwargs[k] for k in ("canonical", "dedupe", "limit")}
        return load_embedded(self.embedded, **kwargs)

    @cached_property
    def molecules(self) -> list[Molecule]:
        """All usable molecules, in file order, those longer than `max_tokens` dropped."""
        table = self.read()
        kept = [m for m in table.molecules if len(split_smiles(m.smiles)) + 2 <= self.max_tokens]
        if len(kept) < len(table.molecules):
            log.info(
                "%s: dropped %d molecules longer than max_tokens=%d",
                table.path,
                len(table.molecules) - len(kept),
                self.max_tokens,
            )
        if len(kept) < 3:
            raise DataError(
                f"{table.path}: only {len(kept)} molecules of at most {self.max_tokens} tokens; "
                "need 3 or more (raise data.max_tokens?)"
            )
        return kept

    @cached_property
    def splits(self) -> tuple[list[Molecule], list[Molecule], list[Molecule]]:
        smiles = [m.smiles for m in self.molecules]
        parts = split_indices(smiles, self.split, self.val_fraction, self.test_fraction, self.seed)
        if not parts[0]:  # nothing to train on, nor to standardise the targets with
            raise DataError(self._empty_training_split(smiles, [len(p) for p in parts]))
        return tuple([self.molecules[i] for i in part] for part in parts)

    def _empty_training_split(self, smiles: list[str], sizes: list[int]) -> str:
        where = f"{self.path or self.embedded}: data.split={self.split} of {len(smiles)} molecules"
        counts = f"(train/val/test {sizes[0]}/{sizes[1]}/{sizes[2]})"
        if self.split == "scaffold":
            scaffolds = len({murcko_scaffold(s) for s in smiles})
            return (
                f"{where} leaves the training split empty {counts}: too few molecules for a scaffold split "
                f"({scaffolds} Bemis-Murcko scaffold set(s)); use data.split=random or give more molecules"
            )
        return f"{where} leaves the training split empty {counts}; give more molecules or lower data.val_fraction"

    @property
    def train_smiles(self) -> list[str]:
        return [m.smiles for m in self.splits[0]]

    @property
    def test_smiles(self) -> list[str]:
        return [m.smiles for m in self.splits[2]]

    def training_split(self) -> dict[str, Any]:
        """What novelty is measured against: the training split's source, size and a hash of its molecules."""
        train = sorted(self.train_smiles)
        return {
            "source": str(self.path or self.embedded),
            "molecules": len(train),
            "sha1": hashlib.sha1("\n".join(train).encode()).hexdigest()[:16],
        }

    def setup_tokenizer(self) -> SmilesTokenizer:
        if self.tokenizer is None:
            if self.tokenizer_source:
                self.tokenizer = SmilesTokenizer.load(self.tokenizer_source)
                self.report_unseen_tokens()
            else:
                self.tokenizer = SmilesTokenizer.from_smiles(m.smiles for m in self.molecules)
        return self.tokenizer

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Encode with the model's own vocabulary (a pretrained or restored model)."""
        tokens = (contract.get("tokenizer") or {}).get("tokens")
        if tokens and (self.tokenizer is None or list(self.tokenizer.tokens) != list(tokens)):
            log.info("using the model's own SMILES vocabulary (%d tokens) for this data", len(tokens))
            self.tokenizer = SmilesTokenizer(list(tokens))
            self.report_unseen_tokens()

    def report_unseen_tokens(self) -> None:
        """A pretrained vocabulary encodes tokens it never saw as <unk>: say how many molecules that affects."""
        unseen: dict[str, int] = {}
        for m in self.molecules:
            for token in {t for t in split_smiles(m.smiles) if t not in self.tokenizer.index}:
                unseen[token] = unseen.get(token, 0) + 1
        if unseen:
            common = ", ".join(f"{t} ({n})" for t, n in sorted(unseen.items(), key=lambda kv: -kv[1])[:5])
            log.warning(
                "%s: tokens unseen by the model's vocabulary are encoded as <unk>: %s (molecules holding each)",
                self.path or self.embedded,
                common,
            )

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": len(self.setup_tokenizer())}

    def task_kwargs(self) -> dict[str, Any]:
        return {"vocab": list(self.setup_tokenizer().tokens)}

    def collate(self, items: list[Any]) -> dict[str, Any]:
        raise NotImplementedError


class SmilesDataModule(ChemDataModule):
    """Causal language modelling on SMILES; `predict` draws `num_samples` molecules.

    context_size: molecules per training sequence. 1 trains an unconditional
        model; k > 1 packs each molecule with k-1 members of its family
        (`group_column`, else its `neighbours` nearest by Tanimoto) separated by
        `<sep>`, which teaches in-context generation.
    prompt: for predict/sample, example molecules that steer generation: a
        molecule file, or a list of SMILES.
    """

    def __init__(
        self,
        context_size: int = 1,
        neighbours: int = 16,
        num_samples: int = 100,
        prompt: str | Sequence[str] | None = None,
        sample_batch_size: int = 64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if context_size < 1:
            raise ZooError(f"data.context_size={context_size}; give 1 (single molecules) or more")
        self.context_size, self.neighbours = context_size, neighbours
        self.num_samples, self.prompt_spec, self.sample_batch_size = num_samples, prompt, sample_batch_size

    @cached_property
    def prompt(self) -> list[str]:
        spec = self.prompt_spec
        if not spec:
            return []
        if isinstance(spec, str) and (
            os.path.isfile(spec) or Path(spec).suffix.lower() in (".smi", ".csv", ".tsv", ".sdf", ".gz")
        ):
            kwargs = {**self.read_kwargs, "target_columns": [], "id_column": None, "group_column": None, "limit": None}
            return read_molecules(spec, **kwargs).smiles
        out = []
        for i, smiles in enumerate(s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)):
            canonical = canonical_or_none(smiles)
            if canonical is None:
                raise DataError(
                    f"data.prompt[{i}]: unparsable SMILES {smiles!r}; give valid molecules or a molecule file"
                )
            out.append(canonical)
        return out

    def _dataset(self, molecules: list[Molecule], shuffle: bool) -> ContextDataset:
        smiles = [m.smiles for m in molecules]
        family = None
        if self.context_size > 1:
            groups = [m.group for m in molecules] if self.read_kwargs["group_column"] else None
            family = families(smiles, groups, self.neighbours)
        return ContextDataset(smiles, self.context_size, family, shuffle=shuffle, seed=self.seed)

    def setup(self, stage: str | None = None) -> None:
        self.setup_tokenizer()
        train, val, test = self.splits
        if stage in (None, "fit"):
            self.train_set, self.val_set = self._dataset(train, True), self._dataset(val, False)
        if stage in (None, "fit", "test"):
            self.test_set = self._dataset(test, False)
        if stage in (None, "predict"):
            self.predict_set = SampleRequests(self.num_samples)

    def model_kwargs(self) -> dict[str, Any]:
        vocab = len(self.setup_tokenizer())
        return {"vocab_size": vocab, "num_classes": vocab, "global_pool": ""}

    def task_kwargs(self) -> dict[str, Any]:
        return {**super().task_kwargs(), "training_split": self.training_split()}

    def collate(self, items: list[Any]) -> dict[str, Any]:
        if isinstance(items[0], int):
            return {"index": torch.tensor(items), "prompt": self.prompt}
        ids, mask = pad_batch([self.tokenizer.encode_context(context) for context in items], self.tokenizer.pad_id)
        return {"ids": ids, "mask": mask}

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.predict_set, batch_size=self.sample_batch_size, collate_fn=self.collate)


class PropertyDataModule(ChemDataModule):
    """Molecules with numeric labels for regression, or 0/1 labels for (multi-task) classification.

    Missing labels (empty cells) are NaN and ignored by the loss and metrics.
    Regression targets are standardised with the training split's mean and
    standard deviation (stored in the task, undone in predictions).
    predict_path: molecules to predict (labels optional); default the test split.
    """

    default_embedded = "chembl_pic50"

    def __init__(self, task_type: str = "regression", predict_path: str | None = None, **kwargs):
        kwargs.setdefault("split", "scaffold")
        super().__init__(**kwargs)
        if task_type not in ("regression", "classification"):
            raise ZooError(f"data.task_type={task_type!r}; choose regression or classification")
        if self.path and not self.read_kwargs["target_columns"]:
            raise ZooError(f"{self.path}: give the label column(s): data.target_columns=[name,...]")
        self.task_type, self.predict_path = task_type, predict_path

    @cached_property
    def target_names(self) -> list[str]:
        names = list(self.molecules[0].targets)
        if not names:
            raise DataError(f"{self.path or self.embedded}: molecules have no labels; set data.target_columns")
        return names

    def _labels(self, molecules: Sequence[Molecule]) -> np.ndarray:
        return np.array([[m.targets.get(n, math.nan) for n in self.target_names] for m in molecules], dtype=np.float64)

    @cached_property
    def target_stats(self) -> tuple[list[float], list[float]]:
        labels = self._labels(self.splits[0])
        if self.task_type == "classification":
            seen = set(np.unique(labels[~np.isnan(labels)]).tolist())
            if not seen <= {0.0, 1.0}:
                raise DataError(
                    f"{self.path or self.embedded}: classification labels must be 0 or 1, found {sorted(seen)[:5]}"
                )
            return [0.0] * len(self.target_names), [1.0] * len(self.target_names)
        unlabelled = [n for n, column in zip(self.target_names, labels.T) if np.isnan(column).all()]
        if unlabelled:  # its mean and std would be NaN, and so every standardised target
            raise DataError(
                f"{self.path or self.embedded}: target {unlabelled[0]!r} has no label in the training split "
                f"({len(labels)} molecules, data.split={self.split}); label more molecules or use data.split=random"
            )
        mean, std = np.nanmean(labels, axis=0), np.nanstd(labels, axis=0)
        return mean.tolist(), np.where(std > 0, std, 1.0).tolist()

    def setup(self, stage: str | None = None) -> None:
        self.setup_tokenizer()
        train, val, test = self.splits
        self.train_set, self.val_set, self.test_set = train, val, test
        if stage in (None, "predict"):
            self.predict_set = self.read(self.predict_path).molecules if self.predict_path else test

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": len(self.setup_tokenizer()), "num_classes": len(self.target_names)}

    def task_kwargs(self) -> dict[str, Any]:
        mean, std = self.target_stats
        return {
            **super().task_kwargs(),
            "target_names": self.target_names,
            "task_type": self.task_type,
            "target_mean": mean,
            "target_std": std,
        }

    def collate(self, items: list[Molecule]) -> dict[str, Any]:
        ids, mask = pad_batch([self.tokenizer.encode(m.smiles) for m in items], self.tokenizer.pad_id)
        names = self.target_names
        labels = torch.tensor([[m.targets.get(n, math.nan) for n in names] for m in items], dtype=torch.float32)
        return {"ids": ids, "mask": mask, "y": labels, "id": [m.id for m in items], "smiles": [m.smiles for m in items]}
