"""Learning-curve PNG and CartPole episode GIF for a finished run.

The curve is read from the CSV logger's `metrics.csv` of the run that trained
the policy (mean return of the last 100 episodes against environment steps).
The GIF is drawn frame by frame with PIL from the environment state (gymnax
has no pixel renderer for torch envs), for CartPole and its POPGym variants.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.io import atomic_path

log = logging.getLogger(__name__)


def find_metrics_csv(folders: list[Path]) -> Path | None:
    """The newest CSV-logger file that holds training returns, in the first folder that has one."""
    for root in folders:
        found = [
            p
            for p in sorted(root.glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
            if "train/return" in p.open().readline()
        ]
        if found:
            return found[-1]
    return None


def learning_curve(metrics_csv: Path, out: Path, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.read_csv(metrics_csv)
    if "train/return" not in frame or "train/env_steps" not in frame:
        return None
    rows = frame[["train/env_steps", "train/return"]].dropna()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rows["train/env_steps"], rows["train/return"], label="train (last 100 episodes)")
    if "val/return" in frame:
        val = frame[["step", "val/return"]].dropna()
        steps = frame[["step", "train/env_steps"]].dropna().drop_duplicates("step").set_index("step")["train/env_steps"]
        x = steps.reindex(val["step"], method="ffill").to_numpy()
        ax.plot(x, val["val/return"], "o-", label="validation (greedy)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out


@torch.no_grad()
def cartpole_gif(agent: Any, env: Any, out: Path, seed: int = 0, max_frames: int = 300) -> Path:
    """Play one greedy episode and draw track, cart and pole per step.

    Drawn with PIL primitives: matplotlib took ~0.05 s a frame (most of a short
    `zoo rl eval`'s wall time); a 320x192 frame of two lines and a box is ~1 ms.
    """
    from PIL import Image, ImageDraw

    width, height, scale, ground = 320, 192, 60.0, 150  # scale: pixels per metre; the pole is 1 m long
    obs, state = env.reset(seed=seed)
    core = agent.initial_state(1, obs.device)
    start = torch.ones(1, dtype=torch.bool, device=obs.device)
    frames = []
    for _ in range(max_frames):
        x, theta = float(state["s"][0, 0]), float(state["s"][0, 2])
        frame = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(frame)
        cx = width / 2 + x * scale
        draw.line([(width / 2 - 2.4 * scale, ground), (width / 2 + 2.4 * scale, ground)], fill="gray", width=1)
        draw.rectangle([cx - 15, ground - 5, cx + 15, ground + 5], fill=(31, 119, 180))
        draw.line(
            [(cx, ground), (cx + np.sin(theta) * scale, ground - np.cos(theta) * scale)], fill=(140, 86, 75), width=5
        )
        frames.append(frame)
        logits, _, core = agent.act(obs, core, start)
        obs, state, _, done, _ = env.step(state, logits.argmax(-1))
        start = done
        if bool(done[0]):
            break
    with atomic_path(out) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return out


def draw_outputs(task: Any, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    train_dir = task.hparams.get("train_dir")
    metrics = find_metrics_csv([folder] + ([Path(train_dir)] if train_dir else []))
    if metrics is not None:
        curve = learning_curve(metrics, folder / "learning_curve.png", f"PPO on {task.hparams.env}")
        written += [curve] if curve else []
    if "CartPole" in task.hparams.env and not task.hparams.env.startswith(("meta/", "gymnax/")):
        written.append(cartpole_gif(task.agent, task.env(1), folder / "episode.gif"))
    for path in written:
        log.info("wrote %s", path)
    return written
