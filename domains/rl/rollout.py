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
    obs: torch.Tensor  # (T, B, D)
    actions: torch.Tensor  # (T, B)
    logp: torch.Tensor  # (T, B)
    values: torch.Tensor  # (T, B)
    rewards: torch.Tensor  # (T, B)
    dones: torch.Tensor  # (T, B) episode ended after this step
    starts: torch.Tensor  # (T, B) obs_t starts an episode
    init_state: Any  # core state before step 0
    last_value: torch.Tensor  # (B,) value of the observation after the last step
    bootstrap: torch.Tensor | None = None  # (T, B) value of the final obs where an episode was truncated, else 0
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)


class RolloutCollector:
    """Steps `env` with `agent`, keeping env, core state and episode tallies across `collect` calls.

    compile: torch.compile one whole step (act, Gumbel-max sampling, env step). On an env
    with a dense reset (`FunctionalEnv.reset_noise`, e.g. CartPole) the reset noise is drawn
    for the whole rollout up front and the step has no host sync, so it fuses; elsewhere the
    graph breaks at the env's auto-reset. Measured in docs/rl.md (Speed); off by default.
    """

    def __init__(self, env: TorchEnv, agent: Agent, seed: int = 0, compile: bool = False):
        self.env, self.agent = env, agent
        self.dense = compile and getattr(env, "reset_noise", None) is not None
        self.transition = torch.compile(self._transition, dynamic=False) if compile else self._transition
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
        # Gumbel-max sampling with the whole rollout's noise drawn at once: two ops per step.
        gumbel = -torch.log(
            -torch.log(
                torch.rand(steps, n, env.num_actions, generator=self.generator, device=env.device).clamp_(1e-10, 1.0)
            )
        )
        noise = env.uniform(steps, n, *env.reset_noise) if self.dense else [None] * steps
        bootstrap = torch.zeros(steps, n, device=env.device)
        init_state = self.core_state
        # Per-step tensors go to lists and are stacked once: a buffer write per step and field was
        # ~10% of an eager CartPole step (docs/rl.md, Speed); episode sums are done after the loop.
        trace: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "starts", "logits", "actions", "values", "rewards", "dones")
        }
        obs, state, start, core = self.obs, self.env_state, self.starts, self.core_state
        for t in range(steps):
            logits, value, core, action, next_obs, state, reward, done, info = self.transition(
                obs, core, start, state, gumbel[t], noise[t]
            )
            for key, item in zip(trace, (obs, start, logits, action, value, reward, done)):
                trace[key].append(item)
            cut = info.get("truncated")
            if cut is not None and info.get("final_observation") is not None and cut.any():
                # A time limit is not a terminal state: GAE bootstraps from the value of the obs the
                # episode was cut at, seen by the core as the episode's next step (no reset).
                cut = cut & ~info.get("terminated", torch.zeros_like(cut))
                _, final_value, _ = self.agent.act(info["final_observation"], core, torch.zeros_like(done))
                bootstrap[t] = final_value * cut
            obs, start = next_obs, done
        _, last_value, _ = self.agent.act(obs, core, start)
        self.obs, self.env_state, self.starts, self.core_state = obs, state, start, core
        obs_buf, starts, logits_buf, actions, values, rewards, dones = (torch.stack(v) for v in trace.values())
        logp = torch.log_softmax(logits_buf, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        batch = Batch(obs_buf, actions, logp, values, rewards, dones, starts, init_state, last_value, bootstrap)
        returns, lengths, self.running_return, self.running_length = finished_episodes(
            rewards, dones, self.running_return, self.running_length
        )
        batch.episode_returns, batch.episode_lengths = returns.tolist(), lengths.tolist()
        return batch

    def _transition(self, obs, core, start, state, gumbel_t, noise_t):
        """Act, sample by Gumbel-max, step every env: one step of the rollout, as one function to compile."""
        logits, value, core = self.agent.act(obs, core, start)
        action = torch.argmax(logits + gumbel_t, dim=-1)
        stepped = self.env.step(state, action) if noise_t is None else self.env.step_dense(state, action, noise_t)
        return logits, value, core, action, *stepped


def finished_episodes(
    rewards: torch.Tensor, dones: torch.Tensor, carry_return: torch.Tensor, carry_length: torch.Tensor
):
    """Returns and lengths of the episodes ending in a (T, B) rollout, time-major, and the running sums after it.

    `carry_*` (B,) hold the return and length of each env's unfinished episode before the rollout.
    An episode ending at t spans the steps after the previous end (or continues the carry).
    """
    T = rewards.shape[0]
    time = torch.arange(T, device=rewards.device).unsqueeze(1).expand_as(rewards)
    total, count = rewards.cumsum(0), time + 1
    last_end = torch.where(dones, time, -1).cummax(0).values  # the latest end at or before t
    prior = torch.cat((torch.full_like(last_end[:1], -1), last_end[:-1]))  # strictly before t
    fresh, at = prior < 0, prior.clamp(min=0)
    ret = total - torch.where(fresh, -carry_return, total.gather(0, at))
    length = count - torch.where(fresh, -carry_length, count.gather(0, at))
    final_fresh, final_at = last_end[-1] < 0, last_end[-1:].clamp(min=0)
    running_return = torch.where(final_fresh, carry_return + total[-1], total[-1] - total.gather(0, final_at)[0])
    running_length = torch.where(final_fresh, carry_length + T, T - 1 - final_at[0])
    return ret[dones], length[dones], running_return, running_length


@torch.no_grad()
def evaluate_policy(
    agent: Agent, env: TorchEnv, seed: int, episodes: int, greedy: bool = True, max_steps: int = 100_000
) -> list[float]:
    """Returns of the first `episodes` episodes finished by `env.num_envs` parallel copies from `seed`."""
    return [row["return"] for row in play_episodes(agent, env, seed, episodes, greedy, max_steps)]


@torch.no_grad()
def play_episodes(
    agent: Agent, env: TorchEnv, seed: int, episodes: int, greedy: bool = True, max_steps: int = 100_000
) -> list[dict[str, float | int]]:
    """The first `episodes` episodes finished by `env.num_envs` parallel copies from `seed`, in the order they
    end (ties: by copy): rows (episode, env, return, length). Each copy plays an equal share (no bias to
    short episodes); sampled actions (`greedy=False`) draw from a generator seeded with `seed`."""
    generator = torch.Generator(device=env.device)
    generator.manual_seed(seed)
    obs, state = env.reset(seed=seed)
    n = env.num_envs
    core = agent.initial_state(n, env.device)
    start = torch.ones(n, dtype=torch.bool, device=env.device)
    running = torch.zeros(n, device=env.device)
    length = torch.zeros(n, dtype=torch.long, device=env.device)
    counted = torch.zeros(n, dtype=torch.long, device=env.device)
    quota = torch.full((n,), -(-episodes // n), device=env.device)
    rows: list[dict[str, float | int]] = []
    for _ in range(max_steps):
        logits, _, core = agent.act(obs, core, start)
        action = logits.argmax(-1) if greedy else sample_actions(logits, generator)
        obs, state, reward, done, _ = env.step(state, action)
        running += reward
        length += 1
        take = done & (counted < quota)
        if take.any():
            for copy, ret, steps in zip(
                take.nonzero().flatten().tolist(), running[take].tolist(), length[take].tolist()
            ):
                rows.append({"episode": len(rows) + 1, "env": copy, "return": ret, "length": steps})
            counted += take.long()
        running.masked_fill_(done, 0.0)
        length.masked_fill_(done, 0)
        start = done
        if bool((counted >= quota).all()):
            break
    return rows[:episodes]


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
