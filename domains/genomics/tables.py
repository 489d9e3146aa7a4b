"""Labelled sequences from tables (CSV/TSV) and from the GenomicBenchmarks folder layout.

A table has a sequence column and label columns (and optionally id and split
columns); names are found case-insensitively when not given. GenomicBenchmarks
(Grešová et al., BMC Genomic Data 2023) stores one sequence per text file:
`<root>/train/<class>/<id>.txt` and `<root>/test/<class>/<id>.txt`; the class is
the folder name.

CSV dialects: the delimiter is `,`, `;` or a tab, read off the header line (ties go to
the suffix's: tab for .tsv/.tab/.txt, else comma) unless `delimiter` names it
(`data.delimiter=semicolon`); regression labels with decimal commas (`0,5`) are read
when `decimal=","` (`data.decimal=comma`).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

from domains.genomics.records import Example
from zoo.dialect import decimal_mark, table_delimiter
from zoo.errors import DataError

SEQUENCE_NAMES = ("sequence", "seq", "dna", "protein", "sequences")
ID_NAMES = ("id", "record_id", "name", "seq_id", "sequence_id", "identifier")
LABEL_NAMES = ("label", "labels", "class", "target", "y")
CONFIG_KEYS = {"label": "label_columns=[name]"}  # the data key that names a column, where not `<what>_column`
MISSING = ("", "na", "nan", "none", "null")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}


def _open_text(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def _pick(
    header: Sequence[str], wanted: str | None, defaults: Sequence[str], what: str, path: Path, required: bool = True
) -> str | None:
    lower = {h.lower(): h for h in header}
    if wanted:
        if wanted not in header and wanted.lower() not in lower:
            raise DataError(f"{path}: no column {wanted!r} for the {what}; columns are {', '.join(header)}")
        return wanted if wanted in header else lower[wanted.lower()]
    for name in defaults:
        if name in lower:
            return lower[name]
    if required:
        raise DataError(
            f"{path}: no {what} column (looked for {', '.join(defaults)}); name it with "
            f"data.{CONFIG_KEYS.get(what, what.replace(' ', '_') + '_column')}. "
            f"Columns are {', '.join(header)}"
        )
    return None


def read_rows(path: Path, delimiter: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs; the delimiter is `delimiter`, else detected (see the module doc)."""
    name = path.name.lower().removesuffix(".gz")
    default = "\t" if name.endswith((".tsv", ".tab", ".txt")) else ","
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        with _open_text(path) as handle:
            first = handle.readline()
            delimiter = table_delimiter(first, delimiter, default)
            reader = csv.DictReader(itertools.chain([first], handle), delimiter=delimiter)
            for row in reader:
                if None in row:  # DictReader files cells beyond the header under the key None
                    raise DataError(
                        f"{path}:{reader.line_num}: {len(reader.fieldnames) + len(row[None])} fields, the header "
                        f"has {len(reader.fieldnames)} (delimiter {delimiter!r}); quote cells holding the delimiter "
                        "or set data.delimiter"
                    )
                rows.append((reader.line_num, row))
            header = list(reader.fieldnames or [])
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        after = f" (after the row on line {rows[-1][0]})" if rows else ""
        raise DataError(
            f"{path}{after}: the gzip stream ends early or is corrupt ({err}); the file is truncated, re-download it"
        ) from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}:{len(rows) + 2}: not a readable CSV/TSV ({err})") from None
    if not header:
        raise DataError(f"{path}: empty table; it needs a header row and one row per sequence")
    return header, rows


def parse_label(value: str | None, task_type: str, where: str, column: str, decimal: str = "."):
    if value is None or value.strip().lower() in MISSING:
        return None
    if task_type == "regression":
        try:
            number = float(value.replace(",", ".") if decimal == "," else value)
        except ValueError:
            comma = decimal == "." and re.fullmatch(r"\s*[-+]?\d*,\d+\s*", value)
            hint = "; the file writes decimal commas: add data.decimal=comma" if comma else ""
            raise DataError(
                f"{where}: label {value!r} in column {column!r} is not a number (task_type=regression){hint}"
            ) from None
        if math.isinf(number):  # one inf makes every loss of the run NaN
            raise DataError(f"{where}: label {value!r} in column {column!r} is not finite; give a number")
        return number
    return value.strip()


