"""A trained RL policy back in Python: `load_policy(source)` -> (agent, spec).

`zoo rl export` writes a zoo folder whose task record holds the PPO task's
hyper-parameters (environment, spaces) and whose `task.safetensors` holds the
actor-critic heads, so the policy is restored the same way from a folder, an
`hf://` address or a training `.ckpt`.
"""

from __future__ import annotations

import os
from typing import Any

from domains.rl.agent import Agent
from zoo.factory import open_weights
from zoo.training.loading import require_domain, restore_task


def load_policy(source: str | os.PathLike) -> tuple[Agent, dict[str, Any]]:
    """(agent in eval mode, spec: env, env_kwargs, num_actions, head_hidden, iterations)."""
    usage = "give a .ckpt of `zoo rl train` or a `zoo rl export` folder"
    weights = require_domain(open_weights(source), "rl", usage, unrecorded_ok=True)  # old .ckpt: PPOTask
    task = restore_task(weights, fallback="domains.rl.tasks.PPOTask")
    hp = task.hparams
    spec = {
        "env": hp.env,
        "env_kwargs": dict(hp.env_kwargs or {}),
        "num_actions": hp.num_actions,
        "head_hidden": hp.head_hidden,
        "iterations": int(task.iteration),
    }
    return task.agent, spec  # restore_task left every module in eval mode
