"""A training killed with SIGKILL three times resumes each time and ends where an unbroken run ends (issue 26.6).

Through the real `zoo` command, in subprocesses: a time-series DLinear forecaster (one time
map per channel, 517k parameters, so each checkpoint is a 6 MB write) trains 6 epochs on a
synthetic 8-channel hourly series, on one thread with a fixed seed and a fixed `ZOO_RUN_ID`.
It is killed (SIGKILL, no cleanup runs)

1. in the middle of epoch 1's training steps (a first `last.ckpt` exists),
2. while `checkpoints/last.ckpt` is being written (its temporary `.last.ckpt.*.partial` has
   bytes in it; the temporary file left behind proves that the kill hit the write; a kill that
   came just after the rename is one more mid-run kill, and the next epoch's write is tried),
3. right after the last epoch's checkpoint, before the run finished (it goes on to test its best one),

and after each kill `ckpt_path=last` continues it. An unbroken run of the same command is the
reference: the optimizer state, the epoch and the data order (a function of seed and epoch)
come back from the checkpoint, so the killed run must end with the same weights and losses.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).parent.parent
EPOCHS = 6
WRITE_TRIES = 3  # a kill that lands just after a write's rename is one more mid-run kill; then try again
WAIT_S = 240  # a generous bound for one stage on a busy two-core machine; never a timing assertion
# Losses are compared within this relative tolerance; the weights are compared within TENSOR_ATOL.
# Measured: both differences are exactly 0 (one thread, no dropout, data order from (seed, epoch)).
LOSS_RTOL = 1e-6
TENSOR_ATOL = 1e-7

pytestmark = pytest.mark.slow  # five `zoo` processes: ~45 s of CPU, 1.5-2.5 min on two busy shared cores

COMMAND = [
    "timeseries",
    "train",
    "model=dlinear",
    "+model.kwargs.individual=true",  # one time map per channel: a 6 MB checkpoint, a write long enough to hit
    "data.features=M",
    "seq_len=336",
    "label_len=48",
    "horizon=96",
    "threads=1",
    "seed=7",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.enable_progress_bar=false",
]


def write_series(path: Path) -> Path:
    """An hourly 8-channel series: daily-ish cycles of different periods, a weekly one, noise."""
    hours, rng = 3000, np.random.default_rng(0)
    t = np.arange(hours)
    columns = {
        f"c{i}": np.sin(2 * np.pi * t / (24 + 7 * i)) + 0.3 * np.sin(2 * np.pi * t / 168) + 0.1 * rng.normal(size=hours)
        for i in range(8)
    }
    pd.DataFrame({"date": pd.date_range("2020-01-01", periods=hours, freq="h"), **columns}).to_csv(path, index=False)
    return path


class Training:
    """One `zoo timeseries train` process writing into runs/timeseries/train/<run_id>."""

    def __init__(self, runs: Path, run_id: str, data: Path, *extra: str):
        self.folder = runs / "timeseries" / "train" / run_id
        self.checkpoints = self.folder / "checkpoints"
        self.output = runs.parent / f"{run_id}.{len(list(runs.parent.glob(f'{run_id}.*.out')))}.out"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ZOO_RUNS_DIR": str(runs),
            "ZOO_RUN_ID": run_id,
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
        }
        with self.output.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", *COMMAND, f"data.path={data}", *extra],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=runs.parent,
            )

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, condition, what: str, every_s: float = 0.005):
        """Poll `condition()` until it returns something truthy; fail if the run ends first."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(f"the run ended (exit {self.process.returncode}) before {what}:\n{self.log()[-3000:]}")
            time.sleep(every_s)
        self.kill()
        pytest.fail(f"no {what} within {WAIT_S} s:\n{self.log()[-3000:]}")

    def kill(self) -> int:
        """SIGKILL; the exit status (-9 when the signal, not the end of the run, stopped it)."""
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait()

    def finish(self) -> None:
        try:
            self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        assert self.process.returncode == 0, self.log()[-3000:]

    def partials(self) -> list[Path]:
        return sorted(self.folder.glob("**/.*.partial"))


def checkpoint_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def log_rows(folder: Path) -> list[dict[str, str]]:
    try:
        with (folder / "logs" / "metrics.csv").open(newline="") as handle:
            return list(csv.DictReader(handle))
    except (FileNotFoundError, csv.Error):
        return []


def trained_in_epoch(folder: Path, epoch: int) -> bool:
    """metrics.csv holds a training-loss row of `epoch` (steps of that epoch have run)."""
    return any(row.get("epoch") == str(epoch) and row.get("train/loss") for row in log_rows(folder))


def identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns) of `path`: an atomic save renames a new file over it, so this changes with each save.
    The inode alone may not: ext4 hands a freed inode number to the next new file."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


@dataclass
class Kill:
    moment: str
    exit_status: int
    last_epoch: int  # the epoch of checkpoints/last.ckpt right after the kill
    partials: list[str] = field(default_factory=list)  # temporary files the kill left behind
    resumed_from: str = ""  # what the next process said it restored


@dataclass
class Scenario:
    kills: list[Kill]
    killed: Path  # the run folder of the killed-and-resumed run
    unbroken: Path  # the run folder of the reference run
    partials_at_end: list[Path]
    outputs: list[str]


def kill_mid_epoch(run: Training) -> Kill:
    run.wait_for(lambda: (run.checkpoints / "last.ckpt").is_file() and trained_in_epoch(run.folder, 1), "epoch 1")
    status = run.kill()
    return Kill("training steps of epoch 1", status, checkpoint_epoch(run.checkpoints / "last.ckpt"))


