"""Molecule files in: CSV/TSV with a SMILES column, `.smi`, SDF; each optionally gzip-compressed.

Every record is checked with RDKit. A bad record (unparsable SMILES, empty
line, non-numeric label, SDF block RDKit can't read) is reported with file and
line; `on_invalid="error"` stops at the first one, `"skip"` drops them, logs a
count and writes them with the reason to a rejects CSV. Canonicalisation (RDKit
canonical isomeric SMILES) and de-duplication (first occurrence wins) are on by
default.

CSV dialects: the delimiter of a `.csv` is `,`, `;` or a tab, read off the header line
unless `delimiter` names it (`data.delimiter=semicolon`); labels written with decimal
commas (`5,1`) are read when `decimal=","` (`data.decimal=comma`).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rdkit import Chem, RDLogger

from zoo.dialect import decimal_mark, table_delimiter
from zoo.errors import DataError
from zoo.io import atomic_path

log = logging.getLogger(__name__)

SMILES_COLUMN_NAMES = ("smiles", "canonical_smiles", "smi", "molecule", "mol")
ID_COLUMN_NAMES = ("id", "name", "mol_id", "molecule_id", "compound_id", "cmpd_id", "identifier", "record_id")
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".smi": "smi",
    ".smiles": "smi",
    ".txt": "smi",
    ".sdf": "sdf",
    ".sd": "sdf",
}


@dataclass
class Molecule:
    id: str
    smiles: str
    targets: dict[str, float] = field(default_factory=dict)
    group: str | None = None


@dataclass
class Rejected:
    where: str
    raw: str
    reason: str


@dataclass
class _Raw:
    """A record before validation: where it came from and what it says."""

    line: int
    text: str
    id: str
    smiles: str | None = None
    molblock: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def file_format(path: str | os.PathLike) -> tuple[str, bool]:
    """('csv'|'tsv'|'smi'|'sdf', gzipped) from the file name."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    gzipped = bool(suffixes) and suffixes[-1] in (".gz", ".gzip")
    suffix = suffixes[-2] if gzipped and len(suffixes) > 1 else (suffixes[-1] if suffixes and not gzipped else "")
    if suffix not in FORMATS:
        raise DataError(
            f"{path}: unknown molecule file type {suffix or '(none)'!r}; use .csv, .tsv, .smi or .sdf (optionally .gz)"
        )
    return FORMATS[suffix], gzipped


def _open_text(path: Path, gzipped: bool) -> io.TextIOBase:
    if not path.is_file():
        raise DataError(f"{path}: no such file; check data.path")
    return gzip.open(path, "rt", newline="") if gzipped else open(path, newline="")


def _pick_column(header: Sequence[str], wanted: str | None, path: Path, what: str) -> str:
    if wanted is not None:
        if wanted not in header:
            raise DataError(
                f"{path}:1: no column {wanted!r} ({what}); columns are {list(header)}; set data.{what}=<name>"
            )
        return wanted
    for name in header:
        if name.strip().lower() in SMILES_COLUMN_NAMES:
            return name
    raise DataError(f"{path}:1: no SMILES column among {list(header)}; set data.smiles_column=<name>")


