"""FASTA/FASTQ files, plain, gzip or BGZF: checked record streams and a faidx-style index for windows.

`read_records` streams FASTA records through Biopython's `SimpleFastaParser` and FASTQ
records through `fastq_records` (Biopython's `FastqGeneralIterator` layout: `@id`, sequence
lines, `+`, quality lines up to the sequence's length) and turns every malformed input into
one `DataError` naming the file, line and record: empty records, duplicate ids, mixed line
endings, illegal characters, a missing `+` line, a quality of the wrong length, truncated or
corrupt gzip. The FASTQ reader is our own so that a fault is blamed on the record that has
it: Biopython reads a record without its `+` line on into the next one and reports it there.

`open_genome` gives random windows into large genomes without loading them:
a samtools-faidx style index (per record: length, byte offset of the sequence,
bases and bytes per line) locates any base by arithmetic, so `fetch` reads
only the bytes of the window. BGZF files (`bgzip`, as samtools uses) add the
table of compressed blocks, the `.gzi` of samtools, and are read through
`Bio.bgzf` virtual offsets. Plain gzip has no random access: such files (and
FASTQ) are read into memory once, with a warning suggesting `bgzip`.
The index is kept beside the file (`<file>.fai`, `<file>.gzi`) when the folder is
writable and reused while it is newer than the file.
"""

from __future__ import annotations

import bisect
import gzip
import io
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from Bio import bgzf
from Bio.SeqIO.FastaIO import SimpleFastaParser

from zoo.errors import DataError
from zoo.io import atomic_path

log = logging.getLogger(__name__)

DNA_CHARACTERS = b"ACGTNRYSWKMBDHVacgtnryswkmbdhv"
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".ffn", ".faa", ".fas", ".fq", ".fastq")


@dataclass(frozen=True)
class Record:
    id: str
    seq: str


