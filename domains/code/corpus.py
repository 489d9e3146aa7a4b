"""Python corpora for CodeFill: the embedded standard library, a folder of `.py`, or a JSONL of files.

CodeFill (Izadi, Gismondi, Gousios, ICSE 2022) trains on deduplicated Python
files turned into value/type streams. Here:

- Embedded default, nothing downloaded: the running interpreter's standard
  library (`sysconfig.get_paths()['stdlib']`), without `site-packages` and
  without test folders (`test`, `tests`, `idle_test`: about 1,050 of the ~1,800
  files; they hold deliberately broken code and Python 2 fixtures, and one
  `test` package would dominate any split). `include_tests=True` adds them, to
  the training split only.
- Split by top-level package (`email/mime/text.py` -> `email`, `os.py` -> `os`):
  packages are ordered by a seeded SHA-1 of their name and fill the test, then the
  validation quota (by file count); the rest is training. No module is in two
  splits. A user folder with fewer than three top-level groups is grouped one
  folder level deeper (up to three), then per file.
- Duplicates are removed before splitting: exact (SHA-256 of the text with
  normalised line ends and trailing spaces) and near (bottom-k MinHash, k=64,
  over 5-token shingles; candidate pairs share sketch values, and a pair whose
  estimated Jaccard similarity is >= `near_duplicate_threshold` keeps only the
  file first in path order). Pure standard library.
- Bad input, one line each (`DataError`, a `ZooError`), naming the file:
  binary (a NUL byte), not UTF-8 (after honouring a PEP 263 coding line),
  empty, larger than `max_file_bytes`. `on_invalid="error"` raises,
  `"skip"` counts them in `CorpusStats.skipped`. Syntax errors are never fatal:
  the file is kept up to the statement before its first error and counted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import io
import json
import os
import re
import sysconfig
import tokenize
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.errors import DataError, ZooError

from .streams import CodeStreams, extract_streams

SPLITS = ("train", "val", "test")
TEST_DIRS = frozenset({"test", "tests", "idle_test"})
DEFAULT_MAX_FILE_BYTES = 1_000_000
ON_INVALID = ("error", "skip")


@dataclass
class SourceFile:
    path: str  # relative, with forward slashes
    text: str
    group: str = ""  # the top-level package it is split by


@dataclass
class ProcessedFile:
    path: str
    group: str
    streams: CodeStreams


@dataclass
class CorpusStats:
    seen: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> files
    skipped_paths: list[str] = field(default_factory=list)
    syntax_errors: int = 0
    syntax_error_paths: list[str] = field(default_factory=list)
    no_code: int = 0  # only comments/docstrings: nothing to learn, dropped silently
    exact_duplicates: int = 0
    near_duplicates: int = 0

    def as_dict(self) -> dict:
        return {
            "seen": self.seen,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "syntax_errors": self.syntax_errors,
            "no_code": self.no_code,
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": self.near_duplicates,
        }


@dataclass
class CodeCorpus:
    splits: dict[str, list[ProcessedFile]]
    stats: CorpusStats

    def __getitem__(self, split: str) -> list[ProcessedFile]:
        if split not in self.splits:
            raise ZooError(f"unknown split {split!r}; choose one of {list(self.splits)}")
        return self.splits[split]

    def groups(self, split: str) -> set[str]:
        return {f.group for f in self[split]}


# ----------------------------------------------------------------------------- reading one file


def decode_source(data: bytes, path: str, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> str:
    """Text of a Python file, or DataError saying why it is not usable."""
    fix = "remove it, exclude it (data.exclude) or set data.on_invalid=skip"
    if len(data) > max_file_bytes:
        raise DataError(
            f"{path}: {len(data):,} bytes exceeds data.max_file_bytes={max_file_bytes:,}; raise it or {fix}"
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: binary file (NUL byte at offset {nul}), not Python source; {fix}")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        try:  # detect_encoding also fails on undecodable first lines: find the bad byte for the message
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = data[: bad.start].count(b"\n") + 1
            raise DataError(
                f"{path}:{line}: not UTF-8 (byte 0x{data[bad.start]:02x} at offset {bad.start}); re-save it as "
                f"UTF-8, declare its encoding with a '# -*- coding: <name> -*-' line, or {fix}"
            ) from None
        message = getattr(exc, "msg", None) or str(exc)
        raise DataError(f"{path}:1: {message}; fix the coding line or {fix}") from None
    if not text.strip():
        raise DataError(f"{path}: empty file (no code); {fix}")
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def _check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ON_INVALID:
        raise ZooError(f"data.on_invalid={on_invalid!r}; choose one of {ON_INVALID}")


def _reason(message: str) -> str:
    for key, reason in (("binary", "binary"), ("not UTF-8", "not_utf8"), ("empty", "empty"), ("exceeds", "too_large")):
        if key in message:
            return reason
    return "invalid"


def _accept(path: str, data: bytes, stats: CorpusStats, on_invalid: str, max_file_bytes: int) -> str | None:
    stats.seen += 1
    try:
        return decode_source(data, path, max_file_bytes)
    except DataError as exc:
        if on_invalid == "error":
            raise
        stats.skipped[_reason(str(exc))] += 1
        stats.skipped_paths.append(path)
        return None


# ----------------------------------------------------------------------------- finding files


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_paths(root: str | os.PathLike | None = None, include_tests: bool = False) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of the standard library's `.py` files, sorted."""
    root = Path(root) if root else stdlib_root()
    out = []
    for folder, dirs, files in os.walk(root):
        rel_parts = Path(folder).relative_to(root).parts
        if rel_parts[:1] == ("site-packages",) or "__pycache__" in rel_parts:
            dirs[:] = []
            continue
        if not include_tests and TEST_DIRS & set(rel_parts):
            dirs[:] = []
            continue
        out.extend((Path(folder, f).relative_to(root).as_posix(), Path(folder, f)) for f in files if f.endswith(".py"))
    return sorted(out)


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    negate: bool
    dir_only: bool
    anchored: bool


