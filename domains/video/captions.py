"""Captions: a word tokenizer built from caption texts, and readers for MSR-VTT-style JSON and CSV caption files.

Words are lowercase runs of letters and digits (an inner apostrophe kept: "man's"); punctuation is dropped.
The same `caption_words` feeds the tokenizer and the caption metrics (domains/video/caption_metrics.py), so a
caption is scored on exactly the words the model can produce. Special tokens and their ids are fixed:
[PAD]=0, [CLS]=1, [SEP]=2, [MASK]=3, [UNK]=4 (the ids zoo.models.swinbert decodes with).

Caption files (Lin et al., "SwinBERT", CVPR 2022, train on MSR-VTT's layout):
- JSON: `{"sentences": [{"video_id": "video7", "caption": "a man is singing"}, ...], ...}` (other keys ignored);
- CSV: a header with `video` (or `video_id`) and `caption` columns, one caption per row.
A record naming a video that is not there, an empty caption, or a row with the wrong number of fields is an error
naming the file and line (CSV) or record (JSON); `on_invalid="skip"` drops such records and lists them in
`CaptionTable.rejected`. A file that cannot be parsed at all is always an error.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.errors import DataError
from zoo.io import write_text_atomic

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
PAD, CLS, SEP, MASK, UNK = range(len(SPECIAL_TOKENS))
TOKENIZER_FORMAT = "longzoo-caption-tokenizer"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def caption_words(text: str) -> list[str]:
    """Lowercase words of a caption, punctuation dropped: "A man's dog, running!" -> [a, man's, dog, running]."""
    return _WORD.findall(text.lower())


def normalize_caption(text: str) -> str:
    return " ".join(caption_words(text))


class CaptionTokenizer:
    """Word-level vocabulary: the special tokens, then words by falling frequency (ties alphabetical)."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DataError(f"caption vocabulary must start with {list(SPECIAL_TOKENS)}; got {words[:5]}")
        if len(set(words)) != len(words):
            duplicate = next(w for w, n in Counter(words).items() if n > 1)
            raise DataError(f"caption vocabulary lists {duplicate!r} twice")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_words: int | None = None) -> CaptionTokenizer:
        """Vocabulary of the words seen at least `min_count` times, at most `max_words` of them."""
        counts = Counter(w for text in captions for w in caption_words(text))
        ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIAL_TOKENS, *ranked[:max_words]])

    def __len__(self) -> int:
        return len(self.words)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CaptionTokenizer) and self.words == other.words

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """`[CLS] words [SEP]`; with `max_len`, words are cut so that the whole fits (as the official tensorizer)."""
        ids = [self.index.get(w, UNK) for w in caption_words(text)]
        if max_len is not None:
            if max_len < 2:
                raise DataError(f"max_len={max_len} leaves no room for [CLS] and [SEP]")
            ids = ids[: max_len - 2]
        return [CLS, *ids, SEP]

    def encode_batch(self, texts: Sequence[str], max_len: int | None = None) -> torch.Tensor:
        """(B, L) long tensor of `encode`d captions, right-padded with [PAD] to the longest."""
        rows = [self.encode(t, max_len) for t in texts]
        width = max(map(len, rows), default=2)
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first [SEP]; [PAD], [CLS] and [MASK] are skipped, [UNK] kept as written."""
        words = []
        for i in ids:
            i = int(i)
            if i == SEP:
                break
            if i in (PAD, CLS, MASK):
                continue
            if not 0 <= i < len(self.words):
                raise DataError(f"token id {i} is outside the caption vocabulary of {len(self.words)} words")
            words.append(self.words[i])
        return " ".join(words)

    def to_json(self) -> str:
        return json.dumps({"format": TOKENIZER_FORMAT, "version": 1, "words": self.words}, indent=1) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CaptionTokenizer:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: no such caption tokenizer file") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); save the tokenizer again") from None
        if (
            not isinstance(data, dict)
            or data.get("format") != TOKENIZER_FORMAT
            or not isinstance(data.get("words"), list)
        ):
            raise DataError(f"{path}: not a caption tokenizer (expected format {TOKENIZER_FORMAT!r} and a words list)")
        try:
            return cls(data["words"])
        except DataError as err:
            raise DataError(f"{path}: {err}") from None


