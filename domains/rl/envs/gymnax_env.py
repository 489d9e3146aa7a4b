"""Any gymnax environment behind the torch `TorchEnv` interface.

gymnax (Lange, 2022) environments are jitted and vmapped over `num_envs`;
tensors cross the boundary as numpy arrays on CPU (measured no slower than
DLPack there) and through DLPack on GPU. The state stays a JAX pytree
(opaque to torch); observations are flattened to `(num_envs, obs_dim)`.
Only discrete action spaces are supported, since the zoo's policies are
categorical.
"""

from __future__ import annotations

import numpy as np
import torch

from domains.rl.envs.base import TorchEnv
from zoo.errors import ZooError


def _to_torch(array, device: torch.device) -> torch.Tensor:
    if device.type == "cpu":
        return torch.from_numpy(np.asarray(array))
    return torch.from_dlpack(array)


class GymnaxEnv(TorchEnv):
    def __init__(self, env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", **env_kwargs):
        super().__init__(num_envs, device)
        import gymnax
        import jax

        self._jax = jax
        self.name = env_id
        self.env, self.params = gymnax.make(env_id, **env_kwargs)
        space = self.env.action_space(self.params)
        if not hasattr(space, "n"):
            raise ZooError(
                f"gymnax env {env_id!r} has a continuous action space ({type(space).__name__}); "
                "the zoo's policies are categorical: pick an env with discrete actions"
            )
        self.num_actions = int(space.n)
        self.obs_dim = int(np.prod(self.env.observation_space(self.params).shape))
        self.max_episode_steps = getattr(self.params, "max_steps_in_episode", None)
        self._reset = jax.jit(jax.vmap(self.env.reset, in_axes=(0, None)))
        self._step = jax.jit(jax.vmap(self.env.step, in_axes=(0, 0, 0, None)))
        self._key = jax.random.PRNGKey(0)

    def seed(self, seed: int) -> None:
        self._key = self._jax.random.PRNGKey(int(seed))

    def _keys(self):
        self._key, sub = self._jax.random.split(self._key)
        return self._jax.random.split(sub, self.num_envs)

    def _obs(self, obs) -> torch.Tensor:
        return _to_torch(obs, self.device).reshape(self.num_envs, -1).float()

    def reset(self, seed: int | None = None):
        if seed is not None:
            self.seed(seed)
        obs, state = self._reset(self._keys(), self.params)
        return self._obs(obs), state

    def step(self, state, action: torch.Tensor):
        jnp = self._jax.numpy
        actions = (
            jnp.asarray(action.cpu().numpy()) if self.device.type == "cpu" else self._jax.dlpack.from_dlpack(action)
        )
        obs, state, reward, terminated, truncated, extra = self._step(self._keys(), state, actions, self.params)
        terminated = _to_torch(terminated, self.device).bool()
        truncated = _to_torch(truncated, self.device).bool()
        info = {"terminated": terminated, "truncated": truncated}
        if "final_observation" in extra:  # recent gymnax: the last obs before the auto-reset (for bootstrapping)
            info["final_observation"] = self._obs(extra["final_observation"])
        return self._obs(obs), state, _to_torch(reward, self.device).float(), terminated | truncated, info