def kill_during_a_checkpoint_write(run: Training) -> Kill:
    """Kill while last.ckpt is being written (bytes in its temporary file), once this process has saved one.

    The write (6 MB and an fsync) lasts ~10-20 ms here; the poll every half millisecond sees it 10-20 times.
    A kill that comes after the rename leaves no temporary file: the caller then resumes and tries again.
    """
    last = run.checkpoints / "last.ckpt"
    resumed_from = identity(last)

    def writing() -> bool:
        if identity(last) == resumed_from:  # not yet saved an epoch of its own
            return False
        for entry in os.scandir(run.checkpoints):
            if entry.name.startswith(".last.ckpt.") and entry.name.endswith(".partial"):
                try:
                    return entry.stat().st_size > 0
                except FileNotFoundError:  # renamed over last.ckpt between the listing and the stat
                    return False
        return False

    run.wait_for(writing, "a last.ckpt write after the first", every_s=0.0005)
    status = run.kill()
    return Kill("writing last.ckpt", status, checkpoint_epoch(last), partials=[p.name for p in run.partials()])


def kill_after_the_final_checkpoint(run: Training) -> Kill:
    """Kill as soon as last.ckpt holds the final epoch, before the run has tested its best checkpoint."""
    last = run.checkpoints / "last.ckpt"
    looked_at: list[tuple[int, int] | None] = [None]

    def final_epoch_saved() -> bool:
        now = identity(last)
        if now == looked_at[-1]:
            return False
        looked_at.append(now)
        return checkpoint_epoch(last) == EPOCHS - 1

    run.wait_for(final_epoch_saved, f"a last.ckpt of epoch {EPOCHS - 1}")
    status = run.kill()
    return Kill("after the final checkpoint", status, checkpoint_epoch(last), partials=[p.name for p in run.partials()])


def restored_line(run: Training) -> str:
    return next((line for line in run.log().splitlines() if "Restored all states" in line), "")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    root = tmp_path_factory.mktemp("kill_resume")
    runs = root / "runs"
    data = write_series(root / "series.csv")

    unbroken = Training(runs, "unbroken", data)
    unbroken.finish()

    kills, outputs = [], []
    run = Training(runs, "killed", data)

    def kill_and_resume(kill_at) -> Training:
        kills.append(kill_at(run))
        outputs.append(run.log())
        resumed = Training(runs, "killed", data, "ckpt_path=last")
        resumed.wait_for(lambda: restored_line(resumed), "the resume restoring its checkpoint")
        kills[-1].resumed_from = restored_line(resumed)
        return resumed

    try:
        run = kill_and_resume(kill_mid_epoch)
        for _ in range(WRITE_TRIES):
            run = kill_and_resume(kill_during_a_checkpoint_write)
            if kills[-1].partials:  # the kill hit the write
                break
        run = kill_and_resume(kill_after_the_final_checkpoint)
        run.finish()
    finally:  # a failed stage leaves no training running behind the test
        if run.process.poll() is None:
            run.kill()
    outputs.append(run.log())
    return Scenario(kills, run.folder, unbroken.folder, run.partials(), outputs)


def test_each_kill_resumes_from_the_last_complete_checkpoint(scenario):
    first, *during_writes, final = scenario.kills
    assert all(kill.exit_status == -signal.SIGKILL for kill in scenario.kills), scenario.kills  # killed, not ended
    assert first.last_epoch == 0  # epoch 0 was saved, epoch 1 was cut short
    # one kill landed inside a checkpoint write: its temporary file was left, last.ckpt kept the epoch before
    hit = [kill for kill in during_writes if any(name.startswith(".last.ckpt.") for name in kill.partials)]
    assert len(hit) == 1, during_writes
    assert 1 <= hit[0].last_epoch < EPOCHS - 1
    assert final.last_epoch == EPOCHS - 1
    for kill in scenario.kills:  # every resume took this run's last.ckpt (which loaded, as checkpoint_epoch shows)
        assert kill.resumed_from.endswith(str(scenario.killed / "checkpoints" / "last.ckpt")), kill
    assert scenario.partials_at_end == []  # the resume removed the half-written file
    assert (scenario.killed / "metrics.json").is_file()
    assert sorted(p.name for p in (scenario.killed / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert sorted(p.name for p in (scenario.killed / "logs").iterdir()) == ["hparams.yaml", "metrics.csv"]  # one log


def final_state(folder: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == EPOCHS - 1
    return checkpoint["state_dict"]


def val_losses(folder: Path) -> dict[int, float]:
    return {int(row["epoch"]): float(row["val/loss"]) for row in log_rows(folder) if row.get("val/loss")}


def test_the_resumed_run_ends_where_an_unbroken_run_ends(scenario):
    runs = scenario.killed, scenario.unbroken
    killed, unbroken = final_state(scenario.killed), final_state(scenario.unbroken)
    assert killed.keys() == unbroken.keys()
    for name, tensor in unbroken.items():
        assert torch.allclose(killed[name], tensor, rtol=0, atol=TENSOR_ATOL), name
    final_val = val_losses(scenario.killed)[EPOCHS - 1], val_losses(scenario.unbroken)[EPOCHS - 1]
    assert math.isclose(*final_val, rel_tol=LOSS_RTOL), final_val
    test_loss = [json.loads((f / "metrics.json").read_text())["metrics"]["test/loss"] for f in runs]
    assert math.isclose(*test_loss, rel_tol=LOSS_RTOL), test_loss


def test_the_metrics_log_holds_each_epoch_once(scenario):
    rows = log_rows(scenario.killed)
    val_epochs = [int(row["epoch"]) for row in rows if row.get("val/loss")]
    assert val_epochs == list(range(EPOCHS))
    logged = [(row["epoch"], row["step"]) for row in rows if row.get("train/loss")]
    assert len(logged) == len(set(logged)), "training rows of a cut-short epoch were logged twice"