def _table_records(
    handle,
    path: Path,
    delimiter: str | None,
    default: str,
    decimal: str,
    smiles_column: str | None,
    columns: Sequence[tuple[str, str]],
) -> Iterator[_Raw]:
    first = handle.readline()
    delimiter = table_delimiter(first, delimiter, default)
    if decimal == delimiter:
        raise DataError(
            f"{path}: data.decimal={decimal!r} is also the column delimiter; decimal commas need ';' or tab "
            "between columns"
        )
    reader = csv.reader(itertools.chain([first], handle), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}:1: empty file; expected a header row with a SMILES column")
    smiles_column = _pick_column(header, smiles_column, path, "smiles_column")
    for name, what in columns:
        _pick_column(header, name, path, what)
    position = {name: i for i, name in enumerate(header)}
    # Records are named by an id/name column when the table has one (data.id_column picks another), else by line.
    id_at = next((i for i, name in enumerate(header) if name.strip().lower() in ID_COLUMN_NAMES), None)
    for row in reader:
        line = reader.line_num
        values = dict(zip(header, row))
        if not any(cell.strip() for cell in row):
            yield _Raw(line, delimiter.join(row), str(line), smiles=None, fields={"_error": "empty line"})
            continue
        if len(row) != len(header):
            yield _Raw(
                line,
                delimiter.join(row),
                str(line),
                smiles=None,
                fields={"_error": f"{len(row)} fields, header has {len(header)}"},
            )
            continue
        record_id = (row[id_at].strip() if id_at is not None else "") or str(line)
        yield _Raw(line, delimiter.join(row), record_id, smiles=row[position[smiles_column]].strip(), fields=values)


def _smi_records(handle, path: Path, columns: Sequence[tuple[str, str]]) -> Iterator[_Raw]:
    """Whitespace-separated `SMILES [name [more columns]]`; a first line starting `smiles` names the columns."""
    header: list[str] = []
    for line_number, line in enumerate(handle, start=1):
        text = line.rstrip("\r\n")
        parts = text.split()
        delimited = len(parts) == 1 and re.search(r"[,;|]", text)
        if line_number == 1 and delimited and re.split(r"[,;|]", text)[0].strip().lower() in SMILES_COLUMN_NAMES:
            raise DataError(
                f"{path}:1: the header {text[:60]!r} is a delimited table, but {path.suffix} files are read as "
                "whitespace-separated SMILES; rename the file to .csv"
            )
        if line_number == 1 and parts and parts[0].lower() in SMILES_COLUMN_NAMES:
            header = parts
            for name, what in columns:
                _pick_column(header, name, path, what)
            continue
        if line_number == 1 and columns:
            names = ", ".join(name for name, _ in columns)
            raise DataError(
                f"{path}:1: no header line naming the columns {names}; start the file with one "
                f"(e.g. `smiles name {names.replace(', ', ' ')}`) or use a CSV"
            )
        record_id = parts[1] if len(parts) > 1 else str(line_number)
        if columns and parts and len(parts) != len(header):  # columns are needed, so they must line up
            yield _Raw(
                line_number, text, record_id, fields={"_error": f"{len(parts)} fields, header has {len(header)}"}
            )
            continue
        yield _Raw(line_number, text, record_id, smiles=parts[0] if parts else "", fields=dict(zip(header, parts)))


def _sdf_fields(lines: list[str]) -> dict[str, str]:
    """Data items after `M  END`: `> <NAME>` then value lines up to a blank line."""
    fields, name, values = {}, None, []
    for line in lines:
        if line.startswith(">") and "<" in line and ">" in line[line.index("<") :]:
            name, values = line[line.index("<") + 1 : line.rindex(">")], []
        elif name is not None and not line.strip():
            fields[name], name = "\n".join(values), None
        elif name is not None:
            values.append(line)
    if name is not None:
        fields[name] = "\n".join(values)
    return fields


def _sdf_records(handle, path: Path) -> Iterator[_Raw]:
    block: list[str] = []
    start = 1
    for line_number, line in enumerate(handle, start=1):
        line = line.rstrip("\r\n")
        if line.strip() == "$$$$":
            yield _sdf_block(block, start, path)
            block, start = [], line_number + 1
        else:
            block.append(line)
    if any(line.strip() for line in block):
        yield _sdf_block(block, start, path)


def _sdf_block(block: list[str], start: int, path: Path) -> _Raw:
    end = next((i for i, line in enumerate(block) if line.startswith("M  END")), None)
    molblock = "\n".join(block[: end + 1]) if end is not None else "\n".join(block)
    fields = _sdf_fields(block[end + 1 :]) if end is not None else {}
    title = block[0].strip() if block else ""
    return _Raw(start, title, title or str(start), molblock=molblock if end is not None else None, fields=fields)