def parse_ignore(patterns: Iterable[str]) -> list[IgnoreRule]:
    """`.gitignore`-style lines: `#` comments, `!` re-includes, trailing `/` for folders, a `/` inside anchors."""
    rules = []
    for line in patterns:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:] if negate else line
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        rules.append(IgnoreRule(line.lstrip("/"), negate, dir_only, anchored))
    return rules


def is_ignored(rel_path: str, rules: Sequence[IgnoreRule]) -> bool:
    """Whether a relative file path is excluded (the last matching rule wins, as in git)."""
    parts = rel_path.split("/")
    ignored = False
    for rule in rules:
        candidates = []
        for k in range(1, len(parts) + 1):
            is_dir = k < len(parts)
            if rule.dir_only and not is_dir:
                continue
            candidates.append("/".join(parts[:k]) if rule.anchored else parts[k - 1])
        pattern = rule.pattern.replace("**/", "*").replace("/**", "/*")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not rule.negate
    return ignored


def folder_paths(folder: str | os.PathLike, exclude: Sequence[str] = (), use_gitignore: bool = True) -> list[str]:
    """Relative paths of the `.py` files under `folder`, minus `exclude` (and the folder's own .gitignore)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; point data.path to a folder of .py files or a .jsonl file")
    lines = list(exclude)
    if use_gitignore and (folder / ".gitignore").is_file():
        lines = (folder / ".gitignore").read_text(errors="replace").splitlines() + lines
    rules = parse_ignore([*lines, ".git/", "__pycache__/"])
    out = []
    for path in folder.rglob("*.py"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not is_ignored(rel, rules):
            out.append(rel)
    return sorted(out)


# ----------------------------------------------------------------------------- loading sources


def load_stdlib(
    root: str | os.PathLike | None = None,
    include_tests: bool = False,
    on_invalid: str = "skip",
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    stats: CorpusStats | None = None,
) -> tuple[list[SourceFile], CorpusStats]:
    """The standard library's sources (the embedded default corpus)."""
    _check_on_invalid(on_invalid)
    stats = stats or CorpusStats()
    files = []
    for rel, path in stdlib_paths(root, include_tests):
        text = _accept(rel, path.read_bytes(), stats, on_invalid, max_file_bytes)
        if text is not None:
            is_test = bool(TEST_DIRS & set(rel.split("/")[:-1]))
            files.append(SourceFile(rel, text, "<tests>" if is_test else package_of(rel)))
    return files, stats


