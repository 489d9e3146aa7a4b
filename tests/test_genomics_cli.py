"""`zoo genomics ...` in subprocesses: help, bad input as one line with exit code 2, train then predict."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.zoo_cli import one_line_error
from tests.zoo_cli import zoo as run_zoo

TINY = [
    "model.kwargs.d_model=32",
    "model.kwargs.d_inner=64",
    "model.kwargs.filter_order=16",
    "trainer.enable_progress_bar=false",
]


def zoo(*args: str, runs: Path):
    return run_zoo("genomics", *args, runs=runs)


def test_help_lists_verbs_models_and_examples(tmp_path):
    text = zoo("--help", runs=tmp_path / "runs").stdout
    assert "verbs: embed, eval, export, finetune, predict, pretrain, train" in text
    assert (
        "model: dna_xlstm, dna_xlstm_rc, hyenadna, hyenadna_tiny_1k, mamba, s5, transformer, transformer_bidir" in text
    )
    assert "zoo genomics train experiment=shuffled" in text


# Empty records and mixed line endings take the same path to the CLI; tests/test_genomics_data.py checks their messages.
@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.fa", ">r1\nACGT\n>r2\nACZT\n", r"bad.fa: record 'r2': illegal character 'Z' at position 3"),
        ("cut.fa.gz", None, r"cut.fa.gz:\d+ \(record 'r\d+'\): the gzip stream ends early"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        data = gzip.compress("".join(f">r{i}\n{'ACGT' * 2000}\n" for i in range(8)).encode())
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content.encode())
    line = one_line_error(zoo("train", f"data.path={path}", runs=tmp_path / "runs"))
    assert __import__("re").search(message, line), line


@pytest.mark.slow  # the same messages are checked in-process in tests/test_genomics_data.py
def test_missing_labels_and_too_long_through_the_cli(tmp_path):
    fasta = tmp_path / "s.fa"
    fasta.write_text("".join(f">r{i}\n{'ACGT' * (4 if i == 3 else 1)}\n" for i in range(12)))
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"r{i},{'xy'[i % 2]}\n" for i in range(12) if i != 5))
    line = one_line_error(
        zoo("train", f"data.path={fasta}", f"data.labels={tmp_path / 'labels.csv'}", runs=tmp_path / "runs")
    )
    assert "s.fa: record 'r5' has no label" in line
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"r{i},{'xy'[i % 2]}\n" for i in range(12)))
    line = one_line_error(
        zoo(
            "train",
            f"data.path={fasta}",
            f"data.labels={tmp_path / 'labels.csv'}",
            "data.max_length=8",
            runs=tmp_path / "runs",
        )
    )
    assert "record 'r3' has 16 bases, more than data.max_length=8" in line and "on_too_long=truncate or slide" in line


@pytest.mark.slow
def test_train_then_predict_from_the_cli(tmp_path):
    runs = tmp_path / "runs"
    small = [
        "data.embedded.length=60",
        "data.embedded.n_train=128",
        "data.embedded.n_val=32",
        "data.embedded.n_test=32",
    ]
    trained = zoo("train", "trainer.max_epochs=1", *TINY, *small, runs=runs)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (runs / "genomics" / "train").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert {"test/acc", "test/f1", "test/mcc", "test/auroc", "test_rc/acc", "test/pwm_scanner_acc"} <= set(metrics)
    predicted = zoo("predict", "ckpt_path=last", *TINY, *small, runs=runs)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (pred_dir,) = (runs / "genomics" / "predict").iterdir()
    rows = list(csv.DictReader((pred_dir / "predictions.csv").open()))
    assert len(rows) == 32 and list(rows[0])[:3] == ["id", "label", "pred"]


def test_predict_reads_data_as_the_training_run_did(tmp_path):
    """Trained on the user's file with its own settings: `predict ckpt_path=last` needs none repeated,
    and `data.path=` alone swaps the file (issue 27: eval/predict fell back to the embedded data)."""
    runs = tmp_path / "runs"
    rng = np.random.default_rng(0)
    rows = ["sequence,label"] + [f"{''.join(rng.choice(list('ACGT'), 300))},{i % 2}" for i in range(60)]
    own = tmp_path / "own.csv"
    own.write_text("\n".join(rows) + "\n")
    trained = zoo("train", "trainer.max_epochs=1", *TINY, f"data.path={own}", "data.on_too_long=truncate", runs=runs)
    assert trained.returncode == 0, trained.stderr[-3000:]
    predicted = zoo("predict", "ckpt_path=last", *TINY, runs=runs)  # no data.path, no on_too_long
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (pred_dir,) = (runs / "genomics" / "predict").iterdir()
    assert len(list(csv.DictReader((pred_dir / "predictions.csv").open()))) == 6  # own.csv's test split, not embedded
    new = tmp_path / "new.csv"
    new.write_text("sequence,label\n" + "\n".join(r for r in rows[1:4]) + "\n")
    again = zoo("predict", "ckpt_path=last", *TINY, f"data.predict_path={new}", runs=runs)
    assert again.returncode == 0, again.stderr[-3000:]
    newest = max((runs / "genomics" / "predict").iterdir(), key=lambda p: p.stat().st_mtime)
    assert len(list(csv.DictReader((newest / "predictions.csv").open()))) == 3
