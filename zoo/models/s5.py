"""S5 backbone: a stack of S5 sequence layers (Smith, Warrington & Linderman, ICLR 2023).

"Simplified State Space Layers for Sequence Modeling" (arXiv:2208.04933), with the
episode resets of Lu et al., "Structured State Space Models for In-Context
Reinforcement Learning" (NeurIPS 2023): `reset` (B, L), True where an episode
starts, restarts every layer's state inside the parallel scan, so one forward
pass trains on a rollout that spans many episodes.

Layout as the official `StackedEncoderModel`: a linear (or embedding) encoder,
`depth` residual `S5Block`s, then a final norm (pre-norm stacks only; a post-norm
block already ends in one). Sizes: `s5_tiny/small/base` follow the LRA runs of
lindermanlab/S5 (base: the CIFAR run's d_model 512, ssm_size 384, 3 blocks;
small: IMDB's 256, 192, 12 blocks), `s5_rl` is popjaxrl's policy core (d_model
256, ssm_size 256, 4 layers, 1 block, full GLU, no norms, C lecun_normal).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.heads import InputStem
from zoo.layers.ssm import S5Block, apply_norm, make_norm
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


class S5Backbone(SequenceBackbone):
    """Token ids `(B, L)` or features `(B, L, C)` -> `(B, L, dim)` through `depth` S5 blocks.

    forward/forward_features take `reset` (B, L); `step` takes `reset_t` (B,).
    `bidirectional=True` makes a non-causal encoder (no `step`). The block and SSM
    arguments are those of `zoo.layers.ssm.S5Block` and `S5` (state_dim: the real
    state size, the official ssm_size; blocks: J HiPPO-N blocks).
    """

    recurrent = True

    def __init__(
        self,
        dim: int = 128,
        depth: int = 4,
        state_dim: int = 64,
        blocks: int = 1,
        activation: str = "half_glu1",
        norm: str = "layer",
        prenorm: bool = True,
        dropout: float = 0.0,
        discretization: str = "zoh",
        C_init: str = "trunc_standard_normal",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        conj_sym: bool = True,
        clip_eigs: bool = False,
        bidirectional: bool = False,
        scan_method: str = "auto",
        vocab_size: int | None = None,
        in_features: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            vocab_size = 16
        self.causal = not bidirectional
        self.recurrent = not bidirectional
        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        self.blocks = nn.ModuleList(
            S5Block(
                dim,
                state_dim,
                activation=activation,
                norm=norm,
                prenorm=prenorm,
                dropout=dropout,
                blocks=blocks,
                discretization=discretization,
                C_init=C_init,
                dt_min=dt_min,
                dt_max=dt_max,
                conj_sym=conj_sym,
                clip_eigs=clip_eigs,
                bidirectional=bidirectional,
                scan_method=scan_method,
            )
            for _ in range(depth)
        )
        self.norm = make_norm(norm if prenorm else "none", dim)  # a post-norm block already ends in one
        self.init_head(dim, num_classes, global_pool, dropout)

    def forward_features(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, reset=reset, mask=mask)
        return apply_norm(self.norm, h, mask)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask, reset), mask)

    def forward_chunk(
        self, x: torch.Tensor, state: list[torch.Tensor], reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features of a chunk that continues from `state` (as popjaxrl trains on stored hidden states).

        Returns per-token features and the state after the chunk, so chunk by chunk
        equals one long `forward_features`.
        """
        h, new_state = self.stem(x), []
        for block, block_state in zip(self.blocks, state):
            h, last = block(h, reset=reset, state=block_state, return_state=True)
            new_state.append(last)
        return apply_norm(self.norm, h), new_state

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> list[torch.Tensor]:
        """One complex state (B, state_dim/2) per layer: complex64, or complex128 for a float64 model.

        `dtype` is ignored: the state's precision follows the parameters.
        """
        return [block.init_state(batch, device) for block in self.blocks]

    def step(self, x_t: torch.Tensor, state: list[torch.Tensor], reset_t: torch.Tensor | None = None):
        """x_t: (B,) token ids or (B, C) features -> (y_t, new state); y_t equals forward(x)[:, t]."""
        h, new_state = self.stem(x_t.unsqueeze(1)).squeeze(1), []
        for block, block_state in zip(self.blocks, state):
            h, block_state = block.step(h, block_state, reset_t)
            new_state.append(block_state)
        return self.step_head(apply_norm(self.norm, h)), new_state


@register_model
def test_s5(**kw) -> S5Backbone:
    return S5Backbone(**{"dim": 32, "depth": 2, "state_dim": 16, "blocks": 2, **kw})


@register_model
def s5_tiny(**kw) -> S5Backbone:
    return S5Backbone(**{"dim": 128, "depth": 4, "state_dim": 64, "blocks": 4, **kw})


@register_model
def s5_small(**kw) -> S5Backbone:
    return S5Backbone(**{"dim": 256, "depth": 6, "state_dim": 192, "blocks": 12, **kw})


@register_model
def s5_base(**kw) -> S5Backbone:
    return S5Backbone(**{"dim": 512, "depth": 6, "state_dim": 384, "blocks": 3, **kw})


@register_model
def s5_rl(**kw) -> S5Backbone:
    defaults = {
        "dim": 256,
        "depth": 4,
        "state_dim": 256,
        "blocks": 1,
        "activation": "full_glu",
        "norm": "none",
        "C_init": "lecun_normal",
    }
    return S5Backbone(**{**defaults, **kw})
