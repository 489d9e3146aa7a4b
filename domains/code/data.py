"""The code datamodule: Python files -> value/type streams -> BPE pieces -> windows, and the contract a model carries.

CodeFill (Izadi, Gismondi, Gousios, ICSE 2022) trains on deduplicated Python files turned into aligned value
and type streams. `CodeDataModule` reads

- `path: null`: the embedded corpus, the running interpreter's standard library (`domains.code.corpus`:
  tests folders left out, exact and near duplicates removed, split by top-level package so no module is in
  two splits);
- a folder of `.py` files (recursive, `.gitignore`-style `exclude`), or a JSONL of `{"path", "text"}`
  records; a single `.py` file is read (its problems reported) but cannot be split by package.

`max_files` keeps a subset, shared between the splits by `fractions` and evenly spaced in path order within
each split (so a small run still sees many packages). Streams are made with a progress bar (`progress`).
The value tokenizer is a byte-level BPE trained on the training split's values (or loaded from
`tokenizer`); each file's pieces are cut into windows of `context + 1` pieces (`corpus.make_windows`) that
overlap by one, so every piece is a target exactly once. The test split also gives statement-completion
examples (`complete.statement_examples`: cardinal points with at least two tokens left in their statement),
served as a second test dataloader.

Bad input (`corpus.decode_source`): binary, not UTF-8, empty or larger than `max_file_bytes`, one line
naming the file; `on_invalid=error` stops, `skip` counts and logs (default: skip for the standard library,
error for the user's files). Syntax errors are never fatal: a file is kept up to the statement before its
first error, and counted.

The contract (`CodeContract`): the tokenizer (as its JSON) and the window length. A trained task hands it
back through the runner (`accept_contract`) and the data re-encodes with the model's tokenizer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from domains.code import corpus as C
from domains.code.bpe import EncodedFile, ValueTokenizer
from domains.code.complete import StatementExample, statement_examples
from domains.code.streams import TYPES
from zoo.errors import DataError, ZooError
from zoo.training import BaseDataModule
from zoo.training.data import ListDataset, TextContract
from zoo.training.validation import Rule, check_value

log = logging.getLogger(__name__)

EMBEDDED = "the Python standard library"


# ----------------------------------------------------------------------------- the contract


@dataclass
class CodeContract(TextContract):
    """What a code model's inputs must look like: its value tokenizer and its window length in pieces."""

    tokenizer: ValueTokenizer
    context: int

    def to_dict(self) -> dict[str, Any]:
        return {"tokenizer": json.loads(self.tokenizer.to_str()), "context": int(self.context)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "the data contract") -> CodeContract:
        if not isinstance(data, dict) or "tokenizer" not in data:
            raise ZooError(f"{where} is not a code contract (tokenizer, context); was it saved by a code task?")
        tokenizer = ValueTokenizer.from_str(json.dumps(data["tokenizer"]))
        return cls(tokenizer, int(data.get("context") or 256))

    def same_tokenizer(self, other: ValueTokenizer) -> bool:
        return _canonical(self.tokenizer) == _canonical(other)


def _canonical(tokenizer: ValueTokenizer) -> str:
    return json.dumps(json.loads(tokenizer.to_str()), sort_keys=True)


# ----------------------------------------------------------------------------- datasets


def file_windows(files: Sequence[EncodedFile], context: int) -> list[dict[str, Any]]:
    """Windows of `context + 1` pieces of each file, tagged with the file's index and the window's start
    (a model-free baseline stitches its training files back together from them)."""
    out = []
    for index, f in enumerate(files):
        start = 0
        for window in C.make_windows([f], context):
            out.append({**window, "file": index, "start": start})
            start += context
    return out


def collate(items: list[Any]) -> dict[str, Any]:
    """Windows -> `corpus.collate_windows` batch plus `file`/`start` (B,); statement examples -> {"statements"}."""
    if isinstance(items[0], StatementExample):
        return {"statements": list(items)}
    batch = C.collate_windows(items)
    batch["file"] = torch.tensor([w["file"] for w in items])
    batch["start"] = torch.tensor([w["start"] for w in items])
    return batch