@dataclass
class MoleculeTable:
    """What a file held: valid molecules in file order, and what was rejected."""

    path: str
    molecules: list[Molecule]
    rejected: list[Rejected]
    duplicates: int = 0

    @property
    def smiles(self) -> list[str]:
        return [m.smiles for m in self.molecules]


def read_molecules(
    path: str | os.PathLike,
    smiles_column: str | None = None,
    id_column: str | None = None,
    target_columns: Sequence[str] = (),
    group_column: str | None = None,
    on_invalid: str = "error",
    rejects_path: str | os.PathLike | None = None,
    canonical: bool = True,
    dedupe: bool = True,
    limit: int | None = None,
    write_rejects: bool = True,
    missing_targets: str = "error",
    delimiter: str | None = None,
    decimal: str | None = ".",
) -> MoleculeTable:
    """Read, validate, canonicalise and de-duplicate a molecule file.

    target_columns: numeric labels (CSV/TSV columns or SDF fields); an empty
        cell is a missing label (NaN), anything non-numeric is a bad record.
        A column absent from the file is an error, or all-NaN with `missing_targets="nan"`.
    group_column: a column naming each molecule's family (for in-context packing).
    rejects_path: where `on_invalid="skip"` lists the bad records (default
        `<file stem>.rejected.csv` in the working directory); `write_rejects=False` only logs them.
    delimiter: a CSV/TSV's column separator (None: detected from the header line); decimal: "." or ","
        for the labels' decimal mark.
    """
    if on_invalid not in ("error", "skip"):
        raise DataError(f"on_invalid={on_invalid!r}; choose error or skip")
    path = Path(path)
    kind, gzipped = file_format(path)
    target_columns = list(target_columns or [])
    decimal = decimal_mark(decimal)
    molecules, rejected, seen, duplicates, conflicts = [], [], {}, 0, []
    RDLogger.DisableLog("rdApp.*")  # RDKit prints each parse failure to stderr; ours are reported once, with the line
    try:
        with _open_text(path, gzipped) as handle:
            # Columns that must exist (labels only where they are required: not for molecules to predict).
            wanted = [(c, what) for c, what in ((id_column, "id_column"), (group_column, "group_column")) if c]
            wanted += [(c, "target_columns") for c in target_columns] if missing_targets == "error" else []
            if kind in ("csv", "tsv"):
                default = "," if kind == "csv" else "\t"
                records = _table_records(handle, path, delimiter, default, decimal, smiles_column, wanted)
            elif kind == "smi":
                records = _smi_records(handle, path, wanted)
            else:
                records = _sdf_records(handle, path)
            for raw in records:
                where = f"{path}:{raw.line}"
                try:
                    molecule = _validate(
                        raw, kind, where, id_column, target_columns, group_column, canonical, missing_targets, decimal
                    )
                except DataError as err:
                    if on_invalid == "error":
                        raise DataError(f"{err}; fix or remove it, or set data.on_invalid=skip") from None
                    rejected.append(Rejected(where, raw.text, str(err).split(": ", 1)[-1]))
                    continue
                key = Chem.CanonSmiles(molecule.smiles) if dedupe and not canonical else molecule.smiles
                if dedupe and key in seen:
                    conflict = _label_conflict(seen[key], molecule, where)
                    if conflict:
                        conflicts.append(conflict)
                    duplicates += 1
                    continue
                seen[key] = (raw.line, molecule)
                molecules.append(molecule)
                if limit and len(molecules) >= limit:
                    break
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as err:
        raise DataError(
            f"{path}: cannot read as {'gzip-compressed ' if gzipped else ''}text ({err}); is it the right file?"
        ) from None
    finally:
        RDLogger.EnableLog("rdApp.*")
    table = MoleculeTable(str(path), molecules, rejected, duplicates)
    _report(table, rejects_path, write_rejects)
    if conflicts:  # the documented decision: the first occurrence wins, said aloud
        log.warning(
            "%s: %d repeated molecules carry other labels than their first occurrence, which is kept (%s); "
            "average them in the file, or set data.dedupe=false to train on every row",
            path,
            len(conflicts),
            conflicts[0],
        )
    if missing_targets == "error":
        for name in target_columns:
            if all(math.isnan(m.targets[name]) for m in molecules):
                raise DataError(f"{path}: target {name!r} is empty in every record; fill it or fix data.target_columns")
    return table