def compression(path: str | os.PathLike) -> str:
    """'bgzf', 'gzip' or 'none', from the magic bytes."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "none"
    # BGZF is gzip with an extra field whose subfield is 'BC' (SAM/BAM specification, section 4.1).
    return "bgzf" if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC" else "gzip"


def is_sequence_file(path: str | os.PathLike) -> bool:
    name = str(path).lower().removesuffix(".gz").removesuffix(".bgz")
    return name.endswith(FASTA_SUFFIXES)


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if compression(path) != "none" else open(path, "rb")


def sniff_format(path: Path) -> str:
    """'fasta' or 'fastq' from the first non-blank character."""
    try:
        with _open_binary(path) as handle:
            for line in handle:
                if line.strip():
                    first = line[:1]
                    if first == b">":
                        return "fasta"
                    if first == b"@":
                        return "fastq"
                    raise DataError(
                        f"{path}:1: neither FASTA ('>') nor FASTQ ('@'): starts with {line[:20]!r}; give a .fa/.fq file"
                    )
    except PermissionError:
        raise DataError(f"{path}: cannot be read (permission denied); fix its permissions (chmod u+r)") from None
    except (EOFError, OSError, zlib.error) as err:
        if compression(path) == "none":  # not a gzip problem: say what the system said
            raise DataError(f"{path}: cannot be read ({err})") from None
        raise DataError(
            f"{path}: unreadable gzip ({err}); the file is truncated or corrupt, re-download or re-compress it"
        ) from None
    raise DataError(f"{path}: the file is empty; give a FASTA or FASTQ file with at least one record")


class _CheckedLines:
    """Text lines of a file, checked on the way through: line endings, encoding, gzip integrity.

    Remembers the current record so every error names it."""

    def __init__(self, path: Path, marker: str | None):
        self.path, self.marker = path, marker  # None: the parser names the records (FASTQ)
        self.line_no, self.record, self.crlf, self.lf = 0, None, 0, 0

    def where(self) -> str:
        record = f" (record {self.record!r})" if self.record else ""
        return f"{self.path}:{self.line_no}{record}"

    def __iter__(self) -> Iterator[str]:
        raw = _open_binary(self.path)
        try:
            for line in raw:
                self.line_no += 1
                if line.endswith(b"\r\n"):
                    self.crlf += 1
                elif line.endswith(b"\n"):
                    self.lf += 1
                if self.crlf and self.lf:
                    raise DataError(
                        f"{self.where()}: mixed line endings (both CRLF and LF); convert the file with `dos2unix`"
                    )
                try:
                    text = line.decode("ascii")
                except UnicodeDecodeError:
                    raise DataError(
                        f"{self.where()}: non-ASCII bytes; sequence files hold plain ASCII letters"
                    ) from None
                if self.marker and text.startswith(self.marker):
                    self.record = text[1:].split(None, 1)[0] if text[1:].strip() else ""
                yield text
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise DataError(
                f"{self.where()}: the gzip stream ends early or is corrupt ({err}); the file is truncated, "
                "re-download it"
            ) from None
        finally:
            raw.close()


class _TextHandle:
    """The parts of a text file the Biopython parsers use, over checked lines: iteration, readline, read(0)."""

    def __init__(self, lines: Iterator[str]):
        self.lines = lines

    def __iter__(self) -> _TextHandle:
        return self

    def __next__(self) -> str:
        return next(self.lines)

    def readline(self) -> str:
        return next(self.lines, "")

    def read(self, size: int = -1) -> str:
        if size:
            raise io.UnsupportedOperation("line access only")
        return ""


def fastq_records(lines: _CheckedLines) -> Iterator[tuple[str, str]]:
    """(title, sequence) of each FASTQ record; a quality line may start with '@' or '+', a sequence line not."""
    source = iter(lines)
    line = next(source, None)
    while line is not None:
        if not line.strip():  # blank lines between records
            line = next(source, None)
            continue
        if not line.startswith("@"):
            raise DataError(
                f"{lines.where()}: malformed FASTQ: expected a header '@id', found {line.strip()[:20]!r}; "
                "each record is '@id', sequence, '+', quality"
            )
        title, header_line = line[1:].strip(), lines.line_no
        lines.record = title.split(None, 1)[0] if title else ""
        sequence: list[str] = []
        line = next(source, None)
        while line is not None and not line.startswith("+"):
            if line.startswith("@"):
                raise DataError(
                    f"{lines.path}:{header_line} (record {lines.record!r}): malformed FASTQ: no '+' line after "
                    f"its sequence (lines {header_line + 1}-{lines.line_no - 1}) before the next header "
                    f"{line.strip()[:20]!r} at line {lines.line_no}; each record is '@id', sequence, '+', quality"
                )
            sequence.append(line.strip())
            line = next(source, None)
        if line is None:
            raise DataError(f"{lines.where()}: malformed FASTQ: the file ends before the record's '+' line")
        repeated = line[1:].strip()
        if repeated and repeated != title:
            raise DataError(
                f"{lines.where()}: malformed FASTQ: the '+' line names {repeated!r}, not the header's {title!r}"
            )
        seq, quality = "".join(sequence), 0
        while quality < len(seq):
            line = next(source, None)
            if line is None:
                raise DataError(
                    f"{lines.where()}: malformed FASTQ: {quality} quality values for {len(seq)} bases; the file "
                    "ends early"
                )
            quality += len(line.strip())
        if quality != len(seq):
            raise DataError(
                f"{lines.where()}: malformed FASTQ: {quality} quality values for {len(seq)} bases; give one per base"
            )
        yield title, seq
        line = next(source, None)


def read_records(path: str | os.PathLike, allowed: bytes | None = DNA_CHARACTERS) -> Iterator[Record]:
    """Records of a FASTA/FASTQ file (plain, gzip or BGZF), each checked; ids are the first word of the header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check data.path")
    fmt = sniff_format(path)
    lines = _CheckedLines(path, ">" if fmt == "fasta" else None)
    if fmt == "fasta":  # one pass over the handle, though the parser loops over it more than once
        parser = SimpleFastaParser(_TextHandle(iter(lines)))
    else:
        parser = fastq_records(lines)
    delete = None if allowed is None else bytes(allowed)
    seen: set[str] = set()
    try:
        for title, seq in parser:
            record_id = title.split(None, 1)[0] if title.strip() else ""
            where = f"{path}: record {record_id!r}"
            if not record_id:
                raise DataError(f"{lines.where()}: a header without an id; every record needs '>id'")
            if record_id in seen:
                raise DataError(f"{where}: duplicate record id; ids must be unique (predictions are keyed by them)")
            if not seq:
                raise DataError(f"{where}: empty record (no sequence); remove it or add its sequence")
            if delete is not None:
                bad = seq.encode("ascii").translate(None, delete)
                if bad:
                    position = seq.index(chr(bad[0])) + 1
                    raise DataError(
                        f"{where}: illegal character {chr(bad[0])!r} at position {position}; "
                        "DNA may hold A C G T N and IUPAC codes; fix or remove the record"
                    )
            seen.add(record_id)
            yield Record(record_id, seq)
    except ValueError as err:  # Biopython's FASTA parser
        raise DataError(f"{lines.where()}: malformed {fmt.upper()} ({err})") from None


