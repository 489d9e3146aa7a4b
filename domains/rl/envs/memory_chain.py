"""bsuite's MemoryChain, vectorised in torch.

Osband et al. (ICLR 2020), "Behaviour Suite for Reinforcement Learning": a
context bit is shown at the first step, a query at step `memory_length - 1`,
and the agent is rewarded +1/-1 for recalling the queried context bit at the
end. This follows gymnax's `MemoryChain-bsuite` exactly (tested step by step),
including its convention that `step` returns the observation of the state
*before* the transition.
"""

from __future__ import annotations

import torch

from domains.rl.envs.base import FunctionalEnv, State


class MemoryChain(FunctionalEnv):
    name = "MemoryChain-bsuite"
    num_actions = 2

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        memory_length: int = 5,
        num_bits: int = 1,
        max_steps: int = 1000,
    ):
        super().__init__(num_envs, device)
        self.memory_length, self.num_bits = memory_length, num_bits
        self.obs_dim = num_bits + 2
        self.max_episode_steps = min(max_steps, memory_length + 1)
        self.max_steps = max_steps

    def init_state(self, n: int) -> State:
        context = (self.uniform(n, self.num_bits) < 0.5).long()
        query = torch.randint(0, self.num_bits, (n,), generator=self.generator, device=self.device)
        return {"context": context, "query": query, "time": torch.zeros(n, dtype=torch.long, device=self.device)}

    def observe(self, state: State) -> torch.Tensor:
        time = state["time"]
        remaining = 1 - time.float() / self.memory_length
        query = torch.where(time == self.memory_length - 1, state["query"], 0).float()
        context = torch.where((time == 0).unsqueeze(1), 2 * state["context"] - 1, 0).float()
        return torch.cat((remaining.unsqueeze(1), query.unsqueeze(1), context), dim=1)

    def transition(self, state: State, action: torch.Tensor):
        obs = self.observe(state)
        answered = state["time"] >= self.memory_length
        target = state["context"].gather(1, state["query"].unsqueeze(1)).squeeze(1)
        correct = (action == target).float()
        reward = answered.float() * (2 * correct - 1)
        state = {**state, "time": state["time"] + 1}
        terminated = state["time"] - 1 == self.memory_length
        return obs, state, reward, terminated, state["time"] >= self.max_steps
