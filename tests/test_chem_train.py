"""The chem verbs end to end on tiny models.

Train improves validity; predict, sample, in-context, export, finetune, bad input.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from rdkit import Chem

from domains.chem.data import SmilesDataModule
from domains.chem.embedded import load_embedded
from domains.chem.metrics import generation_metrics, roc_auc
from domains.chem.sampling import sample
from domains.chem.tasks import SmilesLMTask, check_training_split
from domains.chem.tokenizer import SmilesTokenizer, split_smiles
from tests.zoo_cli import one_line_error, zoo
from zoo import create_model, from_pretrained, load_pipeline
from zoo.factory import language_model_kwargs
from zoo.training import run

QUIET = [
    "trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "logger=none",
    "callbacks.lr_monitor=null",
    "callbacks.progress_bar=null",
]
TINY_LSTM = ["model=lstm", "model.name=test_lstm"]
# Short NCI molecules (at most 26 tokens) train quickly to non-trivial validity.
SHORT_NCI = ["data.limit=1000", "data.max_tokens=26", "data.batch_size=32"]


def config(name: str, run_dir: Path, *overrides: str):
    with initialize_config_module(config_module="domains.chem.configs", version_base="1.3"):
        return compose(
            name, overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *QUIET, *overrides]
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("chem") / "lm"
    result = run(
        config(
            "train",
            run_dir,
            *TINY_LSTM,
            *SHORT_NCI,
            "trainer.max_epochs=8",
            "task.eval_samples=64",
            "task.optimizer.lr=3e-3",
        )
    )
    return result


def test_small_train_improves_validity_over_the_untrained_model(trained):
    task = SmilesLMTask.load_from_checkpoint(trained["best_checkpoint"], weights_only=True)
    torch.manual_seed(0)
    untrained = create_model("test_lstm", **language_model_kwargs("test_lstm", {"vocab_size": len(task.tokenizer)}))
    draws = sample(untrained, task.tokenizer, 64, seed=0, max_tokens=26)
    before = generation_metrics([s.text if s.finished else "" for s in draws])["validity"]
    metrics = trained["metrics"]
    assert metrics["test/validity"] > before + 0.15, (before, metrics)
    assert metrics["test/loss"] < 1.3 and metrics["test/uniqueness"] > 0.5 and metrics["test/novelty"] > 0.2


def test_predict_writes_samples_metrics_and_a_structure_grid(trained, tmp_path):
    out = tmp_path / "samples.csv"
    result = run(
        config(
            "train",
            tmp_path / "p",
            *TINY_LSTM,
            *SHORT_NCI,
            "mode=predict",
            f"ckpt_path={trained['best_checkpoint']}",
            "data.num_samples=24",
            "data.sample_batch_size=10",
            f"output={out}",
        )
    )
    rows = list(csv.DictReader(out.open()))
    assert result["rows"] == len(rows) == 24 and list(rows[0]) == [
        "id",
        "smiles",
        "valid",
        "canonical_smiles",
        "logp",
        "num_tokens",
    ]
    assert len({r["id"] for r in rows}) == 24
    for r in rows:  # valid: finished and RDKit parses it; the canonical column is RDKit's canonical SMILES
        mol = Chem.MolFromSmiles(r["smiles"]) if r["smiles"] else None
        finished = int(r["num_tokens"]) == len(split_smiles(r["smiles"])) + 1  # its tokens and a terminator
        assert r["valid"] == str(int(mol is not None and finished))
        assert r["canonical_smiles"] == (Chem.MolToSmiles(mol) if r["valid"] == "1" else "")
    assert any(r["valid"] == "1" for r in rows)
    metrics = json.loads((tmp_path / "samples.metrics.json").read_text())
    assert metrics["validity"] == pytest.approx(sum(r["valid"] == "1" for r in rows) / 24)
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_novelty_reference_is_the_training_split_the_model_saw(trained, caplog):
    saved = SmilesLMTask.load_from_checkpoint(trained["best_checkpoint"], weights_only=True).hparams.training_split
    same = SmilesDataModule(limit=1000, max_tokens=26, seed=42)  # SHORT_NCI and the configs' default seed
    assert saved == same.training_split() and saved["molecules"] == len(same.train_smiles)
    with caplog.at_level(logging.WARNING, logger="domains.chem.tasks"):
        check_training_split(saved, same)
        assert not caplog.records
        check_training_split(saved, SmilesDataModule(limit=1000, max_tokens=26, seed=1))  # another random split
    assert "novelty is measured against" in caplog.text and "data.* settings" in caplog.text


def test_export_then_sample_with_a_prompt_from_the_folder(trained, tmp_path):
    exported = run(
        config(
            "train",
            tmp_path / "x",
            *TINY_LSTM,
            "mode=export",
            f"ckpt_path={trained['best_checkpoint']}",
            f"output={tmp_path / 'model'}",
        )
    )
    folder = Path(exported["model_dir"])
    assert (folder / "config.json").is_file()
    task = SmilesLMTask.load_from_checkpoint(trained["best_checkpoint"], weights_only=True)
    assert SmilesTokenizer.load(folder).tokens == task.tokenizer.tokens
    result = run(
        config(
            "sample",
            tmp_path / "s",
            *TINY_LSTM,
            *SHORT_NCI,
            f"weights={folder}",
            "data.num_samples=12",
            "data.prompt=['CCO','CC(=O)O']",
            "task.sampling.temperature=0.7",
        )
    )
    assert result["rows"] == 12 and len(Path(result["predictions"]).read_text().splitlines()) == 13  # header + rows
    metrics = result["metrics"]
    assert "prompt_similarity" in metrics or metrics["validity"] == 0


def test_finetune_property_from_exported_weights_and_predict_a_file(trained, tmp_path):
    folder = Path(
        run(
            config(
                "train",
                tmp_path / "x",
                *TINY_LSTM,
                "mode=export",
                f"ckpt_path={trained['best_checkpoint']}",
                f"output={tmp_path / 'model'}",
            )
        )["model_dir"]
    )
    tuned = run(
        config("finetune", tmp_path / "f", *TINY_LSTM, f"weights={folder}", "data.limit=150", "trainer.max_epochs=2")
    )
    assert {"test/rmse", "test/mae", "test/r2", "val/rmse"} <= set(tuned["metrics"])
    ckpt = torch.load(tuned["best_checkpoint"], weights_only=True)
    assert ckpt["hyper_parameters"]["vocab"] == SmilesTokenizer.load(folder).tokens  # the pretrained vocabulary, reused
    new = tmp_path / "new.csv"
    new.write_text("smiles,name\nCCO,ethanol\nc1ccccc1O,phenol\n")
    out = tmp_path / "pred.csv"
    run(
        config(
            "finetune",
            tmp_path / "q",
            *TINY_LSTM,
            "mode=predict",
            f"ckpt_path={tuned['best_checkpoint']}",
            f"data.predict_path={new}",
            "data.id_column=name",
            "data.limit=150",
            f"output={out}",
        )
    )
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["ethanol", "phenol"] and all(
        float(r["pred_pIC50"]) == float(r["pred_pIC50"]) for r in rows
    )
    assert rows[0]["pIC50"] == ""  # no labels in the file: none invented

    # The exported property model in Python gives what the CLI wrote: target scaling, tokenizer and head
    # travel with it (a bare backbone used to return standardised values).
    exported = run(
        config("finetune", tmp_path / "e", *TINY_LSTM, "mode=export", f"ckpt_path={tuned['best_checkpoint']}")
    )
    pipeline = load_pipeline(exported["model_dir"])
    again = pipeline.predict(["CCO", "c1ccccc1O"], ids=["ethanol", "phenol"])
    assert [r["pred_pIC50"] for r in again] == [float(r["pred_pIC50"]) for r in rows]
    assert not from_pretrained(exported["model_dir"]).training


def test_classification_from_sdf_fields_reports_roc_auc(tmp_path):
    # Actives (pIC50 >= 7) of the embedded ChEMBL set as a gzipped SDF whose labels are SDF fields.
    path = tmp_path / "actives.sdf.gz"
    with gzip.open(path, "wt") as handle:
        for m in load_embedded("chembl_pic50", limit=160).molecules:
            mol = Chem.MolFromSmiles(m.smiles)
            mol.SetProp("_Name", m.id)
            mol.SetProp("active", str(int(m.targets["pIC50"] >= 7)))
            handle.write(Chem.SDWriter.GetText(mol))
    common = [
        "experiment=property",
        *TINY_LSTM,
        f"data.path={path}",
        "data.target_columns=[active]",
        "data.task_type=classification",
        "data.split=random",
    ]
    trained = run(config("train", tmp_path / "c", *common, "trainer.max_epochs=2"))
    assert {"test/roc_auc", "test/accuracy", "val/roc_auc"} <= set(trained["metrics"])
    out = tmp_path / "pred.csv"
    run(
        config(
            "train", tmp_path / "p", *common, "mode=predict", f"ckpt_path={trained['best_checkpoint']}", f"output={out}"
        )
    )
    rows = list(csv.DictReader(out.open()))
    assert rows and all(0 <= float(r["pred_active"]) <= 1 and r["active"] in ("0.0", "1.0") for r in rows)
    metrics = json.loads((tmp_path / "pred.metrics.json").read_text())
    assert metrics["roc_auc"] == pytest.approx(
        roc_auc(np.array([float(r["active"]) for r in rows]), np.array([float(r["pred_active"]) for r in rows])),
        abs=1e-4,
    )


def test_cli_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.smi"
    bad.write_text("CCO\nC1CC\n")
    line = one_line_error(zoo("chem", "train", f"data.path={bad}", *TINY_LSTM, *QUIET, runs=tmp_path / "runs"))
    assert f"{bad}:2: unparsable SMILES 'C1CC'" in line and "on_invalid=skip" in line


def test_skip_writes_rejects_and_trains_on_the_rest(tmp_path):
    data = tmp_path / "mixed.smi"
    data.write_text("".join(f"{'C' * n}O\n" for n in range(1, 30)) + "C1CC\n\nXX\n")
    rejects = tmp_path / "rejects.csv"
    result = run(
        config(
            "train",
            tmp_path / "r",
            *TINY_LSTM,
            f"data.path={data}",
            "data.on_invalid=skip",
            f"data.rejects_path={rejects}",
            "trainer.max_epochs=1",
            "task.eval_samples=0",
        )
    )
    assert result["metrics"]["test/loss"] > 0
    assert len(list(csv.DictReader(rejects.open()))) == 3
