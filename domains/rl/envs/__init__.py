"""Environment names -> batched torch environments.

Names:
- `CartPole-v1`, `MemoryChain-bsuite`: pure-torch versions (fast), tested against gymnax.
- `TwoArmedBandit`: the base task of the meta-RL bandit (for `meta/projected-TwoArmedBandit`).
- `Association`: the base task of the projected cue-action association (for `meta/projected-Association`).
- `popgym/<Task>[-Easy|-Medium|-Hard]`: POPGym memory tasks in pure torch (Easy if no level).
- `gymnax/<id>`: any gymnax environment with discrete actions, through the adapter.
- `meta/projected-<name>`: per-trial random projections of any of the above (in-context meta-RL).

`make_env(name, num_envs, device, **kwargs)`; kwargs go to the environment
(e.g. `memory_length`) except `prev_action` (append the previous action,
default on for POPGym) and, for `meta/`, `episodes_per_trial`, `proj_dim`,
`projection_seed`, `feedback` ("answer" where the inner env reveals its
answers, as Association does, else "action_reward").
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from domains.rl.envs.association import Association
from domains.rl.envs.base import FunctionalEnv, TorchEnv
from domains.rl.envs.cards import Autoencode, CountRecall, RepeatFirst, RepeatPrevious
from domains.rl.envs.cartpole import CartPole, NoisyStatelessCartPole, StatelessCartPole
from domains.rl.envs.games import Concentration, MultiarmedBandit, TwoArmedBandit
from domains.rl.envs.memory_chain import MemoryChain
from domains.rl.envs.wrappers import PrevAction, ProjectedTrials
from zoo.errors import ZooError

__all__ = ["TorchEnv", "FunctionalEnv", "make_env", "list_envs"]

# Difficulty levels of the JAX ports used by Lu et al. (2023).
POPGYM: dict[str, Callable[..., TorchEnv]] = {}
_LEVELS = {
    "RepeatFirst": (RepeatFirst, [{"num_decks": 1}, {"num_decks": 8}, {"num_decks": 16}]),
    "RepeatPrevious": (
        RepeatPrevious,
        [{"num_decks": 1, "k": 4}, {"num_decks": 2, "k": 32}, {"num_decks": 3, "k": 64}],
    ),
    "Autoencode": (Autoencode, [{"num_decks": 1}, {"num_decks": 2}, {"num_decks": 3}]),
    "CountRecall": (
        CountRecall,
        [{"num_decks": 1, "num_types": 2}, {"num_decks": 2, "num_types": 4}, {"num_decks": 4, "num_types": 13}],
    ),
    "Concentration": (
        Concentration,
        [{"num_decks": 1, "num_types": 2}, {"num_decks": 2, "num_types": 2}, {"num_decks": 1, "num_types": 13}],
    ),
    "MultiarmedBandit": (
        MultiarmedBandit,
        [
            {"num_bandits": 10, "episode_length": 200},
            {"num_bandits": 20, "episode_length": 400},
            {"num_bandits": 30, "episode_length": 600},
        ],
    ),
    "StatelessCartPole": (StatelessCartPole, [{"max_steps": 200}, {"max_steps": 400}, {"max_steps": 600}]),
    "NoisyStatelessCartPole": (
        NoisyStatelessCartPole,
        [{"noise_sigma": 0.1}, {"noise_sigma": 0.2}, {"noise_sigma": 0.3}],
    ),
}
for _task, (_cls, _levels) in _LEVELS.items():
    for _level, _kw in zip(("Easy", "Medium", "Hard"), _levels):
        POPGYM[f"popgym/{_task}-{_level}"] = partial(_cls, **_kw)
    POPGYM[f"popgym/{_task}"] = partial(_cls, **_levels[0])

ALIASES = {"CartPole": "CartPole-v1", "MemoryChain": "MemoryChain-bsuite"}
TORCH_ENVS: dict[str, Callable[..., TorchEnv]] = {
    "CartPole-v1": CartPole,
    "MemoryChain-bsuite": MemoryChain,
    "TwoArmedBandit": TwoArmedBandit,
    "Association": Association,
    **POPGYM,
}


def _gymnax_ids() -> list[str]:
    try:
        import gymnax
    except ImportError:
        return []
    return [f"gymnax/{name}" for name in gymnax.registered_envs]


def list_envs() -> list[str]:
    base = sorted(TORCH_ENVS) + _gymnax_ids()
    return (
        base
        + [f"meta/projected-{name}" for name in ("CartPole-v1", "MemoryChain-bsuite", "TwoArmedBandit", "Association")]
        + sorted(ALIASES)
    )


def make_env(name: str, num_envs: int = 1, device: str | torch.device = "cpu", **kwargs: Any) -> TorchEnv:
    """Build the batched environment `name` (see the module docstring)."""
    if name.startswith("meta/projected-"):
        meta = {
            k: kwargs.pop(k) for k in ("episodes_per_trial", "proj_dim", "projection_seed", "feedback") if k in kwargs
        }
        inner_name = ALIASES.get(name[len("meta/projected-") :], name[len("meta/projected-") :])
        inner = make_env(inner_name, num_envs, device, **{"prev_action": False, **kwargs})
        meta.setdefault("feedback", "answer" if hasattr(inner, "revealed_action") else "action_reward")
        return ProjectedTrials(inner, **meta)
    name = ALIASES.get(name, name)
    prev_action = kwargs.pop("prev_action", None)
    if name in TORCH_ENVS:
        try:
            env = TORCH_ENVS[name](num_envs=num_envs, device=device, **kwargs)
        except TypeError as err:
            raise ZooError(f"bad arguments for environment {name!r}: {err}; see domains/rl/envs/") from None
    elif name.startswith("gymnax/") and name[len("gymnax/") :] in {n[7:] for n in _gymnax_ids()}:
        from domains.rl.envs.gymnax_env import GymnaxEnv

        env = GymnaxEnv(name[len("gymnax/") :], num_envs, device, **kwargs)
    else:
        close = difflib.get_close_matches(name, list_envs(), n=4, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ZooError(f"unknown environment {name!r}.{hint} Run `zoo rl envs` or see docs/rl.md for every name.")
    if prev_action if prev_action is not None else name.startswith("popgym/"):
        env = PrevAction(env)
    return env


def print_envs(cfg: Any = None) -> dict[str, Any]:
    """`zoo rl envs`: every name `env=` accepts."""
    names = list_envs()
    for name in names:
        print(name)
    return {"mode": "envs", "count": len(names)}
