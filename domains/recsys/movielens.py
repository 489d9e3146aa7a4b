"""Recommendation data: the embedded MovieLens-100k, the user's own files, and leave-one-out splits.

Embedded default (no download): MovieLens-100k (Harper and Konstan, "The MovieLens Datasets", ACM TiiS
2015) from the example files RecBole ships in its wheel (`recbole/dataset_example/ml-100k/`); item text is
the movie's title, release year and genres (keys `title`, `year`, `genre`). Every rating is an
interaction (implicit feedback, as Recformer and SASRec use it).

User data:
- RecBole atomic files: `.inter` (tab-separated, typed header `user_id:token item_id:token
  [timestamp:float] ...`) and `.item` (`item_id:token` plus text fields, e.g. `title:token_seq`); every
  non-id `.item` field is item text, in column order, its key the field name with `_` as spaces.
- JSONL: one history a line `{"user": "u1", "items": ["i3", "i7"]}` (oldest first) and item metadata a
  line `{"item": "i3", "title": "...", ...}` (every other field is text, in line order; lists are joined).

Order and ties: a user's interactions are sorted by timestamp; equal timestamps of different items are
ordered by the item's position in the item file (so the result does not depend on the row order of the
`.inter` file) and reported in one warning (MovieLens-100k has 25k such ties: an error would reject the
default data). The same (user, item, timestamp) twice is an error. Without a timestamp column, file order.

Leave-one-out (`leave_one_out`): per user, last item = test target (history: all before it), second-to-last
= validation target (history: all before it), the rest trains; users with fewer than 3 interactions only
train, as in the official Recformer preprocessing.

Bad input raises `zoo.errors.DataError` with file:line and the fix.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import DataError

log = logging.getLogger(__name__)

MOVIELENS_FIELDS = {"movie_title": "title", "release_year": "year", "class": "genre"}
USER_FIELD, ITEM_FIELD, TIME_FIELD = "user_id", "item_id", "timestamp"


# ----------------------------------------------------------------------------- catalogue


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@dataclass
class Catalogue:
    """Items in file order: `item_ids[i]` and its ordered text `attributes[i]` (key -> value)."""

    item_ids: list[str]
    attributes: list[dict[str, str]]
    source: str = "<memory>"
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {item: i for i, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def display_name(self, i: int) -> str:
        """'Title (Year)' when the item has a title and a year, else its first text value."""
        attrs = self.attributes[i]
        if "title" in attrs:
            return f"{attrs['title']} ({attrs['year']})" if attrs.get("year") else attrs["title"]
        return next(iter(attrs.values()), self.item_ids[i])

    def texts(self) -> list[str]:
        """Every key and value (the tokenizer's training text)."""
        return [t for attrs in self.attributes for kv in attrs.items() for t in kv]

    def find(self, query: str) -> int:
        """Catalogue index of a display name ('Toy Story (1995)', any case), an item id, or a unique title."""
        wanted = _normalise(query)
        for key in (self.display_name, lambda i: self.item_ids[i]):  # display names first, then ids
            hits = [i for i in range(len(self)) if _normalise(key(i)) == wanted]
            if hits:
                if len(hits) > 1:
                    log.warning(
                        "%r matches %d items (ids %s); using the first, id %s; give an item id to choose another",
                        query,
                        len(hits),
                        ", ".join(self.item_ids[i] for i in hits),
                        self.item_ids[hits[0]],
                    )
                return hits[0]
        titles = [i for i, a in enumerate(self.attributes) if _normalise(a.get("title", "")) == wanted]
        if len(titles) == 1:
            return titles[0]
        names = [self.display_name(i) for i in range(len(self))]
        close = difflib.get_close_matches(query, names, n=3, cutoff=0.6)
        hint = f"did you mean {'; '.join(close)}?" if close else "names look like 'Toy Story (1995)'"
        many = f" ({len(titles)} items have that title: add the year)" if titles else ""
        raise DataError(f"no item {query!r} in {self.source}{many}; {hint} (or give an item id)")

    def to_jsonl(self) -> str:
        """The catalogue as item-metadata JSONL (`read_item_jsonl` reads it back unchanged): ship it with a model."""
        return "".join(
            json.dumps({"item": i, **a}, ensure_ascii=False) + "\n" for i, a in zip(self.item_ids, self.attributes)
        )

    def extend(self, other: Catalogue) -> Catalogue:
        """This catalogue with `other`'s items appended (new items known by text only); ids must be new."""
        clash = [i for i in other.item_ids if i in self.index]
        if clash:
            raise DataError(
                f"{other.source}: item ids {', '.join(clash[:5])} are already in {self.source}; new items need new ids"
            )
        return Catalogue(self.item_ids + other.item_ids, self.attributes + other.attributes, self.source)


def parse_history(text: str, catalogue: Catalogue) -> list[int]:
    """'Toy Story (1995); Heat (1995)' -> catalogue indices (oldest first)."""
    names = [part.strip() for part in text.split(";") if part.strip()]
    if not names:
        raise DataError(
            "the history is empty; give items separated by ';', e.g. history=\"Toy Story (1995); Heat (1995)\""
        )
    return [catalogue.find(name) for name in names]


# ----------------------------------------------------------------------------- interactions and splits


@dataclass
class Interactions:
    """Users and their histories (catalogue indices, oldest first)."""

    catalogue: Catalogue
    users: list[str]
    histories: list[list[int]]

    def subset(self, max_users: int) -> Interactions:
        """The first `max_users` users (same catalogue)."""
        return Interactions(self.catalogue, self.users[:max_users], self.histories[:max_users])


Case = tuple[list[int], int]  # (history, target)


@dataclass
class Split:
    """train: one sequence per user; valid/test: (history, target) cases; *_users: whose case it is."""

    train: list[list[int]]
    valid: list[Case]
    test: list[Case]
    valid_users: list[int] = field(default_factory=list)
    test_users: list[int] = field(default_factory=list)


def leave_one_out(data: Interactions) -> Split:
    split = Split([], [], [])
    for user, history in enumerate(data.histories):
        if len(history) < 3:
            split.train.append(list(history))
            continue
        split.train.append(history[:-2])
        split.valid.append((history[:-2], history[-2]))
        split.test.append((history[:-1], history[-1]))
        split.valid_users.append(user)
        split.test_users.append(user)
    return split


@dataclass
class ZeroShotSplit:
    """A leave-one-out split with `held_out` items removed from every history and from train/valid targets;
    `test` keeps only the cases whose target is held out (ranked among the whole catalogue by text)."""

    train: list[list[int]]
    valid: list[Case]
    test: list[Case]
    held_out: list[int]


def zero_shot_split(split: Split, num_items: int, fraction: float = 0.2, seed: int = 0) -> ZeroShotSplit:
    """Hold out a seeded `fraction` of the items that occur in `split`.

    Compare a model trained on `split.train` (it saw the held-out items) with one trained on the returned
    `train` (it never did) on the same returned `test` cases: that gap is the zero-shot cost.
    """
    seen = sorted({i for seq in split.train for i in seq} | {t for _, t in split.test} | {t for _, t in split.valid})
    if not 0 < fraction < 1 or not seen or max(seen) >= num_items:
        raise DataError(f"zero-shot split: fraction must be in (0, 1) (got {fraction}) over a non-empty catalogue")
    held = set(random.Random(seed).sample(seen, max(1, round(fraction * len(seen)))))
    keep = lambda seq: [i for i in seq if i not in held]
    train = [s for s in map(keep, split.train) if s]
    valid = [(keep(h), t) for h, t in split.valid if t not in held and keep(h)]
    test = [(keep(h), t) for h, t in split.test if t in held and keep(h)]
    return ZeroShotSplit(train, valid, test, sorted(held))


# ----------------------------------------------------------------------------- RecBole atomic files


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None


def _atomic_header(path: Path, lines: list[str]) -> list[str]:
    """Field names of a typed header `name:type<TAB>...`."""
    if not lines or not lines[0].strip():
        raise DataError(f"{path}:1: empty file; a RecBole atomic file starts with a header like 'item_id:token'")
    names = []
    for column in lines[0].split("\t"):
        name, sep, kind = column.strip().partition(":")
        if not sep or not name or kind not in {"token", "token_seq", "float", "float_seq"}:
            raise DataError(
                f"{path}:1: header field {column.strip()!r} is not 'name:type' with type token, token_seq, float or "
                "float_seq (RecBole atomic format)"
            )
        names.append(name)
    return names


def _atomic_rows(path: Path, lines: list[str], width: int):
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != width:
            raise DataError(f"{path}:{number}: {len(values)} tab-separated fields, the header has {width}")
        yield number, [v.strip() for v in values]


def read_item_file(path: str | Path, rename: dict[str, str] | None = None) -> Catalogue:
    """A RecBole `.item` file: `item_id` plus text fields (keys: field names, `_` -> space, or `rename`)."""
    path = Path(path)
    lines = _read_lines(path)
    names = _atomic_header(path, lines)
    if ITEM_FIELD not in names:
        raise DataError(
            f"{path}:1: no '{ITEM_FIELD}:token' column (header: {', '.join(names)}); the .item file must name "
            "each item's id in a column 'item_id:token'"
        )
    id_col = names.index(ITEM_FIELD)
    text_cols = [(c, (rename or {}).get(n, n.replace("_", " "))) for c, n in enumerate(names) if c != id_col]
    if not text_cols:
        raise DataError(f"{path}:1: no text fields besides '{ITEM_FIELD}'; add e.g. a 'title:token_seq' column")
    ids, attributes, first_line = [], [], {}
    for number, values in _atomic_rows(path, lines, len(names)):
        item = values[id_col]
        if not item:
            raise DataError(f"{path}:{number}: empty item id")
        if item in first_line:
            raise DataError(
                f"{path}:{number}: item {item!r} is already defined at line {first_line[item]}; keep one line per item"
            )
        attrs = {key: values[c] for c, key in text_cols if values[c]}
        if not attrs:
            raise DataError(
                f"{path}:{number}: item {item!r} has no text (all of {', '.join(k for _, k in text_cols)} empty); "
                "give it at least a title"
            )
        first_line[item] = number
        ids.append(item)
        attributes.append(attrs)
    if not ids:
        raise DataError(f"{path}: no items below the header")
    return Catalogue(ids, attributes, str(path))


def _natural_key(user: str):
    return (0, int(user), "") if user.isdigit() else (1, 0, user)


def read_inter_file(path: str | Path, catalogue: Catalogue) -> Interactions:
    """A RecBole `.inter` file against a catalogue: histories ordered as the module docstring says."""
    path = Path(path)
    lines = _read_lines(path)
    names = _atomic_header(path, lines)
    for needed in (USER_FIELD, ITEM_FIELD):
        if needed not in names:
            raise DataError(f"{path}:1: no '{needed}:token' column (header: {', '.join(names)})")
    u_col, i_col = names.index(USER_FIELD), names.index(ITEM_FIELD)
    t_col = names.index(TIME_FIELD) if TIME_FIELD in names else None
    events: dict[str, list[tuple[float, int, int]]] = {}
    for number, values in _atomic_rows(path, lines, len(names)):
        user, item = values[u_col], values[i_col]
        if not user:
            raise DataError(f"{path}:{number}: empty user id")
        if item not in catalogue.index:
            raise DataError(
                f"{path}:{number}: item {item!r} is not in {catalogue.source}; add it (with its text) to the item "
                "file or remove its interactions"
            )
        time = float(number)
        if t_col is not None:
            try:
                time = float(values[t_col])
            except ValueError:
                raise DataError(
                    f"{path}:{number}: timestamp {values[t_col]!r} is not a number; "
                    "give times as numbers (e.g. Unix seconds)"
                ) from None
        events.setdefault(user, []).append((time, catalogue.index[item], number))
    return _ordered(path, catalogue, events, t_col is not None)


def _ordered(path: Path, catalogue: Catalogue, events: dict, timed: bool) -> Interactions:
    users, histories, ties = [], [], 0
    for user in sorted(events, key=_natural_key):
        rows = sorted(events[user])  # (time, catalogue index, line): ties by catalogue position
        for before, after in zip(rows, rows[1:]):
            if before[:2] == after[:2]:
                raise DataError(
                    f"{path}:{after[2]}: user {user!r} has item {catalogue.item_ids[after[1]]!r} at the same "
                    f"timestamp at line {before[2]} too; remove the duplicate line"
                )
            ties += timed and before[0] == after[0]
        users.append(user)
        histories.append([index for _, index, _ in rows])
    if ties:
        log.warning(
            "%s: %d interactions share their timestamp with the previous one of the same user; ordered by the "
            "items' order in %s",
            path,
            ties,
            catalogue.source,
        )
    if not users:
        raise DataError(f"{path}: no interactions below the header")
    return Interactions(catalogue, users, histories)


def read_atomic(inter_path: str | Path, item_path: str | Path, rename: dict[str, str] | None = None) -> Interactions:
    return read_inter_file(inter_path, read_item_file(item_path, rename))


# ----------------------------------------------------------------------------- JSONL


def _json_lines(path: Path):
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not JSON ({err.msg}); one JSON object a line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: a JSON object {{...}} is expected, got {type(record).__name__}")
        yield number, record


def _text(value) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value if v is not None)
    return "" if value is None else str(value)


