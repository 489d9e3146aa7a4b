"""Association: the base task of an in-context meta-RL test whose projection carries information.

Alone it is trivial: an episode shows a cue (one-hot of `num_cues`) for two
steps; the action at the first step (the *answer* step) earns 1 if it equals
the cue, else 0; the action at the second (the *feedback* step) earns nothing,
and there the environment reveals the right answer (`revealed_action`). A
memoryless policy reads the cue and always wins.

Under `meta/projected-Association` (`ProjectedTrials` with `feedback="answer"`)
the cue reaches the agent only through the trial's random Gaussian projection
and the actions through the trial's permutation, so which projected vector
calls for which action is a random bijection, new in every trial. The revealed
answer is shown in the agent's own action coordinates at the feedback step,
beside the same projected cue: the agent can learn the bijection in context,
one cue at a time, and its return rises across the trial. The cue vectors of
held-out projections are new continuous vectors, never seen in training.

A memoryless policy is at chance, provably: at an answer step it sees the
projected cue `P[c]` and an empty feedback slot; `P`'s rows are i.i.d. Gaussian
and independent of the cue `c` and of the permutation, so `P[c]` is
independent of the right agent action, which is uniform over the actions;
and the agent's own earlier actions never change what it sees. Every policy
without memory is therefore right with probability exactly `1 / num_cues` in
every episode of a trial (tested empirically in tests/test_rl_meta_association.py).

The feedback step pairs the revealed answer with its cue in one observation,
as in one-shot learning with memory-augmented networks (Santoro et al., 2016,
who show the label one step later); the setting is Lu et al.'s (NeurIPS 2023,
"Structured State Space Models for In-Context Reinforcement Learning") and the
trial structure that of RL^2 (Duan et al., 2016) and Wang et al. (2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domains.rl.envs.base import FunctionalEnv, State


def best_accuracy(num_cues: int, episodes: int) -> list[float]:
    """Expected return of each episode of a trial for the best in-context learner (1 / num_cues: a memoryless one).

    It answers a cue it has seen revealed, and otherwise guesses among the actions not yet
    revealed for another cue (the mapping is a bijection). With d distinct cues seen before
    episode j it is right with probability min(d + 1, k) / k; d follows the occupancy chain.
    """
    k, dist, out = num_cues, [1.0] + [0.0] * num_cues, []  # dist[d] = P(d distinct cues seen)
    for _ in range(episodes):
        out.append(sum(p * min(d + 1, k) / k for d, p in enumerate(dist)))
        dist = [dist[d] * d / k + (dist[d - 1] * (k - d + 1) / k if d else 0.0) for d in range(k + 1)]
    return out


class Association(FunctionalEnv):
    name = "Association"
    max_episode_steps = 2

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_cues: int = 4):
        super().__init__(num_envs, device)
        self.obs_dim = self.num_actions = int(num_cues)

    def init_state(self, n: int) -> State:
        cue = torch.randint(0, self.num_actions, (n,), generator=self.generator, device=self.device)
        return {"cue": cue, "time": torch.zeros(n, dtype=torch.long, device=self.device)}

    def observe(self, state: State) -> torch.Tensor:
        return F.one_hot(state["cue"], self.num_actions).float()

    def revealed_action(self, state: State) -> torch.Tensor:
        """The right (environment) action shown in this state's observation: the cue at feedback steps, else -1."""
        return torch.where(state["time"] == 1, state["cue"], -1)

    def transition(self, state: State, action: torch.Tensor):
        answer_step = state["time"] == 0
        reward = ((action == state["cue"]) & answer_step).float()
        time = state["time"] + 1
        state = {"cue": state["cue"], "time": time}
        terminated = time >= self.max_episode_steps
        return self.observe(state), state, reward, terminated, torch.zeros_like(terminated)
