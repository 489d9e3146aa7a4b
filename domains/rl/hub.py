"""Saving and loading a whole RL policy as a zoo hub folder.

The folder is a normal zoo model folder for the backbone (`zoo.hub`), plus
`rl_heads.safetensors` (actor and critic heads) and `rl_policy.json` (the
environment and its spaces), so `from_pretrained` still loads the backbone
alone and `load_policy` rebuilds the agent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save

from domains.rl.agent import ActorCriticHeads, Agent
from zoo.errors import ZooError
from zoo.hub import from_pretrained, resolve, save_pretrained

HEADS_FILE = "rl_heads.safetensors"
SPEC_FILE = "rl_policy.json"


def policy_extras(task: Any) -> dict[str, str | bytes]:
    hp = task.hparams
    spec = {
        "env": hp.env,
        "env_kwargs": dict(hp.env_kwargs or {}),
        "num_actions": hp.num_actions,
        "head_hidden": hp.head_hidden,
        "iterations": int(task.iteration),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in task.heads.state_dict().items()}
    return {HEADS_FILE: save(state), SPEC_FILE: json.dumps(spec, indent=2) + "\n"}


def save_policy(task: Any, folder: str | os.PathLike, card: dict | None = None) -> Path:
    return save_pretrained(task.backbone, folder, card=card, extra_files=policy_extras(task))


def load_policy(source: str | os.PathLike) -> tuple[Agent, dict]:
    """(agent, spec) from a folder written by `save_policy` / `zoo rl export`."""
    import domains.rl.policy_cores  # noqa: F401  (registers the baseline cores)

    path = resolve(source)
    if not (path / SPEC_FILE).is_file():
        raise ZooError(
            f"{path} has no {SPEC_FILE}: it holds a backbone but not an RL policy; export one with `zoo rl export`"
        )
    spec = json.loads((path / SPEC_FILE).read_text())
    backbone = from_pretrained(path)
    heads = ActorCriticHeads(backbone.num_features, spec["num_actions"], spec["head_hidden"])
    heads.load_state_dict(load_file(str(path / HEADS_FILE)))
    return Agent(backbone.eval(), heads.eval()), spec


def load_heads_if_present(heads: ActorCriticHeads, weights: str | os.PathLike | None) -> bool:
    """Load the actor-critic heads shipped beside a backbone in `weights` (a policy folder); False if none."""
    if not weights or str(weights).endswith(".ckpt"):
        return False
    path = resolve(weights)
    if not (path / HEADS_FILE).is_file():
        return False
    heads.load_state_dict(load_file(str(path / HEADS_FILE)))
    return True