def read_item_jsonl(path: str | Path) -> Catalogue:
    """Item metadata, one `{"item": id, "title": ..., ...}` a line."""
    path = Path(path)
    ids, attributes, first_line = [], [], {}
    for number, record in _json_lines(path):
        if "item" not in record:
            raise DataError(f'{path}:{number}: no "item" field; each line needs {{"item": id, "title": ...}}')
        item = str(record["item"])
        if item in first_line:
            raise DataError(
                f"{path}:{number}: item {item!r} is already defined at line {first_line[item]}; keep one line per item"
            )
        attrs = {k: _text(v).strip() for k, v in record.items() if k != "item" and _text(v).strip()}
        if not attrs:
            raise DataError(f'{path}:{number}: item {item!r} has no text fields; give it at least a "title"')
        first_line[item] = number
        ids.append(item)
        attributes.append(attrs)
    if not ids:
        raise DataError(f"{path}: no items")
    return Catalogue(ids, attributes, str(path))


def read_history_jsonl(path: str | Path, catalogue: Catalogue) -> Interactions:
    """Histories, one `{"user": id, "items": [oldest, ..., newest]}` a line."""
    path = Path(path)
    users, histories, first_line = [], [], {}
    for number, record in _json_lines(path):
        if "user" not in record or not isinstance(record.get("items"), list):
            raise DataError(f'{path}:{number}: each line needs {{"user": id, "items": [item ids, oldest first]}}')
        user = str(record["user"])
        if user in first_line:
            raise DataError(f"{path}:{number}: user {user!r} already has a history at line {first_line[user]}")
        if not record["items"]:
            raise DataError(f"{path}:{number}: user {user!r} has an empty history; drop the line or add items")
        unknown = [str(i) for i in record["items"] if str(i) not in catalogue.index]
        if unknown:
            raise DataError(
                f"{path}:{number}: item {unknown[0]!r} of user {user!r} is not in {catalogue.source}; add it to the "
                "item metadata or remove it from the history"
            )
        first_line[user] = number
        users.append(user)
        histories.append([catalogue.index[str(i)] for i in record["items"]])
    if not users:
        raise DataError(f"{path}: no histories")
    return Interactions(catalogue, users, histories)