# ----------------------------------------------------------------------------- random access


@dataclass(frozen=True)
class FaiEntry:
    """One line of a samtools .fai: name, length, offset of the first base, bases and bytes per line."""

    name: str
    length: int
    offset: int
    line_bases: int
    line_bytes: int

    def byte_position(self, i: int) -> int:
        return self.offset + (i // self.line_bases) * self.line_bytes + i % self.line_bases


def build_fai(path: Path, allowed: bytes | None = DNA_CHARACTERS) -> list[FaiEntry]:
    """Scan the (decompressed) file once, checking it as `read_records` does, and return its index."""
    entries: list[FaiEntry] = []
    lines = _CheckedLines(path, ">")
    current: dict | None = None
    offset = 0

    def close() -> None:
        if current is not None:
            if current["length"] == 0:
                raise DataError(
                    f"{path}: record {current['name']!r}: empty record (no sequence); remove it or add its sequence"
                )
            entries.append(
                FaiEntry(
                    current["name"],
                    current["length"],
                    current["offset"],
                    current["line_bases"] or 1,
                    current["line_bytes"] or 1,
                )
            )

    names: set[str] = set()
    for text in lines:
        size = len(text)
        if text.startswith(">"):
            close()
            name = lines.record
            if not name:
                raise DataError(f"{lines.where()}: a header without an id; every record needs '>id'")
            if name in names:
                raise DataError(f"{path}: record {name!r}: duplicate record id; ids must be unique")
            names.add(name)
            current = {
                "name": name,
                "length": 0,
                "offset": offset + size,
                "line_bases": 0,
                "line_bytes": 0,
                "short": False,
            }
        elif current is None:
            if text.strip():
                raise DataError(f"{lines.where()}: sequence before the first '>' header; is this a FASTA file?")
        elif not text.strip():
            current["short"] = True  # a blank line ends the record's lines as a short line would
        else:
            bases = len(text.rstrip("\r\n"))
            if current["short"] or (current["line_bases"] and bases > current["line_bases"]):
                raise DataError(
                    f"{lines.where()}: lines of different lengths inside a record; random access needs equal "
                    "line lengths (rewrap with `seqkit seq -w 60` or `samtools faidx`)"
                )
            if not current["line_bases"]:
                current["line_bases"], current["line_bytes"] = bases, size
            elif bases < current["line_bases"]:
                current["short"] = True  # only the last line may be shorter
            if allowed is not None:
                bases_text = text.rstrip("\r\n")
                bad = bases_text.encode("ascii").translate(None, allowed)
                if bad:
                    position = current["length"] + bases_text.index(chr(bad[0])) + 1
                    raise DataError(
                        f"{path}: record {current['name']!r}: illegal character {chr(bad[0])!r} at position "
                        f"{position}; "
                        "DNA may hold A C G T N and IUPAC codes; fix or remove the record"
                    )
            current["length"] += bases
        offset += size
    close()
    if not entries:
        raise DataError(f"{path}: no FASTA records; give a file with '>id' headers")
    return entries


def _bgzf_blocks(path: Path) -> tuple[list[int], list[int]]:
    """(uncompressed start, compressed start) of every BGZF block: the information of a samtools .gzi."""
    data_starts, raw_starts = [], []
    with open(path, "rb") as handle:
        for raw_start, _, data_start, data_len in bgzf.BgzfBlocks(handle):
            if data_len:
                data_starts.append(data_start)
                raw_starts.append(raw_start)
    return data_starts, raw_starts


def _read_fai(fai: Path) -> list[FaiEntry]:
    entries = []
    for line in fai.read_text().splitlines():
        name, length, offset, bases, width = line.split("\t")[:5]
        entries.append(FaiEntry(name, int(length), int(offset), int(bases), int(width)))
    return entries


def _fresh(sidecar: Path, source: Path) -> bool:
    return sidecar.is_file() and sidecar.stat().st_mtime >= source.stat().st_mtime


class IndexedFasta:
    """Random access to a plain or BGZF FASTA through its .fai (and .gzi) index."""

    def __init__(self, path: str | os.PathLike, allowed: bytes | None = DNA_CHARACTERS):
        self.path = Path(path)
        self.bgzf = compression(self.path) == "bgzf"
        fai = Path(f"{self.path}.fai")
        if _fresh(fai, self.path):
            entries = _read_fai(fai)
        else:
            entries = build_fai(self.path, allowed)
            self._write_sidecar(
                fai, "".join(f"{e.name}\t{e.length}\t{e.offset}\t{e.line_bases}\t{e.line_bytes}\n" for e in entries)
            )
        self.entries = {e.name: e for e in entries}
        if self.bgzf:
            gzi = Path(f"{self.path}.gzi")
            if _fresh(gzi, self.path):
                self.data_starts, self.raw_starts = self._read_gzi(gzi)
            else:
                self.data_starts, self.raw_starts = _bgzf_blocks(self.path)
                pairs = list(zip(self.raw_starts, self.data_starts))[1:]  # samtools omits the first block (0, 0)
                self._write_sidecar(
                    gzi, struct.pack(f"<Q{2 * len(pairs)}Q", len(pairs), *[v for p in pairs for v in p])
                )
        self._handle = None

    @staticmethod
    def _read_gzi(gzi: Path) -> tuple[list[int], list[int]]:
        data = gzi.read_bytes()
        (count,) = struct.unpack_from("<Q", data)
        values = struct.unpack_from(f"<{2 * count}Q", data, 8)
        return [0, *values[1::2]], [0, *values[0::2]]

    @staticmethod
    def _write_sidecar(path: Path, content: str | bytes) -> None:
        """Atomically (several processes may index the same file), and only where the folder is writable."""
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(content.encode() if isinstance(content, str) else content)
        except OSError:
            pass  # a read-only folder: the index is rebuilt next time

    @property
    def lengths(self) -> dict[str, int]:
        return {name: e.length for name, e in self.entries.items()}

    def _read(self, start: int, size: int) -> bytes:
        if self._handle is None:  # opened lazily, so the object pickles into DataLoader workers
            # kept open across reads on purpose (random access by offset); __getstate__ drops it
            self._handle = bgzf.BgzfReader(str(self.path), "rb") if self.bgzf else open(self.path, "rb")  # noqa: SIM115
        if self.bgzf:
            block = bisect.bisect_right(self.data_starts, start) - 1
            self._handle.seek(bgzf.make_virtual_offset(self.raw_starts[block], start - self.data_starts[block]))
        else:
            self._handle.seek(start)
        return self._handle.read(size)

    def fetch(self, name: str, start: int, end: int) -> str:
        """Bases [start, end) of record `name` (0-based, end exclusive, as BED)."""
        entry = self.entries.get(name)
        if entry is None:
            raise DataError(
                f"{self.path}: no record {name!r}; it has "
                f"{', '.join(list(self.entries)[:5])}{' ...' if len(self.entries) > 5 else ''}"
            )
        start, end = max(0, start), min(end, entry.length)
        if end <= start:
            return ""
        first = entry.byte_position(start)
        raw = self._read(first, entry.byte_position(end - 1) + 1 - first)
        return raw.translate(None, b"\r\n").decode("ascii")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None}


