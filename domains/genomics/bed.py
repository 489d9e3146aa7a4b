"""BED regions against a reference FASTA: region sequences and per-base labels.

BED (UCSC): tab-separated `chrom start end [name score strand ...]`, 0-based
half-open intervals; `track`, `browser` and `#` lines are skipped. Regions on
the `-` strand are read as the reverse complement, as `bedtools getfasta -s`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from domains.genomics.records import Example, Region
from domains.genomics.tokenizer import reverse_complement
from zoo.errors import DataError


def read_bed(path: str | os.PathLike) -> list[Region]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such BED file; check data.regions")
    opener = gzip.open if path.suffix == ".gz" else open
    regions = []
    line_no = 0
    try:
        with opener(path, "rt") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) < 3:
                    raise DataError(
                        f"{path}:{line_no}: a BED line needs tab-separated chrom, start, end; got {line.strip()[:60]!r}"
                    )
                try:
                    start, end = int(fields[1]), int(fields[2])
                except ValueError:
                    raise DataError(
                        f"{path}:{line_no}: start and end must be integers, got {fields[1]!r} and {fields[2]!r}"
                    ) from None
                if not 0 <= start < end:
                    raise DataError(
                        f"{path}:{line_no}: need 0 <= start < end, got {start} and {end} (BED is 0-based, end "
                        "exclusive)"
                    )
                strand = fields[5] if len(fields) > 5 else "."
                regions.append(
                    Region(
                        fields[0],
                        start,
                        end,
                        fields[3] if len(fields) > 3 else "",
                        strand,
                        fields[4] if len(fields) > 4 else "",
                    )
                )
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(
            f"{path}:{line_no + 1}: the gzip stream ends early or is corrupt ({err}); the file is truncated, "
            "re-download it"
        ) from None
    if not regions:
        raise DataError(f"{path}: no regions; a BED file needs lines 'chrom<TAB>start<TAB>end'")
    return regions


def region_examples(
    regions: Sequence[Region], genome, label_field: str | None = "name", source: str = ""
) -> list[Example]:
    """One example per region: its sequence (reverse-complemented on '-') and the label from `label_field`."""
    lengths = genome.lengths
    out = []
    for region in regions:
        if region.chrom not in lengths:
            raise DataError(f"{source}: region {region.id} is on {region.chrom!r}, which the reference FASTA lacks")
        if region.end > lengths[region.chrom]:
            raise DataError(
                f"{source}: region {region.id} ends past {region.chrom} (length {lengths[region.chrom]:,}); is "
                "it the right assembly?"
            )
        seq = genome.fetch(region.chrom, region.start, region.end)
        seq = reverse_complement(seq) if region.strand == "-" else seq
        label = getattr(region, label_field) if label_field else None
        if label_field and label in ("", "."):
            raise DataError(f"{source}: region {region.id} has no {label_field}; BED column 4 (name) holds the label")
        record_id = region.name if region.name and not label_field else region.id
        out.append(Example(record_id, seq, label))
    return out


class RegionLabels:
    """Per-base labels from regions: 0 outside every region, else 1 (or `classes[name]`); later regions win overlaps."""

    def __init__(self, regions: Sequence[Region], classes: dict[str, int] | None = None):
        self.by_chrom: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for chrom in {r.chrom for r in regions}:
            mine = [r for r in regions if r.chrom == chrom]
            values = [classes[r.name] if classes else 1 for r in mine]
            self.by_chrom[chrom] = (
                np.array([r.start for r in mine]),
                np.array([r.end for r in mine]),
                np.array(values),
            )

    def __call__(self, chrom: str, start: int, end: int) -> np.ndarray:
        labels = np.zeros(end - start, dtype=np.int64)
        if chrom in self.by_chrom:
            starts, ends, values = self.by_chrom[chrom]
            for i in np.flatnonzero((ends > start) & (starts < end)):
                labels[max(starts[i], start) - start : min(ends[i], end) - start] = values[i]
        return labels