def read_user_data(histories: str | Path, items: str | Path) -> Interactions:
    """The user's own files: `.inter` + `.item`, or `.jsonl` histories + `.jsonl` items (by suffix)."""
    histories, items = Path(histories), Path(items)
    catalogue = read_item_jsonl(items) if items.suffix == ".jsonl" else read_item_file(items)
    if histories.suffix == ".jsonl":
        return read_history_jsonl(histories, catalogue)
    return read_inter_file(histories, catalogue)


def read_items(path: str | Path) -> Catalogue:
    """Item text from a `.item` or `.jsonl` file (e.g. new items to rank without retraining)."""
    path = Path(path)
    return read_item_jsonl(path) if path.suffix == ".jsonl" else read_item_file(path)


# ----------------------------------------------------------------------------- embedded default


def movielens_files() -> tuple[Path, Path]:
    """Paths of RecBole's bundled ml-100k.inter and ml-100k.item."""
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            "the embedded MovieLens-100k comes from the RecBole wheel, which is not installed; "
            "run `pip install --no-deps recbole`"
        ) from None
    base = "recbole/dataset_example/ml-100k/ml-100k"
    inter, item = (Path(str(dist.locate_file(f"{base}.{ext}"))) for ext in ("inter", "item"))
    if not inter.is_file() or not item.is_file():
        raise DataError(f"RecBole is installed but {inter.parent} lacks ml-100k.inter/.item; reinstall it")
    return inter, item


def load_movielens_100k(max_users: int | None = None) -> Interactions:
    """MovieLens-100k: 943 users, 1682 movies, 100k interactions; text = title, year, genre."""
    inter, item = movielens_files()
    data = read_atomic(inter, item, rename=MOVIELENS_FIELDS)
    return data.subset(max_users) if max_users else data


def most_popular_items(data: Interactions, num_items: int) -> Interactions:
    """The same users restricted to the `num_items` most interacted items (ties: catalogue order), re-indexed;
    users left with no interaction are dropped. A small, dense subset for quick runs and tests."""
    counts: dict[int, int] = {}
    for history in data.histories:
        for i in history:
            counts[i] = counts.get(i, 0) + 1
    keep = sorted(sorted(counts, key=lambda i: (-counts[i], i))[:num_items])
    new_index = {old: new for new, old in enumerate(keep)}
    cat = data.catalogue
    catalogue = Catalogue([cat.item_ids[i] for i in keep], [cat.attributes[i] for i in keep], cat.source)
    users, histories = [], []
    for user, history in zip(data.users, data.histories):
        kept = [new_index[i] for i in history if i in new_index]
        if kept:
            users.append(user)
            histories.append(kept)
    return Interactions(catalogue, users, histories)