# ---------------------------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class Caption:
    video_id: str
    caption: str
    where: str  # file:line (CSV) or file:sentences[i] (JSON)


@dataclass
class CaptionTable:
    path: str
    captions: list[Caption]
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)

    def by_video(self) -> dict[str, list[str]]:
        """Every video's captions, in file order (the references of the caption metrics)."""
        grouped: dict[str, list[str]] = {}
        for c in self.captions:
            grouped.setdefault(c.video_id, []).append(c.caption)
        return grouped


def read_captions(
    path: str | os.PathLike, videos: Iterable[str] | None = None, on_invalid: str = "error"
) -> CaptionTable:
    """Captions from a `.json` (MSR-VTT style) or `.csv` file.

    videos: the video ids that exist (e.g. file stems of the video folder); a caption naming another is invalid.
    on_invalid: "error" stops at the first invalid record, "skip" drops invalid records into `rejected`.
    """
    if on_invalid not in ("error", "skip"):
        raise DataError(f"on_invalid={on_invalid!r}; choose error or skip")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such caption file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        records = _json_records(path)
    elif suffix == ".csv":
        records = _csv_records(path)
    else:
        raise DataError(f"{path}: caption files must be .json (MSR-VTT style) or .csv (video,caption)")
    known = set(videos) if videos is not None else None
    table = CaptionTable(str(path), [])
    for where, video_id, text, problem in records:
        if problem is None:
            problem = _check(video_id, text, known)
        if problem is None:
            table.captions.append(Caption(video_id, text.strip(), where))
        elif on_invalid == "error":
            raise DataError(f"{where}: {problem}; fix or remove it, or set data.on_invalid=skip")
        else:
            table.rejected.append((where, problem))
    if not table.captions:
        raise DataError(f"{path}: no valid captions (skipped {len(table.rejected)} invalid records)")
    return table


def _check(video_id: str, text: str, known: set[str] | None) -> str | None:
    if not video_id.strip():
        return "empty video id"
    if not caption_words(text):
        return f"empty caption for video {video_id!r}"
    if known is not None and video_id not in known:
        return f"caption names video {video_id!r}, which is not among the {len(known)} videos found"
    return None


def _json_records(path: Path) -> list[tuple[str, str, str, str | None]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); is it the right file?") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: malformed JSON ({err.msg}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise DataError(f'{path}: expected MSR-VTT style JSON {{"sentences": [{{"video_id", "caption"}}, ...]}}')
    records = []
    for i, item in enumerate(data["sentences"]):
        where = f"{path}:sentences[{i}]"
        if not isinstance(item, dict) or not {"video_id", "caption"} <= item.keys():
            records.append((where, "", "", 'record is not an object with "video_id" and "caption"'))
        elif not isinstance(item["caption"], str):
            records.append((where, str(item["video_id"]), "", f"caption is a {type(item['caption']).__name__}"))
        else:
            records.append((where, str(item["video_id"]), item["caption"], None))
    return records


def _csv_records(path: Path) -> list[tuple[str, str, str, str | None]]:
    records = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, strict=True)
            header = [h.strip().lower() for h in next(reader, [])]
            video_col = next((header.index(c) for c in ("video", "video_id") if c in header), None)
            if video_col is None or "caption" not in header:
                raise DataError(
                    f"{path}:1: the header needs `video` (or `video_id`) and `caption` columns; got {header}"
                )
            caption_col = header.index("caption")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row or not any(cell.strip() for cell in row):
                    continue  # blank line
                if len(row) != len(header):
                    problem = f"{len(row)} fields where the header has {len(header)} (quote captions with commas)"
                    records.append((where, "", "", problem))
                else:
                    records.append((where, row[video_col].strip(), row[caption_col], None))
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({err}); fix the quoting") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); is it the right file?") from None
    return records
