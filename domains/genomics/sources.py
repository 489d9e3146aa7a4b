"""`load_examples(path)`: labelled sequences from any supported user file, chosen by what the path is.

- a folder with `train/` and `test/`: the GenomicBenchmarks layout;
- `.bed[.gz]`: regions of `reference` (a FASTA), labelled by the BED name column;
- `.fa/.fasta/.fna/.fq/.fastq[.gz]`: records, labelled from `labels` (a table `id,label`);
- `.csv/.tsv/.txt[.gz]`: a table with a sequence column and label columns.
Every record is checked against the tokenizer's alphabet here, so a bad character
is reported with the file and record before training starts.

Tables (the input table, or the `labels` table of a FASTA) are read in the dialect that
`delimiter` (None: detected from the header line) and `decimal` (`.` or `,` for regression
labels) name: `data.delimiter` and `data.decimal`, as in the chem and time-series readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from domains.genomics.bed import read_bed, region_examples
from domains.genomics.fasta import is_sequence_file, open_genome, read_records
from domains.genomics.records import Example
from domains.genomics.tables import is_genomic_benchmarks, read_genomic_benchmarks, read_labels, read_table
from domains.genomics.tokenizer import CharTokenizer
from zoo.errors import DataError


def load_examples(
    path: str,
    tokenizer: CharTokenizer,
    *,
    labels: str | None = None,
    reference: str | None = None,
    sequence_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    task_type: str = "classification",
    require_labels: bool = True,
    delimiter: str | None = None,
    decimal: str | None = ".",
) -> list[Example]:
    source = Path(path)
    dialect = {"delimiter": delimiter, "decimal": decimal}
    if not source.exists():
        raise DataError(f"{source}: no such file or folder; check data.path")
    name = source.name.lower().removesuffix(".gz")
    if is_genomic_benchmarks(source):
        examples = read_genomic_benchmarks(source)
    elif source.is_dir():
        raise DataError(
            f"{source}: a folder, but not the GenomicBenchmarks layout (train/<class>/*.txt, test/<class>/*.txt)"
        )
    elif name.endswith(".bed"):
        if not reference:
            raise DataError(f"{source}: BED regions need the genome they refer to: add data.reference=<genome.fa>")
        field = "name" if require_labels else None
        examples = region_examples(read_bed(source), open_genome(reference, allowed=None), field, str(source))
    elif is_sequence_file(source):
        examples = _checked(source, [Example(r.id, r.seq) for r in read_records(source, allowed=None)], tokenizer)
        return _attach_labels(examples, source, labels, id_column, label_columns, task_type, require_labels, dialect)
    else:
        examples = read_table(
            source, sequence_column, label_columns, id_column, split_column, task_type, require_labels, **dialect
        )
    return _checked(source, examples, tokenizer)


def _checked(source: Path, examples: list[Example], tokenizer: CharTokenizer) -> list[Example]:
    """Unique ids and every character in the tokenizer's alphabet, else one DataError naming the record."""
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise DataError(
                f"{source}: record id {example.id!r} appears twice; ids must be unique (predictions are keyed by them)"
            )
        seen.add(example.id)
        tokenizer.encode(example.seq, where=f"{source}: record {example.id!r}")
    return examples


def _attach_labels(
    examples: list[Example],
    source: Path,
    labels: str | None,
    id_column,
    label_columns,
    task_type,
    require_labels: bool,
    dialect: dict,
) -> list[Example]:
    if not labels:
        if require_labels:
            raise DataError(f"{source}: FASTA records carry no labels; add data.labels=<table with id,label columns>")
        return examples
    table = read_labels(labels, id_column, label_columns, task_type, **dialect)
    out = []
    for example in examples:
        label = table.get(example.id)
        if label is None and require_labels:
            raise DataError(
                f"{source}: record {example.id!r} has no label in {labels}; add a row for it or remove the record"
            )
        out.append(Example(example.id, example.seq, label))
    return out
