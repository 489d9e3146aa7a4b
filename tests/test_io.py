"""zoo.io: a target is replaced only by a complete file, and nothing else is left beside it."""

import csv
import os

import pytest

from zoo.io import atomic_path, write_csv_atomic, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "out" / "table.txt", "complete\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a ta")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.txt"]


def test_a_writer_that_never_creates_the_file_is_fine(tmp_path):
    with pytest.raises(ValueError), atomic_path(tmp_path / "x.png"):
        raise ValueError("nothing to draw")
    assert list(tmp_path.iterdir()) == []


def test_csv_round_trips_and_gets_ordinary_permissions(tmp_path):
    rows = [{"id": "a,b", "value": "1.5"}, {"id": 'quote"d', "value": ""}]
    target = write_csv_atomic(tmp_path / "rows.csv", rows)
    assert list(csv.DictReader(target.open(newline=""))) == rows
    plain = tmp_path / "plain.csv"
    plain.write_text("x\n")
    assert os.stat(target).st_mode == os.stat(plain).st_mode  # the umask applies, as for any file the user writes