class InMemoryFasta:
    """The same interface for sequences held in memory.

    For files without random access (plain gzip, FASTQ) and the embedded data.
    """

    def __init__(self, sequences: dict[str, str], path: str | os.PathLike = "<memory>"):
        self.sequences, self.path = sequences, Path(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike, allowed: bytes | None = DNA_CHARACTERS) -> InMemoryFasta:
        return cls({r.id: r.seq for r in read_records(path, allowed)}, path)

    @property
    def lengths(self) -> dict[str, int]:
        return {name: len(seq) for name, seq in self.sequences.items()}

    def fetch(self, name: str, start: int, end: int) -> str:
        if name not in self.sequences:
            raise DataError(f"{self.path}: no record {name!r}")
        return self.sequences[name][max(0, start) : end]


def open_genome(path: str | os.PathLike, allowed: bytes | None = DNA_CHARACTERS) -> IndexedFasta | InMemoryFasta:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check data.path")
    kind = compression(path)
    if sniff_format(path) == "fasta" and kind in ("none", "bgzf"):
        return IndexedFasta(path, allowed)
    if kind == "gzip":
        log.warning(
            "%s is plain gzip, which has no random access: reading it into memory; "
            "recompress with `bgzip` (htslib) for windows into large genomes",
            path,
        )
    return InMemoryFasta.from_file(path, allowed)
