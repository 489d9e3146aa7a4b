"""Every backbone config runs every genomics task; language modelling learns (causal and masked); per-base output."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from domains.genomics.pretraining import LanguageModelTask
from zoo.training import run

MODELS = ["hyenadna", "transformer", "transformer_bidir", "dna_xlstm", "dna_xlstm_rc", "mamba", "s5"]
QUICK = [
    "trainer.enable_progress_bar=false",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
]
SMALL_EMBEDDED = [
    "data.embedded.length=60",
    "data.embedded.n_train=64",
    "data.embedded.n_val=16",
    "data.embedded.n_test=16",
    "data.batch_size=16",
]
SMALL_GENOME = [
    "data.context_length=64",
    "data.samples_per_epoch=32",
    "data.max_eval_windows=8",
    "data.embedded.records=1",
    "data.embedded.length=4000",
]


def config(name: str, run_dir: Path, *overrides: str):
    with initialize_config_module("domains.genomics.configs", version_base="1.3"):
        return compose(name, overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *overrides])


@pytest.mark.parametrize("model", MODELS)
def test_every_backbone_classifies_and_pretrains(tmp_path, model):
    classified = run(config("train", tmp_path / "cls", f"model={model}", *QUICK, *SMALL_EMBEDDED))["metrics"]
    assert (
        math.isfinite(classified["train/loss"]) and 0 <= classified["test/acc"] <= 1 and "test_rc/auroc" in classified
    )
    pretrained = run(config("pretrain", tmp_path / "lm", f"model={model}", *QUICK, *SMALL_GENOME))["metrics"]
    assert math.isfinite(pretrained["val/loss"]) and pretrained["test/perplexity"] > 1


@pytest.mark.parametrize(
    "name,kwargs,objective",
    [
        ("hyenadna_tiny_1k", {"d_model": 32, "d_inner": 64, "filter_order": 16}, "causal"),
        ("transformer_tiny", {"dim": 32, "depth": 1, "causal": False}, "masked"),
        (
            "dna_xlstm_500k",
            {"dim": 32, "depth": 1, "rc_equivariant": True, "complement_map": [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11]},
            "masked",
        ),
    ],
)
def test_objective_follows_the_backbone(name, kwargs, objective):
    task = LanguageModelTask(model=name, model_kwargs={"vocab_size": 12, **kwargs})
    assert task.objective == objective
    ids = torch.randint(7, 11, (2, 24))
    loss, logits, targets = task.losses(ids, torch.ones_like(ids, dtype=torch.bool))
    assert logits.shape[-1] >= 12 and loss.shape == targets.shape


def periodic_genome(path: Path, length: int = 20000, seed: int = 0) -> Path:
    """A repeat of period 8 with 5% point mutations: a learnable genome (entropy far below 2 bits a base)."""
    rng = random.Random(seed)
    seq = "".join(rng.choice("ACGT") if rng.random() < 0.05 else "ACGTTGCA"[i % 8] for i in range(length))
    path.write_text(">chrP\n" + "\n".join(seq[i : i + 60] for i in range(0, length, 60)) + "\n")
    return path


@pytest.mark.parametrize("model,bound", [("hyenadna", 0.8), ("transformer_bidir", 1.0)])
def test_language_model_learns_a_genome(tmp_path, model, bound):
    genome = periodic_genome(tmp_path / "p.fa")
    metrics = run(
        config(
            "pretrain",
            tmp_path / "lm",
            f"model={model}",
            f"data.path={genome}",
            "data.context_length=128",
            "data.samples_per_epoch=256",
            "data.batch_size=16",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
        )
    )["metrics"]
    assert metrics["test/loss"] < bound < math.log(4), metrics  # uniform guessing: ln 4 = 1.386 nats


def test_token_task_predicts_every_base_and_plots(tmp_path):
    trained = run(
        config(
            "train",
            tmp_path / "t",
            "experiment=tokens",
            "model.kwargs.d_model=32",
            "model.kwargs.d_inner=64",
            *QUICK,
            *SMALL_GENOME,
        )
    )
    assert {"test/acc", "test/f1", "test/mcc", "test/auroc"} <= set(trained["metrics"])
    out = tmp_path / "bases.csv"
    run(
        config(
            "train",
            tmp_path / "p",
            "experiment=tokens",
            "mode=predict",
            f"ckpt_path={trained['best_checkpoint']}",
            f"output={out}",
            "trainer.enable_progress_bar=false",
            *SMALL_GENOME,
        )
    )
    rows = list(csv.DictReader(out.open()))
    assert (
        list(rows[0])[:4] == ["id", "chrom", "position", "label"] and len(rows) == 7 * 64
    )  # 400-base test span, 7 tiles
    first = [r for r in rows if r["id"] == rows[0]["id"]]
    assert [int(r["position"]) for r in first] == list(range(int(first[0]["position"]), int(first[0]["position"]) + 64))
    assert out.with_suffix(".png").stat().st_size > 10_000
