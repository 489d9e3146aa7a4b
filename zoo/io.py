"""Files that are either complete or absent.

Everything the zoo writes for a user (checkpoints, predictions, plots, tables,
embeddings) goes to a temporary file beside its target and is renamed over it
only once it is complete, so a run killed mid-write never leaves a half file
that looks finished. The rename is atomic on POSIX because both names live in
the same folder.
"""

from __future__ import annotations

import contextlib
import csv
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed.

    Any writer can create it (`open`, `PIL.Image.save(..., format=)`, `pyarrow.parquet.write_table`;
    give `np.save` an open handle, since it appends `.npy` to a bare name), so the file gets the
    writer's usual permissions. fsync: flush it to disk before the rename (checkpoints: survive a
    power cut, not just a kill). The name is unique per call, so concurrent writers never collide.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_csv_atomic(
    target: str | os.PathLike, rows: Sequence[dict[str, Any]], fieldnames: Sequence[str] | None = None
) -> Path:
    """Rows (dicts; the first one's keys are the header unless `fieldnames`) as one CSV file."""
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames or (rows[0] if rows else [])))
        writer.writeheader()
        writer.writerows(rows)
    return Path(target)
