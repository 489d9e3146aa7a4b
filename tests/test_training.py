"""The training core on a tiny learnable task: fit, resume, predict, freeze, ckpt -> hub, DDP."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from zoo import ZooError, from_pretrained
from zoo.training import run
from zoo.training.checkpointing import atomic_torch_save

CONFIGS = str(Path(__file__).parent / "fixtures" / "configs")


def config(run_dir: Path, *overrides: str):
    """Compose the toy config with its run folder at `run_dir` and the runs root two levels up."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(
            "train", overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent.parent}", *overrides]
        )


def test_fit_learns_and_writes_a_run_folder(tmp_path):
    result = run(config(tmp_path / "run", "trainer.max_epochs=6"))
    metrics = result["metrics"]
    assert metrics["test/acc"] > 0.75, metrics  # chance is ~0.5
    assert metrics["train/loss"] < 0.6
    folder = tmp_path / "run"
    assert (folder / "checkpoints" / "last.ckpt").is_file() and (folder / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((folder / "metrics.json").read_text())["metrics"] == metrics
    assert "seed: 42" in (folder / "config.yaml").read_text()


def test_same_seed_same_result(tmp_path):
    a = run(config(tmp_path / "a", "trainer.max_epochs=1"))["metrics"]
    b = run(config(tmp_path / "b", "trainer.max_epochs=1"))["metrics"]
    assert a["test/loss"] == b["test/loss"]


def test_resume_from_last_continues_training_in_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_RUN_ID", "first")
    folder = tmp_path / "toy" / "train" / "first"
    first = run(config(folder, "trainer.max_epochs=2"))
    last = Path(first["last_checkpoint"])
    assert torch.load(last, weights_only=True)["epoch"] == 1
    resumed = run(config(folder, "trainer.max_epochs=4", "ckpt_path=last"))
    assert Path(resumed["last_checkpoint"]) == last  # the same run folder, not a new one
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 3
    assert ckpt["global_step"] == 4 * 4  # 128 samples / 32 per batch, 4 epochs: nothing lost, nothing repeated
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no best-v1
    with open(folder / "logs" / "metrics.csv") as handle:  # one metrics log over both parts
        epochs = {row["epoch"] for row in csv.DictReader(handle) if row.get("epoch")}
    assert {"0", "1", "2", "3"} <= epochs  # the first part's epochs kept beside the resumed ones


def test_resume_rebuilds_the_recorded_architecture(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ZOO_RUN_ID", "wide")
    folder = tmp_path / "toy" / "train" / "wide"
    run(config(folder, "trainer.max_epochs=1", "+model.kwargs.dim=48"))
    # the resume forgets the first run's override: the checkpoint's architecture continues all the same
    resumed = run(config(folder, "trainer.max_epochs=2", "ckpt_path=last"))
    assert torch.load(resumed["last_checkpoint"], weights_only=True)["hyper_parameters"]["model_kwargs"]["dim"] == 48


def test_a_whole_epoch_of_non_finite_losses_stops_in_one_line(tmp_path, monkeypatch):
    from tests.fixtures.toy import CountingTask

    original = CountingTask.shared_step
    # a target column holding inf gives this: every loss of the epoch is NaN
    monkeypatch.setattr(CountingTask, "shared_step", lambda self, b, s: original(self, b, s) * float("nan"))
    with pytest.raises(ZooError, match="not finite .* on any of the 4 batches of epoch 0"):
        run(config(tmp_path / "toy" / "train" / "nan", "trainer.max_epochs=4"))
    assert not list((tmp_path / "toy" / "train" / "nan").glob("checkpoints/*.ckpt"))  # no NaN model saved


def test_last_means_this_run_never_another(tmp_path, monkeypatch):
    run(config(tmp_path / "toy" / "train" / "other", "trainer.max_epochs=1"))
    monkeypatch.delenv("ZOO_RUN_ID", raising=False)
    with pytest.raises(ZooError, match="ZOO_RUN_ID"):
        run(config(tmp_path / "toy" / "train" / "new", "ckpt_path=last"))
    monkeypatch.setenv("ZOO_RUN_ID", "new")  # killed before its first checkpoint: nothing of its own to resume
    with pytest.raises(ZooError, match="has no checkpoint to resume"):
        run(config(tmp_path / "toy" / "train" / "new", "ckpt_path=last"))


def test_a_finished_run_id_is_not_reused(tmp_path):
    run(config(tmp_path / "toy" / "train" / "once", "trainer.max_epochs=1"))
    with pytest.raises(ZooError, match="already holds a finished run"):
        run(config(tmp_path / "toy" / "train" / "once", "trainer.max_epochs=1"))


def test_a_second_writer_is_refused_and_stale_partials_go(tmp_path):
    from filelock import FileLock

    folder = tmp_path / "toy" / "train" / "busy"
    folder.mkdir(parents=True)
    with FileLock(str(folder / ".lock")), pytest.raises(ZooError, match="in use by another process"):
        run(config(folder, "trainer.max_epochs=1"))
    stale = folder / "checkpoints" / ".last.ckpt.123-abc.partial"
    stale.parent.mkdir()
    stale.write_bytes(b"")
    run(config(folder, "trainer.max_epochs=1"))
    assert not stale.exists()


def test_eval_last_takes_the_newest_training_run(tmp_path):
    root = f"paths.log_dir={tmp_path}"  # runs/<domain>/<mode>/<run id>
    trained = run(config(tmp_path / "toy" / "train" / "t", "trainer.max_epochs=1", root))
    evaluated = run(config(tmp_path / "toy" / "eval" / "e", "mode=eval", "ckpt_path=last", root))
    assert evaluated["metrics"]["test/acc"] == pytest.approx(trained["metrics"]["test/acc"])


def test_threads_apply_to_the_command_and_are_restored(tmp_path):
    before = torch.get_num_threads()
    seen = {}

    import zoo.training.runner as runner

    original = runner._run_locked

    def spy(cfg, mode, out):
        seen["threads"] = torch.get_num_threads()
        return original(cfg, mode, out)

    runner._run_locked = spy
    try:
        run(config(tmp_path / "toy" / "train" / "th", "trainer.max_epochs=1", "threads=1"))
    finally:
        runner._run_locked = original
    assert seen["threads"] == 1 and torch.get_num_threads() == before
    with pytest.raises(ZooError, match="threads=0"):
        run(config(tmp_path / "toy" / "train" / "th0", "threads=0"))


def test_last_checkpoint_is_the_last_epoch_even_when_it_is_not_the_best(tmp_path):
    # monitor_mode=max on a falling loss: the first epoch stays "best", so a last.ckpt
    # written only beside a new best (Lightning 2.6's save_last) would hold epoch 0
    result = run(config(tmp_path / "run", "trainer.max_epochs=3", "monitor_mode=max", "callbacks.early_stopping=null"))
    best = torch.load(result["best_checkpoint"], weights_only=True)
    last = torch.load(result["last_checkpoint"], weights_only=True)
    assert best["epoch"] == 0
    assert (last["epoch"], last["global_step"]) == (2, 3 * 4)


def test_predict_streams_a_complete_csv_and_eval_reports(tmp_path):
    trained = run(config(tmp_path / "t", "trainer.max_epochs=2"))
    out = tmp_path / "preds.csv"
    result = run(config(tmp_path / "p", "mode=predict", f"ckpt_path={trained['best_checkpoint']}", f"output={out}"))
    rows = list(csv.DictReader(out.open()))
    assert result["rows"] == len(rows) == 32 and list(rows[0]) == ["id", "label", "p1"]
    assert not out.with_name("preds.csv.partial").exists()
    evaluated = run(config(tmp_path / "e", "mode=eval", f"ckpt_path={trained['best_checkpoint']}"))
    assert evaluated["metrics"]["test/acc"] == pytest.approx(trained["metrics"]["test/acc"])


def test_predict_needs_weights(tmp_path):
    with pytest.raises(ZooError, match="needs trained weights"):
        run(config(tmp_path / "p", "mode=predict"))


def test_checkpoint_loads_as_a_hub_model_and_exports(tmp_path):
    trained = run(config(tmp_path / "t", "trainer.max_epochs=1"))
    model = from_pretrained(trained["best_checkpoint"]).eval()
    exported = run(
        config(tmp_path / "x", "mode=export", f"ckpt_path={trained['best_checkpoint']}", f"output={tmp_path / 'model'}")
    )
    again = from_pretrained(exported["model_dir"]).eval()
    x = torch.randint(0, 6, (3, 24))
    assert torch.equal(model(x), again(x))


def test_finetune_from_weights_with_frozen_backbone(tmp_path):
    trained = run(config(tmp_path / "t", "trainer.max_epochs=1"))
    exported = run(config(tmp_path / "x", "mode=export", f"ckpt_path={trained['best_checkpoint']}"))
    before = from_pretrained(exported["model_dir"])
    tuned = run(
        config(
            tmp_path / "f",
            "mode=finetune",
            f"weights={exported['model_dir']}",
            "task.freeze_backbone=true",
            "trainer.max_epochs=1",
        )
    )
    after = from_pretrained(tuned["best_checkpoint"])
    body = [k for k in before.state_dict() if not k.startswith("head.")]
    assert all(torch.equal(before.state_dict()[k], after.state_dict()[k]) for k in body)
    assert not torch.equal(before.head.weight, after.head.weight)


def test_weights_that_record_their_architecture_decide_the_backbone(tmp_path):
    from tests.fixtures.toy import CountingTask
    from zoo import create_model
    from zoo.errors import ZooError
    from zoo.hub import save_pretrained

    torch.manual_seed(0)
    saved = save_pretrained(create_model("test_transformer", vocab_size=6, dim=24, num_classes=2), tmp_path / "wide")

    class FollowsTheWeights(CountingTask):
        weights_decide_architecture = True

    asked = {"vocab_size": 6, "num_classes": 5, "global_pool": "max"}  # the default width differs from the saved 24
    task = FollowsTheWeights(model="test_transformer", model_kwargs=asked, weights=str(saved))
    assert (
        task.hparams.model_kwargs["dim"] == 24 and task.backbone.num_classes == 5 and task.backbone.global_pool == "max"
    )
    body = {k: v for k, v in from_pretrained(saved).state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(task.backbone.state_dict()[k], v) for k, v in body.items())
    restored = FollowsTheWeights(**{k: task.hparams[k] for k in ("model", "model_kwargs")})  # as a checkpoint reloads
    assert restored.hparams.model_kwargs == task.hparams.model_kwargs
    with pytest.raises(ZooError, match="do not fit"):  # the plain task keeps the configured architecture, strictly
        CountingTask(model="test_transformer", model_kwargs=asked, weights=str(saved))


def test_parameter_groups_scale_backbone_lr(tmp_path):
    from tests.fixtures.toy import CountingTask

    task = CountingTask(
        model="test_transformer",
        model_kwargs={"vocab_size": 6, "num_classes": 2},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.1},
        backbone_lr_scale=0.1,
    )
    optimizer = task.configure_optimizers()
    head = {id(p) for p in task.backbone.head.parameters()}
    for group in optimizer.param_groups:
        is_head = any(id(p) in head for p in group["params"])
        assert group["lr"] == pytest.approx(1e-3 if is_head else 1e-4)
        assert group["weight_decay"] in (0.0, 0.1)
        if group["weight_decay"]:
            assert all(p.ndim >= 2 for p in group["params"])


def test_atomic_save_never_leaves_a_half_file(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"a": torch.ones(3)}, target)

    class Exploding:
        def __reduce__(self):
            raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"a": torch.zeros(3), "b": Exploding()}, target)
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_ddp_two_cpu_processes_match_one(tmp_path):
    """2-process gloo DDP with half the batch per rank = 1 process with the full batch.

    The training order depends on (seed, epoch) only and the distributed sampler deals
    perm[0::2] and perm[1::2] to the ranks, so each global batch holds the same samples
    as the single-process batch and DDP's gradient average equals the single-process mean.
    SGD, because Adam's first steps are sign(g) and would amplify float round-off in ~0 gradients."""
    common = [
        "task.optimizer._target_=torch.optim.SGD",
        "task.optimizer.lr=0.5",
        "trainer.max_epochs=2",
        "callbacks=none",
        "trainer.enable_checkpointing=false",
        "test_after_fit=false",
    ]
    single = run(config(tmp_path / "one", *common, "data.batch_size=32"))
    double = run(config(tmp_path / "two", *common, "trainer=ddp_cpu", "data.batch_size=16"))
    assert double["metrics"]["val/loss"] == pytest.approx(single["metrics"]["val/loss"], abs=1e-4)
    runs = [p for p in tmp_path.iterdir() if p.name == "two"]
    assert len(runs) == 1 and (tmp_path / "two" / "metrics.json").is_file()


def test_the_end_of_training_names_the_tasks_own_reason(caplog):
    from types import SimpleNamespace

    from zoo.training.runner import log_stop_reason

    task = SimpleNamespace(stop_reason="fine-tuning stage 2 ends: no better val/ndcg@10 for 2 epochs")
    trainer = SimpleNamespace(callbacks=[], lightning_module=task, current_epoch=7, global_step=70)
    with caplog.at_level(logging.INFO, logger="zoo"):
        log_stop_reason(trainer)
        task.stop_reason = None
        log_stop_reason(trainer)
    assert "training stopped after 7 epochs (70 steps): fine-tuning stage 2 ends" in caplog.text
    assert "training ended after 7 epochs (70 steps), the configured budget" in caplog.text
