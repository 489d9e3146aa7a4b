"""Genomics datamodules: labelled sequences, genome windows for pre-training, per-base labels.

Every datamodule reads the user's file from `path` (null: the embedded JASPAR
data, see `embedded.py`) and hands the tokenizer to the task, which saves it
with the model. `SequenceDataModule` serves classification and regression;
`PretrainDataModule` random windows of a FASTA for language modelling;
`TokenDataModule` windows with per-base labels from a BED file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from domains.genomics.bed import RegionLabels, read_bed
from domains.genomics.datasets import GenomeWindows, SequenceDataset, collate_sequences, collate_windows
from domains.genomics.embedded import MotifTask, synthetic_genome
from domains.genomics.fasta import DNA_CHARACTERS, InMemoryFasta, open_genome
from domains.genomics.jaspar import DEFAULT_MOTIFS, JASPAR_RELEASE, load_motifs, scanner_predictions
from domains.genomics.records import Example, apply_length_policy
from domains.genomics.sources import load_examples
from domains.genomics.tokenizer import CharTokenizer, load_tokenizer, make_tokenizer, tokenizer_from_config
from zoo.errors import DataError, ZooError
from zoo.training import BaseDataModule

log = logging.getLogger(__name__)


class GenomicsDataModule(BaseDataModule):
    """The tokenizer and what the model and task learn from the data.

    tokenizer: a saved `tokenizer.json` or model folder to reuse (fine-tuning);
        else one is made from `alphabet` (dna | protein), `on_ambiguous`, `padding_side`,
        `add_special_tokens` and `prepend_cls` (a DNA [CLS] first, for `cls` pooling).
    """

    def __init__(
        self,
        alphabet: str = "dna",
        on_ambiguous: str = "n",
        padding_side: str = "left",
        add_special_tokens: bool = True,
        prepend_cls: bool = False,
        tokenizer: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, seed=seed)
        if tokenizer:
            self.tokenizer: CharTokenizer = load_tokenizer(tokenizer)
        else:
            extra = {"on_ambiguous": on_ambiguous, "prepend_cls": prepend_cls} if alphabet == "dna" else {}
            self.tokenizer = make_tokenizer(
                alphabet, padding_side=padding_side, add_special_tokens=add_special_tokens, **extra
            )

    def use_tokenizer(self, tokenizer: CharTokenizer) -> None:
        """A restored model brings its own tokenizer; every dataset encodes with it from now on."""
        self.tokenizer = tokenizer
        for dataset in (
            self.train_set,
            self.val_set,
            self.test_set,
            self.predict_set,
            *getattr(self, "test_sets", {}).values(),
        ):
            if dataset is not None:
                dataset.tokenizer = tokenizer
        self.collate_fn = self.make_collate()

    def make_collate(self):
        return collate_sequences(self.tokenizer)

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Encode with the model's tokenizer; refuse samples longer than the model takes."""
        wanted = contract.get("tokenizer")
        if wanted and wanted != self.tokenizer.config():
            log.info("encoding the data with the model's own tokenizer (%s)", wanted.get("kind", "?"))
            self.use_tokenizer(tokenizer_from_config(wanted))
        limit = contract.get("max_tokens")
        longest = self.longest_input()
        if limit and longest > limit:
            raise ZooError(
                f"the data has samples of {longest:,} tokens but {contract.get('model', 'the model')} takes at most "
                f"{limit:,} (model.kwargs.max_seq_len); raise it, or shorten the data (data.max_length with "
                "data.on_too_long=truncate|slide, or data.context_length)"
            )

    def longest_input(self) -> int:
        """Most tokens any sample of the prepared splits has (to check against the model's limit)."""
        raise NotImplementedError

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": len(self.tokenizer)}

    def task_kwargs(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.config()}


