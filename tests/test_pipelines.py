"""`zoo.load_pipeline(source).predict(...)` gives the rows `zoo <domain> predict` writes, per domain (issue 27).

Each domain trains one tiny model (through `zoo.training.run`, as the CLI does), predicts with the real
`zoo <domain> predict` command (a subprocess, so the data settings recorded with the model are what it
reuses, as for a user), and the same inputs given in Python must give the same rows, every value as the
CSV holds it. Also: fine-tuning from weights whose head predicted something else re-initialises that head
(with a warning) instead of reusing it.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tests.zoo_cli import zoo
from zoo import load_pipeline


def written(rows: list[dict]) -> list[dict[str, str]]:
    """Rows as the CLI's CSV holds them (csv.DictWriter then DictReader): values as text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def cli(*args: str) -> str:
    result = zoo(*args, runs=Path(os.environ["ZOO_RUNS_DIR"]))  # tests/conftest.py: under the test's tmp_path
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def train(domain: str, run_dir: Path, *overrides: str) -> Path:
    """A tiny model trained as `zoo <domain> train *overrides` trains it (in this process: faster); its checkpoint."""
    from hydra import compose, initialize_config_module

    from zoo.training import run

    with initialize_config_module(config_module=f"domains.{domain}.configs", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *overrides],
        )
    return Path(run(cfg)["best_checkpoint"])


# ----------------------------------------------------------------------------- genomics


def random_dna(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


def test_genomics_pipeline_predicts_what_the_cli_writes(tmp_path):
    """A classifier trained on the user's CSV with long records slid into windows (data settings recorded)."""
    from zoo.training.runner import export_task

    rng = np.random.default_rng(0)
    rows = [f"{random_dna(rng, int(rng.integers(40, 90)))},{'ab'[i % 2]}" for i in range(40)]
    (tmp_path / "own.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    ckpt = train(
        "genomics",
        tmp_path / "train",
        f"data.path={tmp_path / 'own.csv'}",
        "data.max_length=48",
        "data.on_too_long=slide",
        "data.stride=32",
        "data.batch_size=8",
        "model.kwargs.d_model=16",
        "model.kwargs.d_inner=32",
        "model.kwargs.filter_order=8",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
    )
    sequences = [random_dna(rng, n) for n in (30, 48, 75, 120, 12, 49, 64, 100, 8, 33)]  # some slid into windows
    (tmp_path / "new.csv").write_text("sequence\n" + "\n".join(sequences) + "\n")
    out = tmp_path / "pred.csv"
    # only the file is given: max_length, on_too_long=slide, stride and batch size come from the checkpoint
    cli("genomics", "predict", f"ckpt_path={ckpt}", f"data.predict_path={tmp_path / 'new.csv'}", f"output={out}")
    expected = read_csv(out)
    assert {"row4:0-48", "row4:32-80", "row4:72-120"} <= {r["id"] for r in expected}  # slid as recorded

    pipeline = load_pipeline(ckpt)
    assert not pipeline.training
    assert written(pipeline.predict(sequences)) == expected
    folder = export_task(pipeline, tmp_path / "model", None)  # what `zoo genomics export` writes
    assert written(load_pipeline(folder).predict([s.lower() for s in sequences])) == expected


# ----------------------------------------------------------------------------- head kind on fine-tuning


class FakeData:
    """What build_task reads from a datamodule: the model's and the task's facts."""

    def __init__(self, **task_kwargs):
        self.kwargs = task_kwargs

    def model_kwargs(self):
        return {"vocab_size": 12}

    def task_kwargs(self):
        return self.kwargs


def test_a_head_trained_for_another_kind_of_label_is_reinitialised_not_reused(tmp_path, caplog):
    from omegaconf import OmegaConf

    from domains.genomics.tasks import SequenceTask
    from zoo.factory import Weights
    from zoo.training.loading import build_task

    model, kwargs = "hyenadna_tiny_1k", {"d_model": 16, "d_inner": 32, "filter_order": 8, "max_seq_len": 64}
    regression = SequenceTask(model=model, model_kwargs=kwargs, classes=["a", "b"], task_type="regression")
    record = regression.task_record()
    trained = {k: v + 1.0 for k, v in regression.backbone.state_dict().items()}  # recognisable values
    weights = Weights(
        "regression.ckpt", tmp_path / "regression.ckpt", trained, {"name": model, "kwargs": kwargs}, record
    )
    cfg = OmegaConf.create({"task": {"_target_": "domains.genomics.tasks.SequenceTask", "model": model}})

    def head_reused(**task_kwargs) -> bool:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            task = build_task(cfg, FakeData(**task_kwargs), weights)
        state = task.backbone.state_dict()
        assert all(torch.equal(state[k], v) for k, v in trained.items() if not k.startswith("head."))
        return all(torch.equal(state[k], trained[k]) for k in trained if k.startswith("head."))

    # 0/1 classification has two outputs like the two regression targets: the old head fits, and is not reused
    assert not head_reused(classes=["0", "1"], task_type="classification")
    assert "trained for task_type=regression, classes=['a', 'b']" in caplog.text
    assert "re-initialised, not reused" in caplog.text
    assert not head_reused(classes=["c", "d"], task_type="regression")  # other targets: another head
    assert head_reused(classes=["a", "b"], task_type="regression")  # the same targets: the head goes on training
    assert "re-initialised" not in caplog.text


# ----------------------------------------------------------------------------- timeseries


def hourly_table(hours: int, start: str = "2021-01-01", seed: int = 0) -> pd.DataFrame:
    t = np.arange(hours)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "date": pd.date_range(start, periods=hours, freq="h"),
            "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(hours),
            "load": 2 * np.sin(2 * np.pi * t / 24) + 0.01 * t + 0.1 * rng.standard_normal(hours),
        }
    )


