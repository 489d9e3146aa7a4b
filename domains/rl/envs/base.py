"""The batched environment interface every RL environment in the zoo keeps.

It mirrors gymnax (Lange, 2022, "gymnax: A JAX-based Reinforcement Learning
Environment Library") in a torch form: one object steps `num_envs` copies at
once, the state is a (nested) dict of tensors whose first dimension is the
environment index, and `step` resets finished copies automatically, returning
the first observation of the new episode (the last one of the old episode is
in `info["final_observation"]`).

    obs, state = env.reset(seed=0)
    obs, state, reward, done, info = env.step(state, action)

Randomness comes from the env's own `torch.Generator`, so a seed fixes every
rollout. Only finished copies are re-sampled (an index write, not a full
fresh batch per step), which keeps card games with 52-card shuffles cheap.
"""

from __future__ import annotations

from typing import Any

import torch

State = dict[str, Any]


class TorchEnv:
    """Abstract batched environment: discrete actions, flat float observations."""

    name: str = "env"
    obs_dim: int
    num_actions: int
    #: a step limit after which an episode always ends (None: unbounded); informs rollout lengths.
    max_episode_steps: int | None = None

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu"):
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def step(self, state: State, action: torch.Tensor) -> tuple[torch.Tensor, State, torch.Tensor, torch.Tensor, dict]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"env": self.name, "obs_dim": self.obs_dim, "num_actions": self.num_actions}

    # Helpers shared by subclasses.
    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=self.device)

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator, device=self.device)


def replace_rows(state: State, rows: torch.Tensor, fresh: State) -> State:
    """A new state equal to `state` except at `rows`, which take `fresh` (out of place)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out[key] = replace_rows(value, rows, fresh[key])
        else:
            out[key] = value.index_put((rows,), fresh[key])
    return out


class FunctionalEnv(TorchEnv):
    """An environment written as pure functions of the state; auto-reset is done here.

    Subclasses implement `init_state(n)` (n fresh episodes), `observe(state)` and
    `transition(state, action) -> (obs, state, reward, terminated, truncated)`.
    `transition` must return new tensors for every entry it changes.
    """

    def init_state(self, n: int) -> State:
        raise NotImplementedError

    def observe(self, state: State) -> torch.Tensor:
        raise NotImplementedError

    def transition(self, state: State, action: torch.Tensor):
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, State]:
        if seed is not None:
            self.seed(seed)
        state = self.init_state(self.num_envs)
        return self.observe(state), state

    #: shape of the per-env uniform noise `fresh_state` turns into a new episode; None: no `step_dense`.
    reset_noise: tuple[int, ...] | None = None

    def fresh_state(self, noise: torch.Tensor) -> State:
        raise NotImplementedError(f"{self.name} has no dense reset (reset_noise is None)")

    def step_dense(self, state: State, action: torch.Tensor, noise: torch.Tensor):
        """`step` with a branch-free auto-reset from `noise` (num_envs, *reset_noise), uniform in [0, 1).

        Every env gets a candidate fresh state and keeps it where done: no data-dependent
        shapes or host syncs, so torch.compile can fuse the whole step into one kernel
        (`RolloutCollector(compile=True)`; docs/rl.md, Speed).
        """
        obs, new, reward, terminated, truncated = self.transition(state, action)
        done = terminated | truncated
        fresh = self.fresh_state(noise)

        def pick(old: torch.Tensor, young: torch.Tensor) -> torch.Tensor:
            return torch.where(done.view(-1, *[1] * (old.dim() - 1)), young, old)

        info = {"terminated": terminated, "truncated": truncated, "final_observation": obs}
        state = {k: pick(v, fresh[k]) for k, v in new.items()}
        return pick(obs, self.observe(fresh)), state, reward, done, info

    def step(self, state: State, action: torch.Tensor):
        obs, state, reward, terminated, truncated = self.transition(state, action)
        done = terminated | truncated
        info = {"terminated": terminated, "truncated": truncated, "final_observation": obs}
        rows = done.nonzero().squeeze(1)
        if rows.numel():
            fresh = self.init_state(rows.numel())
            state = replace_rows(state, rows, fresh)
            obs = obs.index_put((rows,), self.observe(fresh))
        return obs, state, reward, done, info