def load_folder(
    folder: str | os.PathLike,
    exclude: Sequence[str] = (),
    on_invalid: str = "error",
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    use_gitignore: bool = True,
    stats: CorpusStats | None = None,
) -> tuple[list[SourceFile], CorpusStats]:
    """Every `.py` under `folder` (recursive), `.gitignore`-style `exclude` patterns removed."""
    _check_on_invalid(on_invalid)
    stats = stats or CorpusStats()
    files = []
    for rel in folder_paths(folder, exclude, use_gitignore):
        text = _accept(str(Path(folder) / rel), (Path(folder) / rel).read_bytes(), stats, on_invalid, max_file_bytes)
        if text is not None:
            files.append(SourceFile(rel, text))
    return _group_user_files(files), stats


def load_jsonl(
    path: str | os.PathLike,
    on_invalid: str = "error",
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    stats: CorpusStats | None = None,
) -> tuple[list[SourceFile], CorpusStats]:
    """A JSONL file with one `{"path": ..., "text": ...}` record per line."""
    _check_on_invalid(on_invalid)
    stats = stats or CorpusStats()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; point data.path to a .jsonl file or a folder of .py files")
    files, seen_paths = [], set()
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError('expected an object with a string "text"')
                rel = str(record.get("path") or f"record_{lineno}.py").replace("\\", "/").lstrip("/")
            except (ValueError, UnicodeDecodeError) as exc:
                if on_invalid == "error":
                    raise DataError(
                        f'{where}: not a {{"path", "text"}} JSON record ({exc}); fix the line or set '
                        "data.on_invalid=skip"
                    ) from None
                stats.seen += 1
                stats.skipped["bad_record"] += 1
                stats.skipped_paths.append(where)
                continue
            text = _accept(f"{where} ({rel})", record["text"].encode("utf-8", "surrogatepass"), stats, on_invalid,
                           max_file_bytes)  # fmt: skip
            if text is not None:
                while rel in seen_paths:  # two records with one path: keep both, named apart
                    rel = f"{rel}~{lineno}"
                seen_paths.add(rel)
                files.append(SourceFile(rel, text))
    return _group_user_files(files), stats


def package_of(rel_path: str, depth: int = 1) -> str:
    """Top-level package (or the first `depth` folders) of a relative path; a top-level module is its own."""
    parts = rel_path.split("/")
    if len(parts) <= depth:
        return parts[-1].removesuffix(".py")
    return "/".join(parts[:depth])


def _group_user_files(files: list[SourceFile]) -> list[SourceFile]:
    depth = 1
    while depth <= 3 and len({package_of(f.path, depth) for f in files}) < 3:
        depth += 1
    for f in files:
        f.group = package_of(f.path, depth) if depth <= 3 else f.path
    return files


# ----------------------------------------------------------------------------- duplicates

_WORD = re.compile(r"\w+|[^\w\s]")
_MASK64 = (1 << 64) - 1


def _shingle_hashes(text: str, shingle: int = 5) -> set[int]:
    cache: dict[str, int] = {}
    ids = [cache.setdefault(w, zlib.crc32(w.encode("utf-8"))) for w in _WORD.findall(text)]
    if len(ids) < shingle:
        return {hash(tuple(ids)) & _MASK64} if ids else set()
    # Tuple-of-int hashes do not depend on PYTHONHASHSEED; the multiply spreads them over 64 bits.
    return {(hash(tuple(ids[i : i + shingle])) * 0x9E3779B97F4A7C15) & _MASK64 for i in range(len(ids) - shingle + 1)}


def minhash_sketch(text: str, k: int = 64, shingle: int = 5) -> list[int]:
    """Bottom-k MinHash sketch: the k smallest shingle hashes, sorted."""
    return sorted(heapq.nsmallest(k, _shingle_hashes(text, shingle)))


def sketch_jaccard(a: Sequence[int], b: Sequence[int], k: int = 64) -> float:
    """Bottom-k estimate of the Jaccard similarity of the two shingle sets."""
    if not a or not b:
        return float(a == b)
    union_bottom = heapq.nsmallest(k, set(a) | set(b))
    both = set(a) & set(b)
    return sum(1 for h in union_bottom if h in both) / len(union_bottom)


