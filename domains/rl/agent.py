"""Actor-critic agent: a zoo backbone (the policy core) plus actor and critic heads.

As in Lu et al. (NeurIPS 2023): one shared sequence core (S5 by default, a
GRU/LSTM/MLP baseline, or a Transformer over the trial) whose features feed a
categorical actor MLP and a value MLP. The core sees episode starts as `reset`
flags, so training on a rollout that spans several episodes equals acting step
by step (tested).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError


def _mlp(inp: int, hidden: int, out: int, out_gain: float) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(inp, hidden), nn.Tanh(), nn.Linear(hidden, out))
    # Orthogonal init (Engstrom et al., 2020, "Implementation matters in deep policy gradients").
    for layer, gain in ((net[0], math.sqrt(2)), (net[2], out_gain)):
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return net


class ActorCriticHeads(nn.Module):
    def __init__(self, num_features: int, num_actions: int, hidden: int = 64):
        super().__init__()
        self.actor = _mlp(num_features, hidden, num_actions, 0.01)
        self.critic = _mlp(num_features, hidden, 1, 1.0)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(features), self.critic(features).squeeze(-1)


def index_state(state: Any, index: torch.Tensor) -> Any:
    """Select environments (dim 0) from a recurrent state: tensor, list/tuple of them, or empty."""
    if isinstance(state, torch.Tensor):
        return state[index]
    return type(state)(index_state(s, index) for s in state)


class Agent:
    """Binds a backbone and heads (both owned by a LightningModule) into act/evaluate."""

    def __init__(self, backbone: nn.Module, heads: ActorCriticHeads):
        for method in ("forward_chunk", "step", "init_state"):
            if not hasattr(backbone, method) or not getattr(backbone, "recurrent", False):
                raise ZooError(
                    f"{type(backbone).__name__} can't act step by step with episode resets "
                    f"(needs {method}); use model=s5, gru, lstm, mlp or transformer"
                )
        self.backbone, self.heads = backbone, heads

    def initial_state(self, batch: int, device: torch.device | None = None) -> Any:
        return self.backbone.init_state(batch, device)

    def act(self, obs: torch.Tensor, state: Any, reset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """One step for every env: obs (B, D), reset (B,) True at an episode's first step."""
        features, state = self.backbone.step(obs, state, reset)
        logits, value = self.heads(features)
        return logits, value, state

    def evaluate(self, obs: torch.Tensor, reset: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole chunk: obs (B, T, D), reset (B, T), starting from `state` -> logits (B, T, A), values (B, T)."""
        features, _ = self.backbone.forward_chunk(obs, state, reset)
        return self.heads(features)


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Categorical samples by the Gumbel-max trick (one uniform draw per logit, no multinomial)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-10, 1.0)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)
