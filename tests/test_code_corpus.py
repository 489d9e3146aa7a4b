"""Corpora: the embedded standard library, package splits, duplicates, user folders/JSONL and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from domains.code import corpus as C
from domains.code.bpe import ValueTokenizer
from domains.code.streams import TYPES
from zoo.errors import DataError, ZooError

BAD = Path(__file__).parent / "bad_inputs" / "code"
MODULE = "def f(x):\n    return x + {k}\n\n\nclass C{k}:\n    value = {k}\n"


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return folder


@pytest.fixture(scope="module")
def stdlib():
    files, stats = C.load_stdlib()
    return files, stats


def test_embedded_stdlib_has_no_tests_and_splits_by_package(stdlib):
    files, stats = stdlib
    assert len(files) > 500 and stats.seen == len(files) + sum(stats.skipped.values())
    assert not any(set(f.path.split("/")[:-1]) & C.TEST_DIRS for f in files)
    assert {f.group for f in files if f.path.startswith("email/")} == {"email"}
    kept, exact, near = C.deduplicate(files)
    assert near > 0  # the codec tables in encodings/ are near copies of each other
    splits = C.split_by_group(kept)
    groups = {name: {f.group for f in split} for name, split in splits.items()}
    assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(s) for s in splits.values()) == len(kept)
    assert 0.05 < len(splits["test"]) / len(kept) < 0.2 and 0.05 < len(splits["val"]) / len(kept) < 0.2
    again = C.split_by_group(list(reversed(kept)))
    assert {k: [f.path for f in v] for k, v in again.items()} == {k: [f.path for f in v] for k, v in splits.items()}


def test_split_seed_and_fractions_and_forced_tests():
    files = [C.SourceFile(f"pkg{g}/m{i}.py", "x = 1\n", f"pkg{g}") for g in range(40) for i in range(3)]
    files.append(C.SourceFile("test/test_x.py", "x = 1\n", "<tests>"))
    a, b = C.split_by_group(files, seed=0), C.split_by_group(files, seed=1)
    assert {f.group for f in a["test"]} != {f.group for f in b["test"]}
    assert any(f.group == "<tests>" for f in a["train"])
    with pytest.raises(ZooError, match="fractions"):
        C.split_by_group(files, fractions=(0.5, 0.5, 0.5))


def test_exact_and_near_duplicates_are_removed():
    base = "".join(f"def function_{i}(a, b):\n    return a * {i} + b\n\n" for i in range(60))
    near = base.replace("return a * 7 + b", "return a * 7 - b")
    other = "".join(f"class Thing{i}:\n    size = {i}\n    name = 'x{i}'\n" for i in range(60))
    files = [
        C.SourceFile("a.py", base, "a"),
        C.SourceFile("b.py", base + "\n\n", "b"),  # exact after normalising trailing blank lines
        C.SourceFile("c.py", near, "c"),
        C.SourceFile("d.py", other, "d"),
    ]
    kept, exact, near_count = C.deduplicate(files)
    assert [f.path for f in kept] == ["a.py", "d.py"] and exact == 1 and near_count == 1
    assert C.sketch_jaccard(C.minhash_sketch(base), C.minhash_sketch(near)) > 0.8
    assert C.sketch_jaccard(C.minhash_sketch(base), C.minhash_sketch(other)) < 0.2
    kept, _, near_count = C.deduplicate(files, near_duplicate_threshold=1.1)  # near removal off
    assert near_count == 0 and len(kept) == 3


def test_committed_bad_inputs_raise_one_line_errors():
    expected = {
        "binary.py": "binary file",
        "empty.py": "empty file",
        "blank.py": "empty file",
        "latin1.py": "not UTF-8",
    }
    for name, what in expected.items():
        with pytest.raises(DataError) as info:
            C.decode_source((BAD / name).read_bytes(), str(BAD / name))
        message = str(info.value)
        assert what in message and name in message and "\n" not in message and "on_invalid=skip" in message
    assert "latin1.py:1:" in _error(lambda: C.decode_source((BAD / "latin1.py").read_bytes(), "latin1.py"))
    readme = (BAD / "README.md").read_text()
    assert all(f"| {p.name} |" in readme for p in BAD.iterdir() if p.name != "README.md")


def _error(fn) -> str:
    with pytest.raises(ZooError) as info:
        fn()
    return str(info.value)


def test_folder_with_bad_files_error_or_skip(tmp_path):
    folder = write(tmp_path / "src", {p.name: p.read_bytes() for p in BAD.glob("*.py")})
    write(folder, {"good.py": MODULE.format(k=1), "huge.py": "x = 1\n" * 400})
    message = _error(lambda: C.load_folder(folder, on_invalid="error"))
    assert "binary.py" in message  # the first bad file in path order
    files, stats = C.load_folder(folder, on_invalid="skip", max_file_bytes=1000)
    assert stats.skipped == {"binary": 1, "empty": 2, "not_utf8": 1, "too_large": 1}
    assert sorted(f.path for f in files) == ["good.py", "python2.py", "syntax_error.py"]
    assert "huge.py" in _error(lambda: C.load_folder(folder, exclude=["*.py", "!huge.py"], max_file_bytes=1000))
    processed = C.process_files(files, stats, progress=False)
    assert stats.syntax_errors == 2 and set(stats.syntax_error_paths) == {"python2.py", "syntax_error.py"}
    by_path = {f.path: f.streams.values for f in processed}
    assert "never_reached" not in by_path["syntax_error.py"] and "fine" in by_path["syntax_error.py"]
    assert by_path["python2.py"][-1] == "<EOS>" and "print" not in by_path["python2.py"]
    with pytest.raises(ZooError, match="on_invalid"):
        C.load_folder(folder, on_invalid="ignore")


def test_jsonl_corpus(tmp_path):
    message = _error(lambda: C.load_jsonl(BAD / "bad_record.jsonl"))
    assert "bad_record.jsonl:2" in message and "\n" not in message
    files, stats = C.load_jsonl(BAD / "bad_record.jsonl", on_invalid="skip")
    assert [f.path for f in files] == ["ok.py"] and stats.skipped == {"bad_record": 2}
    path = tmp_path / "files.jsonl"
    records = [{"path": f"p{g}/m{i}.py", "text": MODULE.format(k=10 * g + i)} for g in range(4) for i in range(2)]
    records.append({"path": "p0/m0.py", "text": "y = 2\n"})  # a second record with the same path is kept apart
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    files, _ = C.load_jsonl(path)
    assert len({f.path for f in files}) == 9 and {f.group for f in files} == {"p0", "p1", "p2", "p3"}


def test_gitignore_style_excludes(tmp_path):
    folder = write(
        tmp_path / "repo",
        {
            "pkg/a.py": "a = 1\n",
            "pkg/gen/b_pb2.py": "b = 1\n",
            "pkg/gen/keep_pb2.py": "k = 1\n",
            "build/lib/pkg/a.py": "a = 1\n",
            "docs/conf.py": "c = 1\n",
            "vendored/x.py": "x = 1\n",
            "notes.txt": "not python",
            ".gitignore": "# generated\nvendored/\n",
        },
    )
    paths = C.folder_paths(folder, exclude=["build/", "*_pb2.py", "!keep_pb2.py", "/docs/*.py"])
    assert paths == ["pkg/a.py", "pkg/gen/keep_pb2.py"]
    assert "vendored/x.py" in C.folder_paths(folder, use_gitignore=False)
    assert "no such folder" in _error(lambda: C.folder_paths(tmp_path / "missing"))


def test_build_corpus_on_a_folder_with_progress(tmp_path, capsys):
    files = {
        f"pkg{g}/mod{i}.py": MODULE.format(k=100 * g + i) + f"\nNAME_{g}_{i} = 'n'\n"
        for g in range(6)
        for i in range(3)
    }
    corpus = C.build_corpus(write(tmp_path / "src", files), near_duplicate_threshold=1.1, progress=True)
    assert "streams" in capsys.readouterr().err  # the tqdm bar
    assert corpus.stats.kept == 18 and sum(len(corpus[s]) for s in C.SPLITS) == 18
    assert not corpus.groups("train") & (corpus.groups("val") | corpus.groups("test"))
    with pytest.raises(ZooError, match="unknown split"):
        corpus["dev"]


def test_windows_collate_and_type_counts():
    streams = [C.process_file(C.SourceFile(f"m{k}.py", MODULE.format(k=k) * 3, "m"))[0].streams for k in range(3)]
    tokenizer = ValueTokenizer.train((v for s in streams for v in s.values), vocab_size=300)
    encoded = [tokenizer.encode_streams(s) for s in streams]
    windows = C.make_windows(encoded, context=16)
    covered = sum(len(w["values"]) - 1 for w in windows)
    assert covered == sum(len(e) - 1 for e in encoded)  # every piece but each file's first is a target once
    batch = C.collate_windows(windows[:4])
    assert batch["values"].shape == batch["types"].shape == batch["mask"].shape == (4, 17)
    last = C.collate_windows([windows[-1], windows[0]])
    assert last["mask"][0].sum() == len(windows[-1]["values"]) and (last["values"][0][~last["mask"][0]] == 0).all()
    counts = C.value_type_counts(encoded, tokenizer.vocab_size, len(TYPES))
    assert counts.sum() == sum(len(e) for e in encoded)
    self_id = tokenizer.encode_word("return")[0]
    assert counts[self_id].argmax() == TYPES.index("RETURN")
    with pytest.raises(ZooError):
        C.make_windows(encoded, context=0)
    assert torch.equal(batch["statement"], batch["statement"] & batch["mask"])
