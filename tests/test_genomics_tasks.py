"""Genomics tasks through `zoo.training.run`.

Train -> export -> finetune -> predict -> eval, learning, soft prompts, embed.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from zoo import from_pretrained
from zoo.training import run

# HyenaDNA tiny-1k's architecture at the registry-test width (20k parameters)
TINY = [
    "model.kwargs.d_model=32",
    "model.kwargs.d_inner=64",
    "model.kwargs.filter_order=16",
    "trainer.enable_progress_bar=false",
]
SMALL_EMBEDDED = [
    "data.embedded.length=60",
    "data.embedded.n_train=128",
    "data.embedded.n_val=32",
    "data.embedded.n_test=64",
    "data.batch_size=32",
]


def config(name: str, run_dir: Path, *overrides: str):
    with initialize_config_module("domains.genomics.configs", version_base="1.3"):
        return compose(
            name, overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *TINY, *overrides]
        )


def body(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}


def test_train_export_finetune_predict_eval(tmp_path):
    trained = run(config("train", tmp_path / "train", "trainer.max_epochs=2", *SMALL_EMBEDDED))
    metrics = trained["metrics"]
    for stage in ("test", "test_rc"):
        assert {f"{stage}/{m}" for m in ("acc", "f1", "mcc", "auroc", "loss", "pwm_scanner_acc")} <= set(metrics)
    assert metrics["test/pwm_scanner_acc"] > 0.85

    exported = run(
        config(
            "train",
            tmp_path / "export",
            "mode=export",
            f"ckpt_path={trained['best_checkpoint']}",
            f"output={tmp_path / 'model'}",
            *SMALL_EMBEDDED,
        )
    )
    folder = Path(exported["model_dir"])
    assert json.loads((folder / "tokenizer.json").read_text())["vocab"][7:] == ["A", "C", "G", "T", "N"]
    assert json.loads((folder / "classes.json").read_text()) == ["CTCF", "GATA1", "SP1", "TP53"]

    tuned = run(
        config(
            "finetune",
            tmp_path / "finetune",
            f"weights={folder}",
            "task.freeze_backbone=true",
            "trainer.max_epochs=1",
            *SMALL_EMBEDDED,
        )
    )
    before, after = from_pretrained(folder), from_pretrained(tuned["best_checkpoint"])
    assert all(torch.equal(v, body(after)[k]) for k, v in body(before).items())  # frozen body kept the exported weights

    out = tmp_path / "predictions.csv"
    predicted = run(
        config(
            "train",
            tmp_path / "predict",
            "mode=predict",
            f"ckpt_path={tuned['best_checkpoint']}",
            f"output={out}",
            *SMALL_EMBEDDED,
        )
    )
    rows = list(csv.DictReader(out.open()))
    assert predicted["rows"] == len(rows) == 64
    assert list(rows[0]) == ["id", "label", "pred", "p_CTCF", "p_GATA1", "p_SP1", "p_TP53"]
    assert [r["id"] for r in rows] == [f"test_{i:05d}" for i in range(64)]
    probabilities = np.array([[float(r[f"p_{c}"]) for c in ("CTCF", "GATA1", "SP1", "TP53")] for r in rows])
    assert np.allclose(probabilities.sum(1), 1, atol=1e-4)

    evaluated = run(
        config("train", tmp_path / "eval", "mode=eval", f"ckpt_path={tuned['best_checkpoint']}", *SMALL_EMBEDDED)
    )
    accuracy_from_csv = np.mean([r["pred"] == r["label"] for r in rows])
    assert evaluated["metrics"]["test/acc"] == pytest.approx(accuracy_from_csv, abs=1e-6)
    assert {"test/f1", "test/mcc", "test/auroc", "test_rc/acc"} <= set(evaluated["metrics"])


def composition_table(path: Path, n: int, seed: int) -> Path:
    """Sequences of 40 bases whose GC content decides the class (and is the regression target)."""
    rng = random.Random(seed)
    lines = ["id,sequence,label,gc"]
    for i in range(n):
        gc = rng.choice([0.25, 0.75])
        seq = "".join(rng.choice("GC") if rng.random() < gc else rng.choice("AT") for _ in range(40))
        lines.append(f"s{i},{seq},{'gc_rich' if gc > 0.5 else 'at_rich'},{(seq.count('G') + seq.count('C')) / 40}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_user_csv_classification_and_regression_learn(tmp_path):
    table = composition_table(tmp_path / "gc.csv", 256, 0)
    classified = run(
        config(
            "train",
            tmp_path / "cls",
            f"data.path={table}",
            "data.label_columns=[label]",
            "trainer.max_epochs=4",
            "data.batch_size=32",
            "task.pool=mean",
        )
    )["metrics"]
    assert classified["test/acc"] > 0.85 and classified["test/auroc"] > 0.9, classified  # chance 0.5
    regressed = run(
        config(
            "train",
            tmp_path / "reg",
            f"data.path={table}",
            "data.task_type=regression",
            "data.label_columns=[gc]",
            "trainer.max_epochs=4",
            "data.batch_size=32",
            "task.pool=mean",
        )
    )["metrics"]
    assert regressed["test/r2"] > 0.5 and regressed["test/pearson"] > 0.8, regressed


def test_soft_prompt_trains_only_the_prompt(tmp_path):
    trained = run(
        config(
            "pretrain",
            tmp_path / "lm",
            "trainer.max_epochs=1",
            "data.context_length=64",
            "data.samples_per_epoch=32",
            "data.max_eval_windows=4",
            "data.embedded.records=1",
            "data.embedded.length=4000",
        )
    )
    exported = run(
        config(
            "pretrain",
            tmp_path / "x",
            "mode=export",
            f"ckpt_path={trained['best_checkpoint']}",
            "data.embedded.records=1",
            "data.embedded.length=4000",
        )
    )
    result = run(
        config(
            "finetune",
            tmp_path / "prompt",
            "experiment=softprompt",
            f"weights={exported['model_dir']}",
            "task.num_prompt_tokens=4",
            "trainer.max_epochs=1",
            *SMALL_EMBEDDED,
        )
    )
    ckpt = torch.load(result["best_checkpoint"], weights_only=True)
    pretrained = from_pretrained(exported["model_dir"]).state_dict()
    backbone = {k.removeprefix("backbone."): v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")}
    assert backbone.keys() == pretrained.keys() and all(torch.equal(backbone[k], pretrained[k]) for k in pretrained)
    trainable = [k for k in ckpt["state_dict"] if not k.startswith("backbone.")]
    assert trainable == ["prompt.embeddings"] and ckpt["state_dict"]["prompt.embeddings"].shape == (4, 32)
    assert "test/acc" in result["metrics"]


def test_embed_records_and_region(tmp_path):
    trained = run(config("train", tmp_path / "t", "trainer.max_epochs=1", *SMALL_EMBEDDED))
    run(
        config(
            "embed",
            tmp_path / "e",
            f"ckpt_path={trained['best_checkpoint']}",
            f"output={tmp_path / 'emb'}",
            *SMALL_EMBEDDED,
        )
    )
    vectors = np.load(tmp_path / "emb.npy")
    ids = (tmp_path / "emb.ids.txt").read_text().split()
    assert vectors.shape == (128 + 32 + 64 + 64, 32) and len(ids) == len(vectors) and ids[0] == "train_00000"
    model = from_pretrained(trained["best_checkpoint"]).eval()
    from domains.genomics.embedded import MotifTask
    from domains.genomics.tokenizer import DNATokenizer

    first = MotifTask(length=60, n_train=128, n_val=32, n_test=64).splits()["train"][0]
    with torch.no_grad():
        expected = model.forward_features(torch.as_tensor(DNATokenizer().encode(first.seq))[None]).mean(1)[0]
    assert np.allclose(vectors[0], expected.numpy(), atol=1e-5)

    # ckpt_path=last: the newest last.ckpt of the domain's training runs, as for eval/predict
    root = f"paths.log_dir={tmp_path / 'runs'}"
    trained_last = run(
        config("train", tmp_path / "runs" / "genomics" / "train" / "a", "trainer.max_epochs=1", root, *SMALL_EMBEDDED)
    )
    run(
        config(
            "embed",
            tmp_path / "runs" / "genomics" / "embed" / "b",
            "ckpt_path=last",
            root,
            f"output={tmp_path / 'last'}",
            *SMALL_EMBEDDED,
        )
    )
    last_model = from_pretrained(trained_last["last_checkpoint"])
    with torch.no_grad():
        expected = last_model.forward_features(torch.as_tensor(DNATokenizer().encode(first.seq))[None]).mean(1)[0]
    assert np.allclose(np.load(tmp_path / "last.npy")[0], expected.numpy(), atol=1e-5)

    genome = tmp_path / "g.fa"
    genome.write_text(">chr1\n" + "ACGTTGCA" * 100 + "\n")
    region = run(
        config(
            "embed",
            tmp_path / "r",
            f"ckpt_path={trained['best_checkpoint']}",
            f"data.path={genome}",
            "embed.region=chr1:100-300",
            "embed.format=parquet",
            f"output={tmp_path / 'region'}",
        )
    )
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "region.parquet")
    assert table.num_rows == 200 and table.column("id")[0].as_py() == "chr1:100" and region["records"] == 1
    assert len(table.column("embedding")[0].as_py()) == 32


def test_sequences_longer_than_the_model_are_refused_before_training(tmp_path):
    from zoo.errors import ZooError

    with pytest.raises(
        ZooError, match=r"samples of 61 tokens but hyenadna_tiny_1k takes at most 50 \(model.kwargs.max_seq_len\)"
    ):
        run(config("train", tmp_path / "t", "model.kwargs.max_seq_len=50", *SMALL_EMBEDDED))


def test_cls_pooling_needs_a_cls_token(tmp_path):
    from cli.main import user_error_in

    with pytest.raises(Exception) as raised:  # Hydra's instantiate wraps it; the CLI finds it as here
        run(config("train", tmp_path / "t", "task.pool=cls", *SMALL_EMBEDDED))
    assert "task.pool=cls needs a [CLS] token first: add data.prepend_cls=true" in str(user_error_in(raised.value))
    metrics = run(
        config(
            "train", tmp_path / "c", "task.pool=cls", "data.prepend_cls=true", "trainer.max_epochs=1", *SMALL_EMBEDDED
        )
    )["metrics"]
    assert 0 <= metrics["test/acc"] <= 1
