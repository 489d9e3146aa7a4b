"""Labelled sequences and genomic regions, and what to do with sequences longer than the model allows.

`on_too_long`:
- `error`: stop, naming the first record that is too long and its length;
- `truncate`: keep the first `max_length` bases;
- `slide`: cut the record into windows of `max_length` every `stride` bases (the
  last window is aligned to the record's end, so every base is covered); each
  window is a record `id:start-end` (0-based, end exclusive) with the record's label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from zoo.errors import DataError, ZooError

TOO_LONG_POLICIES = ("error", "truncate", "slide")


@dataclass(frozen=True)
class Example:
    id: str
    seq: str
    label: Any = None  # class name (classification), tuple of floats (regression), None when unknown
    split: str | None = None  # train | val | test when the source says so


@dataclass(frozen=True)
class Region:
    """A BED interval: 0-based start, exclusive end."""

    chrom: str
    start: int
    end: int
    name: str = ""
    strand: str = "."
    score: str = ""

    @property
    def id(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"


def windows(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) windows of `size` every `stride` covering [0, length); the last ends at `length`."""
    if length <= size:
        return [(0, length)]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return [(s, s + size) for s in starts]


def apply_length_policy(
    examples: Sequence[Example],
    max_length: int | None,
    policy: str = "error",
    stride: int | None = None,
    source: str = "",
) -> list[Example]:
    if policy not in TOO_LONG_POLICIES:
        raise ZooError(f"data.on_too_long={policy!r}; choose one of {', '.join(TOO_LONG_POLICIES)}")
    if not max_length:
        return list(examples)
    out: list[Example] = []
    for example in examples:
        if len(example.seq) <= max_length:
            out.append(example)
        elif policy == "error":
            raise DataError(
                f"{source}: record {example.id!r} has {len(example.seq):,} bases, more than "
                f"data.max_length={max_length:,}; "
                "set data.on_too_long=truncate or slide, raise data.max_length, or pick a longer-context model"
            )
        elif policy == "truncate":
            out.append(replace(example, seq=example.seq[:max_length]))
        else:
            for start, end in windows(len(example.seq), max_length, stride or max_length):
                out.append(replace(example, id=f"{example.id}:{start}-{end}", seq=example.seq[start:end]))
    return out