def read_table(
    path: str | os.PathLike,
    sequence_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    task_type: str = "classification",
    require_labels: bool = True,
    delimiter: str | None = None,
    decimal: str | None = ".",
) -> list[Example]:
    path = Path(path)
    decimal = decimal_mark(decimal)
    header, rows = read_rows(path, delimiter)
    seq_col = _pick(header, sequence_column, SEQUENCE_NAMES, "sequence", path)
    id_col = _pick(header, id_column, ID_NAMES, "id", path, required=False)
    labels = list(label_columns or [])
    if not labels:
        found = _pick(header, None, LABEL_NAMES, "label", path, required=require_labels)
        labels = [found] if found else []
    labels = [_pick(header, c, (), "label", path) for c in labels]
    split_col = _pick(header, split_column, ("split", "fold", "set"), "split", path, required=bool(split_column))
    examples = []
    for line, row in rows:
        record_id = (row.get(id_col) or "").strip() if id_col else f"row{line - 1}"
        where = f"{path}:{line} (record {record_id!r})"
        seq = (row.get(seq_col) or "").strip()
        if not seq:
            raise DataError(f"{where}: empty sequence; fill it or drop the row")
        values = [parse_label(row.get(c), task_type, where, c, decimal) for c in labels]
        if require_labels and any(v is None for v in values):
            column = labels[[v is None for v in values].index(True)]
            raise DataError(f"{where}: missing label in column {column!r}; fill it or drop the row")
        label = (values[0] if task_type == "classification" else tuple(values)) if labels else None
        split = None
        if split_col:
            split = SPLIT_NAMES.get((row.get(split_col) or "").strip().lower())
            if split is None:
                raise DataError(f"{where}: split {row.get(split_col)!r} is not train, val or test")
        examples.append(Example(record_id, seq, label, split))
    if not examples:
        raise DataError(f"{path}: no rows under the header; add one row per sequence")
    return examples


def read_labels(
    path: str | os.PathLike,
    id_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    task_type: str = "classification",
    delimiter: str | None = None,
    decimal: str | None = ".",
) -> dict[str, object]:
    """Labels of FASTA records from a table `id,label[,...]` (a missing cell is None)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labels file; check data.labels")
    decimal = decimal_mark(decimal)
    header, rows = read_rows(path, delimiter)
    id_col = _pick(header, id_column, ID_NAMES, "id", path)
    labels = (
        [_pick(header, c, (), "label", path) for c in label_columns]
        if label_columns
        else [_pick(header, None, LABEL_NAMES, "label", path)]
    )
    out = {}
    for line, row in rows:
        values = [parse_label(row.get(c), task_type, f"{path}:{line}", c, decimal) for c in labels]
        out[(row.get(id_col) or "").strip()] = (
            None if any(v is None for v in values) else (values[0] if task_type == "classification" else tuple(values))
        )
    return out


def is_genomic_benchmarks(path: Path) -> bool:
    return path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir()


def read_genomic_benchmarks(root: str | os.PathLike) -> list[Example]:
    root = Path(root)
    examples = []
    for split in ("train", "test"):
        classes = sorted(p for p in (root / split).iterdir() if p.is_dir())
        if not classes:
            raise DataError(f"{root / split}: no class folders; GenomicBenchmarks holds {split}/<class>/<id>.txt")
        for folder in classes:
            for file in sorted(folder.glob("*.txt")):
                seq = "".join(file.read_text().split())
                if not seq:
                    raise DataError(f"{file}: empty record (no sequence); remove the file or fill it")
                examples.append(Example(f"{split}/{folder.name}/{file.stem}", seq, folder.name, split))
    return examples