class SequenceDataModule(GenomicsDataModule):
    """Sequences with one label each: classification (class names) or regression (numbers).

    path: CSV/TSV, FASTA/FASTQ (+ `labels`), BED (+ `reference`), a GenomicBenchmarks
        folder, or null for the embedded JASPAR motif task (`embedded` sets its sizes).
    Splits come from the source (a split column, GenomicBenchmarks' train/test) or are
    drawn at random (`val_fraction`, `test_fraction`). `shuffle_labels` permutes the
    training and validation labels: the control whose test accuracy must stay at chance.
    `max_length`, `on_too_long` (error | truncate | slide) and `stride` bound the length.
    `rc_prob` reverse-complements training sequences with that probability (both strands).
    predict_path: sequences to predict (labels optional); default the test split.
    """

    def __init__(
        self,
        path: str | None = None,
        labels: str | None = None,
        reference: str | None = None,
        sequence_column: str | None = None,
        label_columns: Sequence[str] | None = None,
        id_column: str | None = None,
        split_column: str | None = None,
        task_type: str = "classification",
        max_length: int | None = 1024,
        on_too_long: str = "error",
        stride: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        shuffle_labels: bool = False,
        rc_prob: float = 0.0,
        predict_path: str | None = None,
        embedded: dict | None = None,
        delimiter: str | None = None,
        decimal: str = ".",
        **common: Any,
    ):
        super().__init__(**common)
        if task_type not in ("classification", "regression"):
            raise ZooError(f"data.task_type={task_type!r}; choose classification or regression")
        if rc_prob and self.tokenizer.kind != "dna":
            raise ZooError("data.rc_prob reverse-complements DNA; set it to 0 for protein sequences")
        self.rc_prob = rc_prob
        self.path, self.predict_path, self.task_type = path, predict_path, task_type
        self.read_kwargs = dict(
            labels=labels,
            reference=reference,
            sequence_column=sequence_column,
            label_columns=list(label_columns or []),
            id_column=id_column,
            split_column=split_column,
            task_type=task_type,
            delimiter=delimiter,  # CSV dialect of a table (None: detected from the header line)
            decimal=decimal,
        )
        self.length_policy = dict(max_length=max_length, policy=on_too_long, stride=stride)
        self.val_fraction, self.test_fraction, self.shuffle_labels = val_fraction, test_fraction, shuffle_labels
        self.embedded = MotifTask(**(embedded or {}))
        self.collate_fn = self.make_collate()
        self.test_sets: dict[str, SequenceDataset] = {}

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "embedded JASPAR motifs"

    # ---------------------------------------------------------------- reading and splitting

    @cached_property
    def splits(self) -> dict[str, list[Example]]:
        if not self.path:
            return self.embedded.splits()
        examples = load_examples(self.path, self.tokenizer, **self.read_kwargs)
        given = {e.split for e in examples}
        rng = np.random.default_rng(self.seed)
        if given <= {"train", "val", "test"} and "train" in given and "test" in given:
            parts = {s: [e for e in examples if e.split == s] for s in ("train", "val", "test")}
            if not parts["val"]:
                parts["train"], parts["val"] = _carve(parts["train"], self.val_fraction, rng)
        else:
            rest, test = _carve(examples, self.test_fraction, rng)
            train, val = _carve(rest, self.val_fraction / max(1e-9, 1 - self.test_fraction), rng)
            parts = {"train": train, "val": val, "test": test}
        if not parts["train"] or not parts["val"] or not parts["test"]:
            raise DataError(
                f"{self.path}: {len(examples)} records are too few to split into train/val/test; give more records"
            )
        return parts

    @cached_property
    def classes(self) -> list[str]:
        if self.task_type == "regression":
            return list(self.read_kwargs["label_columns"]) or ["value"]
        classes = sorted({str(e.label) for e in self.splits["train"]})
        if len(classes) < 2:
            raise DataError(
                f"{self.source}: the training split has {len(classes)} class ({', '.join(classes)}); "
                "classification needs two or more"
            )
        for split, examples in self.splits.items():
            unseen = next((e for e in examples if e.label is not None and str(e.label) not in classes), None)
            if unseen is not None:
                raise DataError(
                    f"{self.source}: record {unseen.id!r} ({split}) has class {unseen.label!r}, absent from training; "
                    "every class needs training examples"
                )
        return classes

    def _dataset(self, examples: Sequence[Example], rc_prob: float = 0.0) -> SequenceDataset:
        examples = apply_length_policy(examples, source=self.source, **self.length_policy)
        index = {c: i for i, c in enumerate(self.classes)} if self.task_type == "classification" else None
        return SequenceDataset(examples, self.tokenizer, index, len(self.classes), self.source, rc_prob)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self.splits["train"], self.splits["val"]
        if self.shuffle_labels:
            rng = np.random.default_rng(self.seed + 1)
            train, val = (_permute_labels(part, rng) for part in (train, val))
        self.train_set, self.val_set = self._dataset(train, self.rc_prob), self._dataset(val)
        self.test_sets = {name: self._dataset(self.splits[name]) for name in ("test", "test_rc") if name in self.splits}
        self.test_set = self.test_sets["test"]
        if self.predict_path:
            unlabelled = {**self.read_kwargs, "require_labels": False}
            self.predict_set = self._dataset(load_examples(self.predict_path, self.tokenizer, **unlabelled))
        else:
            self.predict_set = self.test_set

    def longest_input(self) -> int:
        special = len(self.tokenizer.encode("A")) - 1
        sets = [self.train_set, self.val_set, self.predict_set, *self.test_sets.values()]
        return max((len(e.seq) + special for d in sets if d is not None for e in d.examples), default=0)

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(dataset, "test") for dataset in self.test_sets.values()]
        return loaders[0] if len(loaders) == 1 else loaders

    @property
    def test_names(self) -> list[str]:
        return list(self.test_sets) or ["test"]

    def task_kwargs(self) -> dict[str, Any]:
        kwargs = {**super().task_kwargs(), "classes": self.classes, "task_type": self.task_type}
        if self.task_type == "regression":
            values = np.array([e.label for e in self.splits["train"]], dtype=float)
            kwargs.update(
                target_mean=np.nanmean(values, 0).tolist(), target_std=np.nanstd(values, 0).clip(1e-8).tolist()
            )
        return kwargs

    def reference_metrics(self) -> dict[str, float]:
        """Accuracy of the training-free PWM scanner on each embedded test set: the ceiling to compare with."""
        if self.path or self.shuffle_labels:
            return {}
        motifs = self.embedded.motifs()
        names = [m.name for m in motifs]
        out = {}
        for name in self.test_names:
            examples = self.splits[name]
            predicted = scanner_predictions([e.seq for e in examples], motifs)
            out[f"{name}/pwm_scanner_acc"] = float(np.mean([names[p] == e.label for p, e in zip(predicted, examples)]))
        return out


