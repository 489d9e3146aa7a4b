"""The S5 policy core of Lu et al. (NeurIPS 2023), with popjaxrl's nonlinear observation encoder.

popjaxrl's ActorCriticS5 (and its GRU) feed the memory core through an MLP
encoder (Dense, leaky ReLU, Dense, leaky ReLU); the zoo's `s5_rl` starts with a
single linear map. That matters for S5 more than for an RNN: S5's state is a
*linear* function of its inputs, so with a linear stem the first layer cannot
gate what it stores (e.g. "this card, only at the episode's first step") and
memorising has to wait for the second layer. On a supervised probe of
RepeatFirst (`benchmarks/studies/rl_memory_probe.py`) the encoder cut the updates S5
needs from >500 to 274-379, three seeds (docs/rl.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.heads import InputStem
from zoo.models.s5 import S5Backbone, s5_rl
from zoo.registry import register_model


class EncoderStem(InputStem):
    """Linear -> leaky ReLU -> Linear -> leaky ReLU (popjaxrl's encoder, at width `dim`)."""

    def __init__(self, dim: int, in_features: int):
        super().__init__(dim, in_features=in_features)
        self.hidden = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.hidden(F.leaky_relu(super().forward(x))))


def with_encoder(backbone: S5Backbone, dim: int, in_features: int) -> S5Backbone:
    backbone.stem = EncoderStem(dim, in_features)
    return backbone


@register_model
def test_s5_policy(**kw) -> S5Backbone:
    return s5_policy_small(**{"dim": 16, "state_dim": 8, "depth": 2, **kw})


@register_model
def s5_policy_small(**kw) -> S5Backbone:
    """`s5_rl` (full GLU, no norms, lecun_normal C) behind the encoder; observations only (`in_features`)."""
    kw = {"dim": 46, "state_dim": 46, "depth": 2, "in_features": 4, **kw}
    return with_encoder(s5_rl(**kw), kw["dim"], kw["in_features"])