def test_timeseries_pipeline_forecasts_what_the_cli_writes(tmp_path):
    hourly_table(400).to_csv(tmp_path / "load.csv", index=False)
    ckpt = train(
        "timeseries",
        tmp_path / "train",
        f"data.path={tmp_path / 'load.csv'}",
        "data.target=load",
        "data.features=MS",
        "model=informer",
        "model.name=test_informer",
        "seq_len=48",
        "label_len=24",
        "horizon=12",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false",
    )
    new = hourly_table(100, start="2021-03-01", seed=1)  # other rows: scaled with the training statistics
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "forecast.csv"
    cli("timeseries", "predict", f"ckpt_path={ckpt}", f"data.path={tmp_path / 'new.csv'}", f"output={out}")
    expected = read_csv(out)
    assert len(expected) == 12 and list(expected[0]) == ["ds", "horizon", "load"]
    assert expected[0]["ds"] == "2021-03-05T04:00:00"  # the hour after the file's last row

    pipeline = load_pipeline(ckpt)
    assert written(pipeline.predict(tmp_path / "new.csv")) == expected
    assert written(pipeline.predict(pd.read_csv(tmp_path / "new.csv"))) == expected  # the table the CLI reads
    assert written(pipeline.predict(new.set_index("date"))) == expected  # a frame on a DatetimeIndex


# ----------------------------------------------------------------------------- rl


def test_rl_pipeline_plays_the_episodes_the_cli_writes(tmp_path):
    ckpt = train(
        "rl",
        tmp_path / "train",
        "model=gru",
        "model.kwargs.dim=16",
        "trainer.max_epochs=1",
        "data.iterations_per_epoch=2",
        "data.num_envs=4",
        "data.rollout_steps=16",
        "task.val_episodes=2",
        "task.eval_episodes=6",
        "trainer.enable_progress_bar=false",
    )
    out = tmp_path / "episodes.csv"
    cli("rl", "predict", f"ckpt_path={ckpt}", f"output={out}")
    expected = read_csv(out)
    assert [r["episode"] for r in expected] == [str(k) for k in range(1, 7)]
    assert {r["seed"] for r in expected} == {"1001"}  # the test's fixed seed, eval_seed + 1

    pipeline = load_pipeline(ckpt)
    assert written(pipeline.predict()) == expected
    more = pipeline.predict(episodes=8)  # each of 8 copies plays one episode; the first 6 to end are as above
    assert sorted(r["env"] for r in more) == list(range(8))


# ----------------------------------------------------------------------------- video

VIDEO_TINY = [
    "image_size=16",
    "context=4",
    "horizon=6",
    "data.num_train_clips=16",
    "data.num_val_clips=4",
    "data.num_test_clips=5",
    "data.num_predict=5",
    "data.batch_size=4",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "model.kwargs={}",
]


def recorded_clips(pipeline, data_class) -> list[dict]:
    """The clips `zoo video predict` reads by default (the embedded test clips), from the recorded data settings."""
    settings = {k: v for k, v in pipeline.data_settings.items() if k != "_target_"}
    datamodule = data_class(**settings)
    datamodule.setup("predict")
    return [datamodule.predict_set[i] for i in range(len(datamodule.predict_set))]


def test_video_pipeline_rolls_out_what_the_cli_writes(tmp_path):
    from domains.video.data import VideoDataModule

    ckpt = train("video", tmp_path / "train", *VIDEO_TINY, "model.name=test_convs5", "data.clip_length=8")
    out = tmp_path / "cli" / "predictions.csv"
    cli("video", "predict", f"ckpt_path={ckpt}", f"output={out}")
    expected = read_csv(out)
    assert len(expected) == 5 and expected[0]["files"].startswith("predictions_frames/")

    pipeline = load_pipeline(ckpt)
    clips = recorded_clips(pipeline, VideoDataModule)
    frames = np.stack([c["frames"].numpy() for c in clips])
    folder = tmp_path / "python" / "predictions_frames"
    rows = pipeline.predict(frames, ids=[c["id"] for c in clips], folder=folder)
    assert written(rows) == expected
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (out.parent / folder.name).iterdir())
    context_only = pipeline.predict(frames[:2, :4], horizon=3)  # no frames to score: metrics left empty
    assert [(r["id"], r["psnr"], r["generated"], r["files"]) for r in context_only] == [
        ("clip1", "", 3, ""),
        ("clip2", "", 3, ""),
    ]


def test_video_caption_pipeline_captions_what_the_cli_writes(tmp_path):
    from domains.video.data import CaptionDataModule

    tiny = ["experiment=captioning", "data.num_frames=4", *VIDEO_TINY]
    ckpt = train("video", tmp_path / "train", *tiny)
    out = tmp_path / "captions.csv"
    cli("video", "predict", f"ckpt_path={ckpt}", "experiment=captioning", f"output={out}")
    expected = read_csv(out)
    assert len(expected) == 5 and all(r["reference"].startswith("the digit") for r in expected)

    pipeline = load_pipeline(ckpt)
    clips = recorded_clips(pipeline, CaptionDataModule)
    frames = torch.stack([c["frames"] for c in clips])
    rows = pipeline.predict(frames, ids=[c["id"] for c in clips], references=[c["references"][0] for c in clips])
    assert written(rows) == expected
