"""A causal Transformer policy core over the trial, with a bounded KV cache for acting.

The Transformer baseline of in-context RL (Lu et al., NeurIPS 2023, "Structured
State Space Models for In-Context Reinforcement Learning"; cf. Laskin et al.,
2023, "In-context Reinforcement Learning with Algorithm Distillation"): each
token is one step's observation, and attention is *blocked by resets*: a token
sees only earlier tokens of its own episode (or meta-RL trial) since the last
reset, and at most `memory` of them per layer, so the acting state is finite
(the receptive field is `depth * memory` steps, as in Transformer-XL).

- Pre-LayerNorm blocks (the "identity map reordering" that Parisotto et al.,
  ICML 2020, "Stabilizing Transformers for Reinforcement Learning", found
  necessary for RL), multi-head attention and a GELU MLP.
- Positions are a learned per-head bias on the distance `0..memory` (Shaw et
  al., 2018; Raffel et al., 2020, T5): it is exact for a sliding window, where
  absolute positions of cached keys would drift.
- The state is Transformer-XL's memory (Dai et al., ACL 2019): each layer's keys
  and values of the last `memory` steps plus a validity flag per slot. A chunk
  (PPO's replay of a rollout) attends to the stored cache and to itself; keys
  from the cache carry no gradient, as with the stored state of an RNN core.

Same interface as the other cores (`domains.rl.policy_cores`): `forward_features(x,
mask, reset)`, `forward_chunk(x, state, reset)`, `init_state(batch)`,
`step(x_t, state, reset_t)`; `reset[:, t]` forgets everything before step t.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.heads import InputStem
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model

# State: (valid (B, M) bool, keys [(B, H, M, dh)] per layer, values [...] per layer); oldest slot first.
State = tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]


class TrialAttention(nn.Module):
    """Multi-head attention over [cache; chunk] with a learned bias per head and distance."""

    def __init__(self, dim: int, heads: int, memory: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.distance_bias = nn.Parameter(torch.zeros(heads, memory + 1))

    def forward(
        self,
        x: torch.Tensor,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        allowed: torch.Tensor,
        distance: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D); cache (B, H, M, dh); allowed (B, T, M+T) bool; distance (T, M+T) long in [0, M]."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        keys, values = torch.cat((cache_k, k), 2), torch.cat((cache_v, v), 2)
        bias = self.distance_bias[:, distance]  # (H, T, M+T)
        mask = torch.where(allowed.unsqueeze(1), bias, float("-inf"))
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, T, -1)), keys, values


class TrialBlock(nn.Module):
    def __init__(self, dim: int, heads: int, memory: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = TrialAttention(dim, heads, memory)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x, cache_k, cache_v, allowed, distance):
        y, keys, values = self.attn(self.norm1(x), cache_k, cache_v, allowed, distance)
        x = x + y
        return x + self.mlp(self.norm2(x)), keys, values


class TrialTransformer(SequenceBackbone):
    """Features `(B, L, C)` -> `(B, L, dim)`: `depth` causal blocks, attention blocked by resets, window `memory`."""

    recurrent = True

    def __init__(
        self,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        memory: int = 64,
        mlp_ratio: float = 2.0,
        in_features: int | None = None,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        if dim % heads:
            raise ZooError(
                f"TrialTransformer: dim={dim} is not divisible by heads={heads}; change model.kwargs.dim or heads"
            )
        if memory < 1:
            raise ZooError(
                f"TrialTransformer: memory={memory} must be >= 1 (the number of past steps a token may attend to)"
            )
        if vocab_size is None and in_features is None:
            in_features = 4
        self.memory, self.heads = memory, heads
        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        self.blocks = nn.ModuleList(TrialBlock(dim, heads, memory, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.init_head(dim, num_classes, global_pool)

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> State:
        ref = self.norm.weight
        device, dtype = device or ref.device, dtype or ref.dtype
        shape = (batch, self.heads, self.memory, self.num_features // self.heads)
        empty = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.blocks]
        return torch.zeros(batch, self.memory, dtype=torch.bool, device=device), empty, [e.clone() for e in empty]

    def _run(
        self, x: torch.Tensor, state: State, reset: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        valid, cache_k, cache_v = state
        (B, T), M = x.shape[:2], self.memory
        device = x.device
        # Segment ids: the cache is segment 0, and every reset inside the chunk starts a new one.
        seg_q = torch.zeros(B, T, dtype=torch.long, device=device) if reset is None else reset.long().cumsum(1)
        seg_k = torch.cat((torch.zeros(B, M, dtype=torch.long, device=device), seg_q), 1)
        real = torch.ones(B, T, dtype=torch.bool, device=device) if mask is None else mask
        key_ok = torch.cat((valid, real), 1)
        # Query i sits at column M + i: distance d = M + i - j, allowed for 0 <= d <= M.
        distance = M + torch.arange(T, device=device)[:, None] - torch.arange(M + T, device=device)[None, :]
        in_window = (distance >= 0) & (distance <= M)
        allowed = key_ok[:, None, :] & (seg_k[:, None, :] == seg_q[:, :, None]) & in_window
        allowed = allowed | (distance == 0)  # a token always sees itself (no empty rows, even at padding)
        h = self.stem(x)
        new_k, new_v = [], []
        for block, k, v in zip(self.blocks, cache_k, cache_v):
            h, keys, values = block(h, k, v, allowed, distance.clamp(0, M))
            new_k.append(keys[:, :, -M:])
            new_v.append(values[:, :, -M:])
        # Slots the next step may use: real tokens of the last token's segment.
        keep = key_ok & (seg_k == seg_q[:, -1:])
        return self.norm(h), (keep[:, -M:], new_k, new_v)

    def forward_chunk(
        self, x: torch.Tensor, state: State, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Features of a chunk continuing from `state` (the cache), and the cache after it."""
        return self._run(x, state, reset, None)

    def forward_features(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """From an empty cache; padded steps (`mask` False) are never attended to."""
        return self._run(x, self.init_state(x.shape[0], x.device), reset, mask)[0]

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask, reset), mask)

    def step(self, x_t: torch.Tensor, state: State, reset_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """One acting step: a chunk of length 1 (attends to the cache, then slides it by one)."""
        reset = None if reset_t is None else reset_t.unsqueeze(1)
        h, state = self._run(x_t.unsqueeze(1), state, reset, None)
        return self.step_head(h.squeeze(1)), state


@register_model
def test_trial_transformer(**kw) -> TrialTransformer:
    return TrialTransformer(**{"dim": 16, "depth": 2, "heads": 2, "memory": 5, **kw})


@register_model
def transformer_policy_small(**kw) -> TrialTransformer:
    return TrialTransformer(**{"dim": 32, "depth": 2, "heads": 4, "memory": 64, **kw})
