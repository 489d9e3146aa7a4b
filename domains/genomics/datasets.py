"""Torch datasets over labelled sequences and over windows of a genome, with their collate functions.

Batches are dicts: `id` (list of record ids), `ids` `(B, L)` token ids, `mask`
`(B, L)` True on real tokens, and `y` (class index, regression targets, or
per-base labels with -100 on padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from domains.genomics.records import Example, windows
from domains.genomics.tokenizer import CharTokenizer, reverse_complement

IGNORE = -100


class SequenceDataset(Dataset):
    """Labelled (or unlabelled) sequences; `label_index` maps class names to indices, None for regression.

    rc_prob: serve the reverse complement instead with this probability (training on both strands;
    drawn with torch's RNG, so Lightning's seeding makes it repeatable)."""

    def __init__(
        self,
        examples: Sequence[Example],
        tokenizer: CharTokenizer,
        label_index: dict[str, int] | None,
        num_targets: int = 1,
        source: str = "",
        rc_prob: float = 0.0,
    ):
        self.examples, self.tokenizer, self.label_index = list(examples), tokenizer, label_index
        self.num_targets, self.source, self.rc_prob = num_targets, source, rc_prob

    def __len__(self) -> int:
        return len(self.examples)

    def target(self, label: Any) -> torch.Tensor:
        if self.label_index is not None:
            return torch.tensor(self.label_index[label] if label is not None else IGNORE)
        values = label if label is not None else (float("nan"),) * self.num_targets
        return torch.tensor(values, dtype=torch.float32)

    def __getitem__(self, i: int) -> dict[str, Any]:
        example = self.examples[i]
        seq = reverse_complement(example.seq) if self.rc_prob and float(torch.rand(())) < self.rc_prob else example.seq
        ids = self.tokenizer.encode(seq, where=f"{self.source}: record {example.id!r}")
        return {"id": example.id, "ids": ids, "y": self.target(example.label)}


def collate_sequences(tokenizer: CharTokenizer) -> Callable[[list[dict]], dict[str, Any]]:
    def collate(items: list[dict]) -> dict[str, Any]:
        ids, mask = tokenizer.pad([item["ids"] for item in items])
        return {
            "id": [item["id"] for item in items],
            "ids": ids,
            "mask": mask,
            "y": torch.stack([item["y"] for item in items]),
        }

    return collate


class GenomeWindows(Dataset):
    """Windows of `size` bases from `spans` [(chrom, start, end)] of a genome.

    random=True: item i is a fresh random window (`samples` per epoch, drawn with
    torch's RNG so Lightning's seeding makes it repeatable); False: the spans tiled
    by `stride` (evaluation and prediction). `labeler(chrom, start, end)` gives
    per-base labels (token tasks); `rc_prob` reverse-complements a window (and its
    labels) with that probability, for training on both strands.
    """

    def __init__(
        self,
        genome,
        spans: Sequence[tuple[str, int, int]],
        size: int,
        tokenizer: CharTokenizer,
        random: bool = False,
        samples: int = 0,
        stride: int | None = None,
        rc_prob: float = 0.0,
        labeler: Callable[[str, int, int], np.ndarray] | None = None,
    ):
        self.genome, self.size, self.tokenizer, self.random = genome, size, tokenizer, random
        self.spans = [s for s in spans if s[2] > s[1]]
        self.samples, self.rc_prob, self.labeler = samples, rc_prob, labeler
        lengths = np.array([end - start for _, start, end in self.spans], dtype=float)
        self.weights = torch.from_numpy(lengths / lengths.sum()) if len(lengths) else None
        self.tiles = (
            []
            if random
            else [(c, s + a, s + b) for c, s, e in self.spans for a, b in windows(e - s, size, stride or size)]
        )

    def __len__(self) -> int:
        return self.samples if self.random else len(self.tiles)

    def window(self, i: int) -> tuple[str, int, int]:
        if not self.random:
            return self.tiles[i]
        chrom, start, end = self.spans[int(torch.multinomial(self.weights, 1))]
        offset = int(torch.randint(0, max(1, end - start - self.size + 1), ()))
        return chrom, start + offset, min(end, start + offset + self.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        chrom, start, end = self.window(i)
        seq = self.genome.fetch(chrom, start, end)
        labels = self.labeler(chrom, start, end) if self.labeler else None
        flip = self.rc_prob > 0 and float(torch.rand(())) < self.rc_prob
        if flip:
            seq = reverse_complement(seq)
            labels = labels[::-1].copy() if labels is not None else None
        item = {
            "id": f"{chrom}:{start}-{end}",
            "ids": self.tokenizer.encode(seq, where=f"{chrom}:{start}-{end}", special_tokens=False),
            "strand": "-" if flip else "+",
        }
        if labels is not None:
            item["labels"] = labels
        return item


def collate_windows(tokenizer: CharTokenizer) -> Callable[[list[dict]], dict[str, Any]]:
    def collate(items: list[dict]) -> dict[str, Any]:
        ids, mask = tokenizer.pad([item["ids"] for item in items])
        batch = {
            "id": [item["id"] for item in items],
            "ids": ids,
            "mask": mask,
            "strand": [item["strand"] for item in items],
        }
        if "labels" in items[0]:
            labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
            labels[mask] = torch.cat([torch.as_tensor(item["labels"]) for item in items])
            batch["y"] = labels
        return batch

    return collate