def _label_conflict(first: tuple[int, Molecule], again: Molecule, where: str) -> str | None:
    """How a repeated molecule's labels disagree with its first occurrence's (None when they agree)."""
    line, kept = first
    for name, value in again.targets.items():
        previous = kept.targets.get(name, math.nan)
        if not (math.isnan(value) or math.isnan(previous)) and value != previous:
            return f"{where}: {again.smiles} {name}={value:g}, line {line}: {previous:g}"
    return None


def _validate(
    raw: _Raw, kind: str, where: str, id_column, target_columns, group_column, canonical, missing_targets, decimal="."
) -> Molecule:
    if "_error" in raw.fields:
        raise DataError(f"{where}: {raw.fields['_error']}")
    if kind == "sdf":
        if raw.molblock is None:
            raise DataError(f"{where}: SDF record without an `M  END` line")
        mol = Chem.MolFromMolBlock(raw.molblock)
        if mol is None:
            raise DataError(f"{where}: SDF record {raw.id!r} could not be parsed by RDKit")
        smiles = Chem.MolToSmiles(mol)
    else:
        if not raw.smiles:
            raise DataError(f"{where}: empty line or empty SMILES")
        mol = Chem.MolFromSmiles(raw.smiles)
        if mol is None:
            raise DataError(f"{where}: unparsable SMILES {raw.smiles!r}")
        smiles = Chem.MolToSmiles(mol) if canonical else raw.smiles
    if mol.GetNumAtoms() == 0:
        raise DataError(f"{where}: molecule has no atoms")
    targets = {}
    for name in target_columns:
        if kind == "sdf" and name not in raw.fields and missing_targets == "error":
            raise DataError(f"{where}: SDF record has no field <{name}>; fields are {sorted(raw.fields)}")
        text = raw.fields.get(name, "").strip()
        try:
            targets[name] = float(text.replace(",", ".") if decimal == "," else text) if text else math.nan
        except ValueError:
            comma = decimal == "." and re.fullmatch(r"[-+]?\d*,\d+", text)
            hint = "; the file writes decimal commas: add data.decimal=comma" if comma else ""
            raise DataError(f"{where}: target {name!r} = {text!r} is not a number{hint}") from None
        if math.isinf(targets[name]):  # one inf makes every loss of the run NaN
            raise DataError(f"{where}: target {name!r} = {text!r} is not finite; give a number or leave it empty")
    record_id = raw.fields.get(id_column, "").strip() if id_column else raw.id
    group = raw.fields.get(group_column, "").strip() if group_column else None
    return Molecule(record_id or raw.id, smiles, targets, group)


def _report(table: MoleculeTable, rejects_path: str | os.PathLike | None, write: bool) -> None:
    if table.duplicates:
        log.info("%s: dropped %d duplicate molecules (same canonical SMILES)", table.path, table.duplicates)
    if not table.molecules:
        raise DataError(f"{table.path}: no valid molecules (skipped {len(table.rejected)} bad records)")
    if not table.rejected:
        return
    if not write:
        log.info("%s: skipped %d records RDKit cannot parse", table.path, len(table.rejected))
        return
    target = Path(rejects_path) if rejects_path else Path(Path(table.path).name.split(".")[0] + ".rejected.csv")
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["where", "reason", "record"])
        writer.writerows([r.where, r.reason, r.raw] for r in table.rejected)
    log.warning(
        "%s: skipped %d invalid records (on_invalid=skip); they are listed in %s",
        table.path,
        len(table.rejected),
        target,
    )