def _carve(
    examples: Sequence[Example], fraction: float, rng: np.random.Generator
) -> tuple[list[Example], list[Example]]:
    """Split off a random `fraction` (at least one record when there are two or more)."""
    order = rng.permutation(len(examples))
    n = min(len(examples) - 1, max(1, round(fraction * len(examples)))) if len(examples) > 1 and fraction > 0 else 0
    taken = set(order[:n].tolist())
    return [e for i, e in enumerate(examples) if i not in taken], [e for i, e in enumerate(examples) if i in taken]


def _permute_labels(examples: Sequence[Example], rng: np.random.Generator) -> list[Example]:
    labels = [examples[i].label for i in rng.permutation(len(examples))]
    return [replace(e, label=label) for e, label in zip(examples, labels)]


# ----------------------------------------------------------------------------- genome windows


def split_spans(
    lengths: dict[str, int], val_fraction: float, test_fraction: float, mode: str = "auto", seed: int = 0
) -> dict[str, list[tuple[str, int, int]]]:
    """Train/val/test spans of a genome: the end of each record (`position`), or whole records (`record`).

    `auto` holds out whole records when there are 20 or more, else the end of each record."""
    if mode == "auto":
        mode = "record" if len(lengths) >= 20 else "position"
    if mode == "record":
        names = list(lengths)
        order = np.random.default_rng(seed).permutation(len(names))
        n_test, n_val = max(1, round(test_fraction * len(names))), max(1, round(val_fraction * len(names)))
        pick = lambda idx: [(names[i], 0, lengths[names[i]]) for i in sorted(idx)]
        return {
            "test": pick(order[:n_test]),
            "val": pick(order[n_test : n_test + n_val]),
            "train": pick(order[n_test + n_val :]),
        }
    if mode != "position":
        raise ZooError(f"data.split={mode!r}; choose auto, position or record")
    out: dict[str, list[tuple[str, int, int]]] = {"train": [], "val": [], "test": []}
    for name, length in lengths.items():
        val_start = int(length * (1 - val_fraction - test_fraction))
        test_start = int(length * (1 - test_fraction))
        out["train"].append((name, 0, val_start))
        out["val"].append((name, val_start, test_start))
        out["test"].append((name, test_start, length))
    return out


