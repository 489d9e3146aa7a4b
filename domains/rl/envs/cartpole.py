"""CartPole-v1 and its POPGym memory variants, vectorised in torch.

Dynamics: Barto, Sutton and Anderson (1983), "Neuronlike adaptive elements that
can solve difficult learning control problems", with OpenAI Gym's constants and
Euler integration, as in gymnax's `CartPole-v1` (tested step by step against it).

`StatelessCartPole` / `NoisyStatelessCartPole` are from POPGym (Morad et al.,
ICLR 2023, "POPGym: Benchmarking Partially Observable Reinforcement Learning"):
only position and angle are observed (optionally with Gaussian noise), so the
velocities must be inferred from memory; reward 1/max_steps per step, as in the
JAX versions used by Lu et al. (NeurIPS 2023).
"""

from __future__ import annotations

import math

import torch

from domains.rl.envs.base import FunctionalEnv, State

GRAVITY, MASSPOLE, TOTAL_MASS, LENGTH, FORCE_MAG, TAU = 9.8, 0.1, 1.1, 0.5, 10.0, 0.02
POLEMASS_LENGTH = MASSPOLE * LENGTH
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4


def cartpole_physics(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """One Euler step of the cart-pole equations (same operation order as gymnax).

    state: (B, 5) columns x, x_dot, theta, theta_dot, time; one tensor so that
    auto-reset is a single row write and the observation a view.
    """
    x, x_dot, theta, theta_dot, time = state.unbind(1)
    force = FORCE_MAG * action - FORCE_MAG * (1 - action)
    costheta, sintheta = torch.cos(theta), torch.sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * costheta**2 / TOTAL_MASS))
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    return torch.stack(
        (x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc, time + 1), 1
    )


def fallen(state: torch.Tensor) -> torch.Tensor:
    return (state[:, 0].abs() > X_LIMIT) | (state[:, 2].abs() > THETA_LIMIT)


class CartPole(FunctionalEnv):
    """Balance a pole on a cart: reward 1 per step, at most 500 steps."""

    name = "CartPole-v1"
    obs_dim = 4
    num_actions = 2
    reset_noise = (5,)  # a fresh episode is 5 uniforms (see fresh_state): CartPole has step_dense

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", max_steps: int = 500):
        super().__init__(num_envs, device)
        self.max_episode_steps = max_steps

    def init_state(self, n: int) -> State:
        return self.fresh_state(self.uniform(n, 5))

    def fresh_state(self, noise: torch.Tensor) -> State:
        """x, x_dot, theta, theta_dot uniform in [-0.05, 0.05) (gymnax's reset), time 0."""
        return {"s": torch.cat((noise[:, :4] * 0.1 - 0.05, torch.zeros_like(noise[:, 4:])), 1)}

    def observe(self, state: State) -> torch.Tensor:
        return state["s"][:, :4]

    def transition(self, state: State, action: torch.Tensor):
        s = cartpole_physics(state["s"], action)
        return s[:, :4], {"s": s}, torch.ones_like(s[:, 0]), fallen(s), s[:, 4] >= self.max_episode_steps


class NoisyStatelessCartPole(CartPole):
    """CartPole seeing only (x, theta) plus N(0, noise_sigma^2) noise; 200 steps."""

    name = "popgym/NoisyStatelessCartPole"
    obs_dim = 2
    reset_noise = None  # observe() draws noise: not a pure function of the state

    def __init__(
        self, num_envs: int = 1, device: str | torch.device = "cpu", max_steps: int = 200, noise_sigma: float = 0.1
    ):
        super().__init__(num_envs, device, max_steps)
        self.noise_sigma = noise_sigma
        self.obs_high = torch.tensor([X_LIMIT * 2, THETA_LIMIT * 2], device=self.device)

    def observe(self, state: State) -> torch.Tensor:
        obs = state["s"][:, 0:3:2]
        if self.noise_sigma:
            obs = obs + self.noise_sigma * self.normal(*obs.shape)
        return torch.maximum(torch.minimum(obs, self.obs_high), -self.obs_high)

    def transition(self, state: State, action: torch.Tensor):
        s = cartpole_physics(state["s"], action)
        reward = torch.full_like(s[:, 0], 1.0 / self.max_episode_steps)
        terminated = fallen(s) | (s[:, 4] >= self.max_episode_steps)
        return self.observe({"s": s}), {"s": s}, reward, terminated, torch.zeros_like(terminated)


class StatelessCartPole(NoisyStatelessCartPole):
    name = "popgym/StatelessCartPole"

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", max_steps: int = 200):
        super().__init__(num_envs, device, max_steps, noise_sigma=0.0)
