"""The code verbs end to end on tiny models: CLI train (loss falls, every metric logged, re-ranking table learnt)
-> predict JSON from a file and from stdin -> export; the checkpoint, the exported folder and
`Completer.from_pretrained` give the same completions as the CLI; the value-only switch drops the type stream;
the n-gram option's test MRR equals a direct Kneser-Ney computation on the same windows; bad inputs are one line,
exit 2."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from domains.code import SNIPPET
from domains.code.complete import Completer
from domains.code.metrics import mrr_at
from tests.zoo_cli import one_line_error, zoo
from zoo import ZooError, load_pipeline
from zoo.training import run

QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.lr_monitor=null",
    "callbacks.progress_bar=null",
    "data.progress=false",
    "threads=1",
]
TINY_MODEL = [
    "model.name=test_codefill",
    "model.kwargs.dim=32",
    "model.kwargs.depth=1",
    "model.kwargs.num_heads=2",
    "model.kwargs.mlp_ratio=2.0",
]
TINY_DATA = [
    "data.max_files=20",
    "data.vocab_size=300",
    "data.context=64",
    "data.statement_examples=6",
    "task.statement_max_pieces=8",
    "task.beam_size=2",
]
TINY = TINY_MODEL + TINY_DATA
CURSOR = ["line=16", "col=23"]  # after `os.path.` in the embedded snippet
STATEMENT_METRICS = {f"test/{m}@{n}" for m in ("rouge_l", "exact") for n in range(2, 9)}
TOKEN_METRICS = {f"test/{m}" for m in ("acc", "mrr@10", "acc_cardinal", "mrr@10_cardinal")}


def config(name: str, run_dir: Path, *overrides: str):
    with initialize_config_module(config_module="domains.code.configs", version_base="1.3"):
        return compose(
            name, overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *QUIET, *overrides]
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny multitask CodeFill trained by the CLI on 16 stdlib files (3 epochs); its runs folder."""
    runs = tmp_path_factory.mktemp("code") / "runs"
    done = zoo("code", "train", *QUIET, *TINY, "trainer.max_epochs=3", "trainer.log_every_n_steps=1", runs=runs)
    assert done.returncode == 0, done.stderr[-3000:]
    return runs


def test_cli_train_loss_falls_logs_every_metric_and_learns_the_type_table(trained):
    (record,) = [json.loads(p.read_text()) for p in trained.glob("code/train/*/metrics.json")]
    assert set(record["metrics"]) >= TOKEN_METRICS | STATEMENT_METRICS | {"val/mrr@10", "test/type"}
    with open(next(trained.glob("code/train/*/logs/metrics.csv")), newline="") as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, (first, last)  # value + type + statement cross-entropies fall together
    task = load_pipeline(record["best_checkpoint"])
    table = task.backbone.type_given_value
    assert task.backbone.multitask and not torch.allclose(table, torch.full_like(table, table[0, 0].item()))
    newline = task.tokenizer.id("<NEWLINE>")  # the <NEWLINE> piece is always of type NEWLINE
    assert task.backbone.type_of_value(newline, torch.zeros(task.backbone.num_types)) == 1


def test_predict_json_from_file_and_stdin_equals_checkpoint_export_and_completer(trained, tmp_path):
    # no ckpt_path: the newest training run; stdout holds nothing but the JSON
    done = zoo("code", "predict", f"file={SNIPPET}", *CURSOR, "topk=5", "threads=1", runs=trained)
    assert done.returncode == 0, done.stderr[-3000:]
    items = json.loads(done.stdout)
    assert len(items) == 5 and all(set(i) == {"label", "kind", "score", "detail", "lsp_kind"} for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)

    source = SNIPPET.read_text()
    piped = zoo("code", "predict", "mode=statement", "topk=3", *CURSOR, "threads=1", runs=trained, stdin=source)
    assert piped.returncode == 0, piped.stderr[-3000:]
    statements = json.loads(piped.stdout)
    assert 1 <= len(statements) <= 3 and all(s["label"] for s in statements)

    last = next(trained.glob("code/train/*/checkpoints/last.ckpt"))
    from_ckpt = load_pipeline(last)
    assert from_ckpt.predict(source, 16, 23, "token", 5) == items
    assert from_ckpt.predict(source, 16, 23, "statement", 3) == statements

    folder = tmp_path / "exported"
    exported = zoo("code", "export", f"output={folder}", "threads=1", runs=trained)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert load_pipeline(folder).predict(source, 16, 23, "token", 5) == items
    assert Completer.from_pretrained(folder).complete(source, 16, 23, "token", 5) == items


def test_value_only_switch_trains_without_the_type_stream(trained, tmp_path):
    cfg = config("train", tmp_path / "runs" / "value_only", *TINY, "multitask=false", "trainer.max_epochs=1",
                 "logger=none", "data.statement_examples=0")  # fmt: skip
    result = run(cfg)
    assert set(result["metrics"]) >= TOKEN_METRICS and "test/type" not in result["metrics"]
    value_only = load_pipeline(result["best_checkpoint"])
    both = load_pipeline(next(trained.glob("code/train/*/checkpoints/best.ckpt")))
    assert value_only.hparams.model_kwargs["multitask"] is False and value_only.backbone.type_embed is None
    assert value_only.backbone.head.type_head is None
    extra = sum(p.numel() for p in (*both.backbone.type_embed.parameters(), *both.backbone.head.type_head.parameters()))
    sizes = [sum(p.numel() for p in task.backbone.parameters()) for task in (both, value_only)]
    assert sizes[0] - sizes[1] == extra  # the same model, less the type embedding and head
    with pytest.raises(ZooError, match="mode='line'"):
        value_only.predict(SNIPPET.read_text(), 16, 23, "line")


def test_ngram_option_metrics_equal_a_direct_kneser_ney_computation(tmp_path):
    cfg = config("train", tmp_path / "runs" / "ngram", *TINY_DATA, "model=ngram", "task.order=3", "logger=none")
    result = run(cfg)
    assert set(result["metrics"]) >= TOKEN_METRICS | STATEMENT_METRICS
    task = load_pipeline(result["best_checkpoint"])
    lm = task.lm
    assert lm is not None and lm.order == 3

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("test")
    datamodule.accept_contract(task.data_contract())
    ranks = []
    for window in datamodule.test_set:
        values = window["values"]
        ranks += [lm.rank(values[i], values[max(i - 2, 0) : i]) for i in range(1, len(values))]
    assert math.isclose(result["metrics"]["test/mrr@10"], mrr_at(ranks, 10), rel_tol=1e-5)

    items = task.predict(SNIPPET.read_text(), 16, 23, "token", 3)
    assert 1 <= len(items) <= 3 and all(i["label"] for i in items)
    with pytest.raises(ZooError, match="no backbone to export"):
        task.export_extras(str(tmp_path))


def test_bad_cursor_and_missing_file_are_one_line_exit_2(tmp_path):
    # the input is checked before any model is looked for, so no training run is needed
    runs = tmp_path / "runs"
    assert "line=99 is outside the file (1..17)" in one_line_error(
        zoo("code", "predict", f"file={SNIPPET}", "line=99", "col=0", runs=runs)
    )
    missing = tmp_path / "nope.py"
    assert f"file={missing}: no such file" in one_line_error(zoo("code", "predict", f"file={missing}", runs=runs))
    assert not list(runs.rglob("completions.json"))