class GenomeDataModule(GenomicsDataModule):
    """Windows of `context_length` bases from a FASTA (`path`) or the embedded synthetic genome.

    Training draws `samples_per_epoch` random windows (reverse-complemented with
    probability `rc_prob`); validation and test tile their held-out spans, at most
    `max_eval_windows` each. predict_path: a FASTA whose records are tiled for prediction.
    """

    def __init__(
        self,
        path: str | None = None,
        context_length: int = 1024,
        samples_per_epoch: int = 2000,
        rc_prob: float = 0.0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split: str = "auto",
        max_eval_windows: int = 256,
        predict_path: str | None = None,
        embedded: dict | None = None,
        **common: Any,
    ):
        super().__init__(add_special_tokens=False, **common)
        self.path, self.predict_path, self.context_length = path, predict_path, context_length
        self.samples_per_epoch, self.rc_prob, self.split = samples_per_epoch, rc_prob, split
        self.val_fraction, self.test_fraction, self.max_eval_windows = val_fraction, test_fraction, max_eval_windows
        self.embedded = {
            "records": 4,
            "length": 50_000,
            "mean_gap": 150,
            "seed": 0,
            "motif_ids": list(DEFAULT_MOTIFS),
            "release": JASPAR_RELEASE,
            **(embedded or {}),
        }
        if rc_prob and self.tokenizer.kind != "dna":
            raise ZooError("data.rc_prob reverse-complements DNA; set it to 0 for protein sequences")
        self.collate_fn = self.make_collate()

    def make_collate(self):
        return collate_windows(self.tokenizer)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "embedded synthetic genome"

    @cached_property
    def embedded_genome(self):
        options = dict(self.embedded)
        motifs = load_motifs(options.pop("motif_ids"), options.pop("release"))
        sequences, regions = synthetic_genome(motifs, **options)
        return InMemoryFasta(sequences, "embedded"), regions, [m.name for m in motifs]

    @property
    def allowed(self) -> bytes | None:
        """Characters the index checks while scanning (DNA); protein files are checked by the tokenizer."""
        return DNA_CHARACTERS if self.tokenizer.kind == "dna" else None

    @cached_property
    def genome(self):
        return open_genome(self.path, self.allowed) if self.path else self.embedded_genome[0]

    def labeler(self):
        return None

    def longest_input(self) -> int:
        return self.context_length

    def windows(self, spans, random: bool = False, limit: int | None = None, genome=None) -> GenomeWindows:
        dataset = GenomeWindows(
            genome or self.genome,
            spans,
            self.context_length,
            self.tokenizer,
            random=random,
            samples=self.samples_per_epoch,
            rc_prob=self.rc_prob if random else 0.0,
            labeler=self.labeler(),
        )
        if limit and len(dataset) > limit:
            step = len(dataset) / limit  # evenly over the spans, not just their beginning
            dataset.tiles = [dataset.tiles[int(i * step)] for i in range(limit)]
        return dataset

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        spans = split_spans(self.genome.lengths, self.val_fraction, self.test_fraction, self.split, self.seed)
        if not spans["train"] or sum(e - s for _, s, e in spans["train"]) < self.context_length:
            raise DataError(
                f"{self.source}: too little sequence for training windows of {self.context_length}; lower "
                "data.context_length"
            )
        self.train_set = self.windows(spans["train"], random=True)
        self.val_set = self.windows(spans["val"], limit=self.max_eval_windows)
        self.test_set = self.windows(spans["test"], limit=self.max_eval_windows)
        if self.predict_path:
            genome = open_genome(self.predict_path, self.allowed)
            self.predict_set = self.windows([(n, 0, length) for n, length in genome.lengths.items()], genome=genome)
        else:
            self.predict_set = self.test_set


class PretrainDataModule(GenomeDataModule):
    """Next-nucleotide (or masked) pre-training on random windows of a genome."""


class TokenDataModule(GenomeDataModule):
    """Per-base labels from `regions` (a BED file) over the genome in `path`.

    label_by: `name` (one class per distinct BED name, plus `background`) or
    `presence` (inside any region or not). Null `path`: the embedded genome, whose
    regions are the planted motif sites named by factor.
    """

    def __init__(self, regions: str | None = None, label_by: str = "name", **kwargs: Any):
        super().__init__(**kwargs)
        if label_by not in ("name", "presence"):
            raise ZooError(f"data.label_by={label_by!r}; choose name (a class per BED name) or presence")
        if self.path and not regions:
            raise DataError(f"{self.path}: per-base labels need regions: add data.regions=<regions.bed>")
        self.regions_path, self.label_by = regions, label_by

    @cached_property
    def regions(self):
        return read_bed(self.regions_path) if self.path else self.embedded_genome[1]

    @cached_property
    def classes(self) -> list[str]:
        if self.label_by == "presence":
            return ["outside", "inside"]
        names = sorted({r.name for r in self.regions})
        if any(n in ("", ".") for n in names):
            raise DataError(
                f"{self.regions_path}: some regions have no name (BED column 4); name them or use "
                "data.label_by=presence"
            )
        return ["background", *names]

    def labeler(self):
        index = {c: i for i, c in enumerate(self.classes)} if self.label_by == "name" else None
        return RegionLabels(self.regions, index)

    def task_kwargs(self) -> dict[str, Any]:
        return {**super().task_kwargs(), "classes": self.classes}