def _exact_key(text: str) -> str:
    normalised = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def deduplicate(
    files: list[SourceFile], near_duplicate_threshold: float = 0.8, k: int = 64, max_bucket: int = 64
) -> tuple[list[SourceFile], int, int]:
    """Drop exact and near duplicates (the first file in path order stays). Returns (kept, exact, near).

    near_duplicate_threshold: estimated Jaccard similarity of 5-token shingles at or above which two
        files are the same; >1 turns near-duplicate removal off.
    """
    files = sorted(files, key=lambda f: f.path)
    seen, unique = set(), []
    for f in files:
        key = _exact_key(f.text)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    exact = len(files) - len(unique)
    if near_duplicate_threshold > 1.0:
        return unique, exact, 0
    sketches = [minhash_sketch(f.text, k) for f in unique]
    index: dict[int, list[int]] = defaultdict(list)
    for i, sketch in enumerate(sketches):
        for h in sketch:
            index[h].append(i)
    shared: Counter = Counter()
    for members in index.values():
        if 1 < len(members) <= max_bucket:  # a value in very many sketches is boilerplate, not evidence
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    shared[members[x], members[y]] += 1
    dropped: set[int] = set()
    min_shared = max(1, int(k * near_duplicate_threshold / 2))
    for (a, b), count in sorted(shared.items()):
        if count < min_shared or a in dropped or b in dropped:
            continue
        if sketch_jaccard(sketches[a], sketches[b], k) >= near_duplicate_threshold:
            dropped.add(b)  # a < b: the earlier path stays
    kept = [f for i, f in enumerate(unique) if i not in dropped]
    return kept, exact, len(dropped)


# ----------------------------------------------------------------------------- splitting


def split_by_group(
    files: list[SourceFile], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[SourceFile]]:
    """Train/val/test split by `SourceFile.group`, deterministic in `seed`; `<tests>` always trains."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ZooError(f"data.fractions={list(fractions)}; give three non-negative numbers summing to 1")
    by_group: dict[str, list[SourceFile]] = defaultdict(list)
    for f in files:
        by_group[f.group].append(f)
    forced = by_group.pop("<tests>", [])
    order = sorted(by_group, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
    total = sum(len(v) for v in by_group.values())
    quotas = {"test": fractions[2] * total, "val": fractions[1] * total}
    out: dict[str, list[SourceFile]] = {s: [] for s in SPLITS}
    for group in order:
        target = "train"
        if len(order) >= 3:  # fewer groups cannot be split without leaking; all of them train
            target = next((s for s in ("test", "val") if len(out[s]) < quotas[s]), "train")
        out[target].extend(by_group[group])
    out["train"].extend(forced)
    for split in SPLITS:
        out[split].sort(key=lambda f: f.path)
    return out


# ----------------------------------------------------------------------------- streams


def process_file(f: SourceFile, max_literal_len: int = 16) -> tuple[ProcessedFile | None, bool]:
    """Streams of one file (kept up to its first syntax error). Returns (file or None if no code, had_error)."""
    streams = extract_streams(f.text, max_literal_len=max_literal_len)
    had_error = streams.error_line is not None
    if had_error:
        streams = streams.truncated_at_error()
    if len(streams) <= 1:  # only <EOS>: comments and docstrings
        return None, had_error
    return ProcessedFile(f.path, f.group, streams), had_error


def _process_chunk(args):
    chunk, max_literal_len = args
    return [process_file(f, max_literal_len) for f in chunk]


def process_files(
    files: list[SourceFile],
    stats: CorpusStats,
    max_literal_len: int = 16,
    progress: bool = True,
    workers: int = 1,
    desc: str = "streams",
) -> list[ProcessedFile]:
    """Value/type streams of every file, with a progress bar; counts syntax errors and code-less files."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(files), desc=desc, unit="file", disable=not progress)
    results: list[tuple[ProcessedFile | None, bool]] = []
    if workers > 1 and len(files) > 1:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [files[i : i + 16] for i in range(0, len(files), 16)]
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_process_chunk, [(c, max_literal_len) for c in chunks]):
                results.extend(part)
                bar.update(len(part))
    else:
        for f in files:
            results.append(process_file(f, max_literal_len))
            bar.update(1)
    bar.close()
    out = []
    for f, (processed, had_error) in zip(files, results):
        if had_error:
            stats.syntax_errors += 1
            stats.syntax_error_paths.append(f.path)
        if processed is None:
            stats.no_code += 1
        else:
            out.append(processed)
    return out