def thin(files: list, limit: int | None) -> list:
    """At most `limit` files, evenly spaced in path order (deterministic)."""
    if limit is None or len(files) <= limit:
        return files
    step = len(files) / limit
    return [files[int(k * step)] for k in range(limit)]


# ----------------------------------------------------------------------------- the datamodule


class CodeDataModule(BaseDataModule):
    """Python sources for CodeFill (module docstring).

    path: null (the standard library), a folder of .py files or a .jsonl. exclude: `.gitignore`-style
    patterns. on_invalid: error | skip (null: skip for the standard library, error for your files).
    max_file_bytes: larger files are invalid. near_duplicate_threshold: MinHash Jaccard at or above which two
    files are one (> 1: off). fractions: train/val/test shares of the files, split by package with
    split_seed. include_tests: the standard library's test folders too (training split only). max_files:
    a subset of this many files (null: all). tokenizer: a tokenizer.json or a folder with one (null: BPE of
    vocab_size trained on the training split). context: pieces per window. statement_examples: most
    statement-completion examples in the test (0: none). progress: progress bars while preprocessing.
    preprocess_workers: processes that make the streams.
    """

    def __init__(
        self,
        path: str | None = None,
        exclude: Sequence[str] = (),
        on_invalid: str | None = None,
        max_file_bytes: int = C.DEFAULT_MAX_FILE_BYTES,
        near_duplicate_threshold: float = 0.8,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        include_tests: bool = False,
        max_literal_len: int = 16,
        max_files: int | None = None,
        tokenizer: str | None = None,
        vocab_size: int = 2048,
        min_frequency: int = 2,
        context: int = 256,
        statement_examples: int = 100,
        progress: bool = True,
        preprocess_workers: int = 1,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, seed=seed)
        if on_invalid not in (None, *C.ON_INVALID):
            raise ZooError(f"data.on_invalid={on_invalid!r}: choose error or skip")
        checks = (
            ("max_file_bytes", max_file_bytes, 1, False),
            ("max_files", max_files, 3, True),
            ("vocab_size", vocab_size, 256 + 7, False),
            ("min_frequency", min_frequency, 1, False),
            ("context", context, 2, False),
            ("statement_examples", statement_examples, 0, False),
            ("preprocess_workers", preprocess_workers, 1, False),
            ("max_literal_len", max_literal_len, 0, False),
            ("split_seed", split_seed, 0, False),
        )
        for key, value, minimum, allow_none in checks:
            check_value(f"data.{key}", value, Rule("int", minimum, allow_none))
        check_value("data.near_duplicate_threshold", near_duplicate_threshold, Rule("number", 0))
        self.path, self.exclude, self.on_invalid = path, list(exclude or ()), on_invalid
        self.max_file_bytes, self.near_duplicate_threshold = max_file_bytes, near_duplicate_threshold
        self.fractions, self.split_seed = [float(f) for f in fractions], split_seed
        self.include_tests, self.max_literal_len, self.max_files = include_tests, max_literal_len, max_files
        self.tokenizer_source, self.vocab_size, self.min_frequency = tokenizer, vocab_size, min_frequency
        self.context, self.num_statement_examples = context, statement_examples
        self.progress, self.preprocess_workers = progress, preprocess_workers
        self.collate_fn = collate
        self.processed: dict[str, list[C.ProcessedFile]] | None = None
        self.encoded: dict[str, list[EncodedFile]] | None = None
        self.stats: C.CorpusStats | None = None
        self.statements: list[StatementExample] = []
        self._tokenizer: ValueTokenizer | None = None

    @property
    def source(self) -> str:
        return str(self.path) if self.path else EMBEDDED

    # ------------------------------------------------------------------ reading

    def read_sources(self) -> tuple[list[C.SourceFile], C.CorpusStats]:
        """The files of `path` (decoded; invalid ones raised or skipped per on_invalid)."""
        max_bytes = self.max_file_bytes
        if not self.path:
            files, stats = C.load_stdlib(None, self.include_tests, self.on_invalid or "skip", max_bytes)
            if self.exclude:
                rules = C.parse_ignore(self.exclude)
                files = [f for f in files if not C.is_ignored(f.path, rules)]
            return files, stats
        path = Path(self.path)
        if not path.exists():
            raise DataError(
                f"data.path={self.path}: no such file or folder; give a folder of .py files or a .jsonl of "
                '{"path", "text"} records (data.path=null: the standard library)'
            )
        on_invalid = self.on_invalid or "error"
        if path.is_dir():
            return C.load_folder(path, self.exclude, on_invalid, max_bytes)
        if path.suffix == ".py":  # one file: read it, so that its own problems are reported first
            stats = C.CorpusStats(seen=1)
            try:
                text = C.decode_source(path.read_bytes(), str(path), max_bytes)
                return [C.SourceFile(path.name, text, path.stem)], stats
            except DataError:
                if on_invalid == "error":
                    raise
                stats.skipped["invalid"] += 1
                return [], stats
        return C.load_jsonl(path, on_invalid, max_bytes)

    def setup(self, stage: str | None = None) -> None:
        self.read_once()
        if self._tokenizer is not None and self.encoded is None:
            self.encode()

    def read_once(self) -> None:
        if self.processed is None:
            self.processed = self.read()

    def read(self) -> dict[str, list[C.ProcessedFile]]:
        files, stats = self.read_sources()
        seen = len(files)
        files, stats.exact_duplicates, stats.near_duplicates = C.deduplicate(files, self.near_duplicate_threshold)
        splits = C.split_by_group(files, self.fractions, self.split_seed)
        empty = [s for s in C.SPLITS if not splits[s]]
        if empty:
            groups = len({f.group for f in files})
            sizes = "/".join(str(len(splits[s])) for s in C.SPLITS)
            raise DataError(
                f"{self.source}: {seen} usable files in {groups} groups ({sum(stats.skipped.values())} invalid "
                f"skipped), so the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
                f"(train/val/test files {sizes}); the split by package needs more top-level folders (packages) "
                "than that: give more files or change data.fractions"
            )
        if self.max_files:
            quotas = [max(1, round(self.max_files * f)) for f in self.fractions]
            splits = {s: thin(splits[s], q) for s, q in zip(C.SPLITS, quotas)}
        processed = {}
        for split in C.SPLITS:
            processed[split] = C.process_files(
                splits[split],
                stats,
                self.max_literal_len,
                progress=self.progress,
                workers=self.preprocess_workers,
                desc=f"streams ({split})",
            )
            if not processed[split]:
                raise DataError(
                    f"{self.source}: no code left in the {split} split ({len(splits[split])} files, only comments "
                    "or docstrings); give more files"
                )
        stats.kept = sum(len(v) for v in processed.values())
        self.stats = stats
        log.info(
            "%s: %s; train/val/test files %d/%d/%d (packages %d/%d/%d)",
            self.source,
            ", ".join(f"{k} {v}" for k, v in stats.as_dict().items() if v),
            *(len(processed[s]) for s in C.SPLITS),
            *(len({f.group for f in processed[s]}) for s in C.SPLITS),
        )
        if stats.syntax_errors:
            log.info("kept up to their first syntax error: %s", ", ".join(stats.syntax_error_paths[:5]))
        return processed

    # ------------------------------------------------------------------ tokenizer and encoding

    def tokenizer(self) -> ValueTokenizer:
        """`tokenizer` if given, else byte-level BPE trained on the training split's values only."""
        if self._tokenizer is None:
            if self.tokenizer_source:
                self._tokenizer = ValueTokenizer.load(self.tokenizer_source)
            else:
                self.read_once()
                values = (t.value for f in self.processed["train"] for t in f.streams.tokens)
                self._tokenizer = ValueTokenizer.train(values, self.vocab_size, self.min_frequency)
                log.info("value BPE trained on the training split: %d pieces", self._tokenizer.vocab_size)
        return self._tokenizer

    def encode(self) -> None:
        """Pieces, windows and statement examples of every split with the current tokenizer."""
        tokenizer = self.tokenizer()
        self.read_once()
        self.encoded = {s: [tokenizer.encode_streams(f.streams, f.path) for f in self.processed[s]] for s in C.SPLITS}
        self.train_set = ListDataset(file_windows(self.encoded["train"], self.context))
        self.val_set = ListDataset(file_windows(self.encoded["val"], self.context))
        self.test_set = ListDataset(file_windows(self.encoded["test"], self.context))
        self.statements = (
            statement_examples(self.encoded["test"], self.context, self.num_statement_examples)
            if self.num_statement_examples
            else []
        )
        log.info(
            "pieces train/val/test %s; windows of %d: %d/%d/%d; %d statement examples",
            "/".join(str(sum(len(f) for f in self.encoded[s])) for s in C.SPLITS),
            self.context,
            len(self.train_set),
            len(self.val_set),
            len(self.test_set),
            len(self.statements),
        )

    def contract(self) -> CodeContract:
        return CodeContract(self.tokenizer(), self.context)

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.tokenizer().vocab_size, "num_types": len(TYPES), "context": self.context}

    def task_kwargs(self) -> dict[str, Any]:
        return {"contract": self.contract().to_text()}

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Read with the model's tokenizer and window length (re-encoding when they are not this data's)."""
        if not contract:
            return
        model = CodeContract.from_dict(contract)
        if self._tokenizer is not None and model.same_tokenizer(self._tokenizer) and model.context == self.context:
            if self.encoded is None:
                self.encode()
            return
        if self._tokenizer is not None:
            log.info("reading %s with the model's tokenizer (%d pieces)", self.source, model.tokenizer.vocab_size)
        self._tokenizer, self.context = model.tokenizer, model.context
        self.encode()

    def type_counts(self) -> torch.Tensor:
        """(vocab, types) counts of each piece under each type in the training split (re-ranking's table)."""
        self.setup()
        return C.value_type_counts(self.encoded["train"], self.tokenizer().vocab_size, len(TYPES))

    # ------------------------------------------------------------------ loaders

    def _ready(self) -> None:
        if self.encoded is None:
            self.encode()

    def train_dataloader(self) -> DataLoader:
        self._ready()
        return super().train_dataloader()

    def val_dataloader(self) -> DataLoader:
        self._ready()
        return super().val_dataloader()

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """Windows (token metrics), then statement examples (statement metrics) when there are any."""
        self._ready()
        windows = super().test_dataloader()
        if not self.statements:
            return windows
        return [windows, self._loader(ListDataset(self.statements), "test")]


def read_source(path: str | os.PathLike | None, max_file_bytes: int = C.DEFAULT_MAX_FILE_BYTES) -> tuple[str, str]:
    """(text, name) of the file to complete: a path, or stdin for None / "-"; one line when it is unusable."""
    import sys

    if path in (None, "", "-"):
        if sys.stdin is None or sys.stdin.isatty():
            raise ZooError("no file to complete: give file=<path.py>, or pipe the source on stdin (file=-)")
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        file = Path(path)
        if not file.is_file():
            what = "a folder" if file.is_dir() else "no such file"
            raise ZooError(f"file={path}: {what}; give the Python file to complete (file=- reads stdin)")
        try:
            data = file.read_bytes()
        except OSError as err:
            raise ZooError(f"file={path}: cannot be read ({err.strerror.lower()})") from None
        name = str(path)
    if not data.strip():  # a new, empty buffer: completion at its start is still meaningful
        return "", name
    try:
        return C.decode_source(data, name, max_file_bytes), name
    except DataError as err:
        what = str(err).split("; ")[0]
        fix = "raise it" if "exceeds" in what else "give a UTF-8 Python source file"
        raise DataError(f"{what}; {fix}") from None
