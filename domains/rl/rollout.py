"""Collecting rollouts: the env and the agent's hidden state persist across calls.

A rollout is `steps` transitions of every env, stored time-major `(T, B, ...)`
with `starts[t]` True where obs_t is an episode's first observation (the reset
flag the policy core sees) and the core's state at the rollout's first step,
so training replays the rollout exactly as it was acted (Lu et al., 2023).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from domains.rl.agent import Agent, sample_actions
from domains.rl.envs import TorchEnv


@dataclass
class Batch:
    obs: torch.Tensor        # (T, B, D)
    actions: torch.Tensor    # (T, B)
    logp: torch.Tensor       # (T, B)
    values: torch.Tensor     # (T, B)
    rewards: torch.Tensor    # (T, B)
    dones: torch.Tensor      # (T, B) episode ended after this step
    starts: torch.Tensor     # (T, B) obs_t starts an episode
    init_state: Any          # core state before step 0
    last_value: torch.Tensor  # (B,) value of the observation after the last step
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)


class RolloutCollector:
    def __init__(self, env: TorchEnv, agent: Agent, seed: int = 0):
        self.env, self.agent = env, agent
        self.generator = torch.Generator(device=env.device)
        self.generator.manual_seed(seed)
        self.obs, self.env_state = env.reset(seed=seed)
        n = env.num_envs
        self.starts = torch.ones(n, dtype=torch.bool, device=env.device)
        self.core_state = agent.initial_state(n, env.device)
        self.running_return = torch.zeros(n, device=env.device)
        self.running_length = torch.zeros(n, dtype=torch.long, device=env.device)

    @torch.no_grad()
    def collect(self, steps: int) -> Batch:
        env, n = self.env, self.env.num_envs
        obs_buf = torch.empty(steps, n, env.obs_dim, device=env.device)
        logits_buf = torch.empty(steps, n, env.num_actions, device=env.device)
        actions = torch.empty(steps, n, dtype=torch.long, device=env.device)
        values, rewards = (torch.empty(steps, n, device=env.device) for _ in range(2))
        dones = torch.empty(steps, n, dtype=torch.bool, device=env.device)
        starts = torch.empty(steps, n, dtype=torch.bool, device=env.device)
        # Gumbel-max sampling with the whole rollout's noise drawn at once: two ops per step.
        gumbel = -torch.log(-torch.log(torch.rand(steps, n, env.num_actions, generator=self.generator, device=env.device).clamp_(1e-10, 1.0)))
        init_state = self.core_state
        finished_returns, finished_lengths = [], []
        obs, state, start, core = self.obs, self.env_state, self.starts, self.core_state
        for t in range(steps):
            logits, value, core = self.agent.act(obs, core, start)
            action = torch.argmax(logits + gumbel[t], dim=-1)
            obs_buf[t], starts[t], logits_buf[t], actions[t], values[t] = obs, start, logits, action, value
            obs, state, reward, done, _ = env.step(state, action)
            rewards[t], dones[t] = reward, done
            self.running_return += reward
            self.running_length += 1
            if done.any():
                finished_returns.append(self.running_return[done])
                finished_lengths.append(self.running_length[done])
                self.running_return.masked_fill_(done, 0.0)
                self.running_length.masked_fill_(done, 0)
            start = done
        _, last_value, _ = self.agent.act(obs, core, start)
        self.obs, self.env_state, self.starts, self.core_state = obs, state, start, core
        logp = torch.log_softmax(logits_buf, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        batch = Batch(obs_buf, actions, logp, values, rewards, dones, starts, init_state, last_value)
        if finished_returns:
            batch.episode_returns = torch.cat(finished_returns).tolist()
            batch.episode_lengths = torch.cat(finished_lengths).tolist()
        return batch


@torch.no_grad()
def evaluate_policy(agent: Agent, env: TorchEnv, seed: int, episodes: int, greedy: bool = True, max_steps: int = 100_000) -> list[float]:
    """Returns of the first `episodes` episodes finished by `env.num_envs` parallel copies from `seed`."""
    generator = torch.Generator(device=env.device)
    generator.manual_seed(seed)
    obs, state = env.reset(seed=seed)
    n = env.num_envs
    core = agent.initial_state(n, env.device)
    start = torch.ones(n, dtype=torch.bool, device=env.device)
    running = torch.zeros(n, device=env.device)
    counted = torch.zeros(n, dtype=torch.long, device=env.device)
    quota = torch.full((n,), -(-episodes // n), device=env.device)  # each copy contributes equally: no bias to short episodes
    returns: list[float] = []
    for _ in range(max_steps):
        logits, _, core = agent.act(obs, core, start)
        action = logits.argmax(-1) if greedy else sample_actions(logits, generator)
        obs, state, reward, done, _ = env.step(state, action)
        running += reward
        take = done & (counted < quota)
        if take.any():
            returns += running[take].tolist()
            counted += take.long()
        running.masked_fill_(done, 0.0)
        start = done
        if bool((counted >= quota).all()):
            break
    return returns[:episodes]


@torch.no_grad()
def trial_returns(agent: Agent, env: TorchEnv, seed: int, trials: int, greedy: bool = True) -> torch.Tensor:
    """(trials, episodes_per_trial) returns on a `ProjectedTrials` env: column k is the k-th episode of a trial.

    A rising row mean is in-context adaptation: the hidden state, kept across the
    trial's episodes, improves play under projections the agent has never seen.
    """
    k = env.episodes_per_trial
    obs, state = env.reset(seed=seed)
    n = env.num_envs
    core = agent.initial_state(n, env.device)
    start = torch.ones(n, dtype=torch.bool, device=env.device)
    running = torch.zeros(n, device=env.device)
    episode = torch.zeros(n, dtype=torch.long, device=env.device)
    table = torch.zeros(n, -(-trials // n), k, device=env.device)
    trial = torch.zeros(n, dtype=torch.long, device=env.device)
    rows = torch.arange(n, device=env.device)
    generator = torch.Generator(device=env.device).manual_seed(seed)
    while bool((trial < table.shape[1]).any()):
        logits, _, core = agent.act(obs, core, start)
        action = logits.argmax(-1) if greedy else sample_actions(logits, generator)
        obs, state, reward, done, info = env.step(state, action)
        running += reward
        ended = info["episode_done"] & (trial < table.shape[1])
        table[rows[ended], trial[ended], episode[ended]] = running[ended]
        running.masked_fill_(info["episode_done"], 0.0)
        episode = torch.where(done, 0, episode + info["episode_done"].long())
        trial = trial + done.long()
        start = done
    return table.flatten(0, 1)[:trials]