def build_corpus(
    source: str | os.PathLike | None = None,
    *,
    exclude: Sequence[str] = (),
    on_invalid: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    near_duplicate_threshold: float = 0.8,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    include_tests: bool = False,
    max_literal_len: int = 16,
    max_files: int | None = None,
    progress: bool = True,
    workers: int = 1,
) -> CodeCorpus:
    """Read, deduplicate, split and stream a corpus.

    source: None (the standard library), a folder of `.py` files, or a `.jsonl` file.
    on_invalid: 'error' or 'skip' (default: 'skip' for the standard library, 'error' for user data).
    max_files: keep only the first files of each split (in path order), for quick runs and tests.
    """
    if source is None:
        files, stats = load_stdlib(None, include_tests, on_invalid or "skip", max_file_bytes)
    elif str(source).endswith((".jsonl", ".json")) or Path(source).is_file():
        files, stats = load_jsonl(source, on_invalid or "error", max_file_bytes)
    else:
        files, stats = load_folder(source, exclude, on_invalid or "error", max_file_bytes)
    if source is None and exclude:
        rules = parse_ignore(exclude)
        files = [f for f in files if not is_ignored(f.path, rules)]
    files, stats.exact_duplicates, stats.near_duplicates = deduplicate(files, near_duplicate_threshold)
    split_files = split_by_group(files, fractions, seed)
    splits = {}
    for name in SPLITS:
        chosen = split_files[name][:max_files] if max_files else split_files[name]
        splits[name] = process_files(chosen, stats, max_literal_len, progress, workers, desc=f"streams ({name})")
    stats.kept = sum(len(v) for v in splits.values())
    return CodeCorpus(splits, stats)


# ----------------------------------------------------------------------------- training examples


def make_windows(files: Sequence, context: int, stride: int | None = None) -> list[dict[str, list]]:
    """Cut encoded files (`bpe.EncodedFile`) into windows of `context + 1` pieces (inputs and next-piece targets).

    stride: step between window starts (default `context`: windows overlap by one piece, so every piece
        is a target exactly once). A file shorter than a window gives one short window.
    """
    if context < 1:
        raise ZooError(f"context={context}; give a positive number of pieces")
    stride = stride or context
    out = []
    for f in files:
        n = len(f.values)
        if n < 2:
            continue
        for start in range(0, max(n - 1, 1), stride):
            end = min(start + context + 1, n)
            out.append(
                {
                    "values": f.values[start:end],
                    "types": f.types[start:end],
                    "cardinal": f.cardinal[start:end],
                    "statement": f.statement[start:end],
                }
            )
            if end == n:
                break
    return out


def collate_windows(windows: Sequence[dict[str, list]], pad_id: int = 0, pad_type: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded batch: values/types (B, L) long; cardinal/statement/mask (B, L) bool (mask: real pieces)."""
    length = max(len(w["values"]) for w in windows)
    batch = len(windows)
    values = torch.full((batch, length), pad_id, dtype=torch.long)
    types = torch.full((batch, length), pad_type, dtype=torch.long)
    flags = {k: torch.zeros(batch, length, dtype=torch.bool) for k in ("cardinal", "statement", "mask")}
    for i, w in enumerate(windows):
        n = len(w["values"])
        values[i, :n] = torch.tensor(w["values"])
        types[i, :n] = torch.tensor(w["types"])
        flags["cardinal"][i, :n] = torch.tensor(w["cardinal"], dtype=torch.bool)
        flags["statement"][i, :n] = torch.tensor(w["statement"], dtype=torch.bool)
        flags["mask"][i, :n] = True
    return {"values": values, "types": types, **flags}


def value_type_counts(files: Iterable, vocab_size: int, num_types: int) -> torch.Tensor:
    """(vocab_size, num_types) counts of each piece under each type in the encoded files: the table
    `CodeFill.set_type_table` turns into the value->type compatibility used for re-ranking."""
    counts = torch.zeros(vocab_size * num_types, dtype=torch.float64)
    for f in files:
        flat = torch.tensor(f.values, dtype=torch.long) * num_types + torch.tensor(f.types, dtype=torch.long)
        counts += torch.bincount(flat, minlength=vocab_size * num_types).double()
    return counts.view(vocab_size, num_types)
