"""Mamba backbone: a stack of pre-norm residual Mamba blocks, as mamba-ssm's `MixerModel`.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (2023),
arXiv:2312.00752. The layout follows `mamba_ssm.models.mixer_seq_simple.MixerModel`
and `mamba_ssm.modules.block.Block` (Add -> Norm -> Mixer, residual optionally kept
in fp32, final `norm_f`), with the same submodule names (`layers.{i}.norm`,
`layers.{i}.mixer.*`, `norm_f`), so official checkpoints map key for key:
`backbone.embedding` -> `stem.proj`, `backbone.layers` -> `layers`, `backbone.norm_f`
-> `norm_f`, and the tied `lm_head` -> `head` (bias zero) with `num_classes=vocab`.

`mamba_130m` is the configuration of state-spaces/mamba-130m (d_model 768, 24
layers, vocabulary 50277 padded to 50280, RMSNorm, fp32 residual); nothing is
downloaded here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.layers.heads import InputStem
from zoo.layers.mamba import Mamba, MambaState
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


class MambaBlock(nn.Module):
    """mamba_ssm's `Block` without an MLP: residual += hidden; hidden = mixer(norm(residual))."""

    def __init__(
        self, d_model: int, rms_norm: bool, norm_epsilon: float, residual_in_fp32: bool, layer_idx: int, **mixer_kw
    ):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.norm = nn.RMSNorm(d_model, eps=norm_epsilon) if rms_norm else nn.LayerNorm(d_model, eps=norm_epsilon)
        self.mixer = Mamba(d_model, layer_idx=layer_idx, **mixer_kw)

    def _add_norm(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        residual = hidden if residual is None else hidden + residual
        normed = self.norm(residual.to(self.norm.weight.dtype))
        return normed, residual.float() if self.residual_in_fp32 else residual

    def forward(self, hidden, residual=None, mask=None, reset=None) -> tuple[torch.Tensor, torch.Tensor]:
        normed, residual = self._add_norm(hidden, residual)
        return self.mixer(normed, mask, reset), residual

    def step(self, hidden, residual, state: MambaState, reset_t=None) -> tuple[torch.Tensor, torch.Tensor, MambaState]:
        normed, residual = self._add_norm(hidden, residual)
        out, state = self.mixer.step(normed, state, reset_t)
        return out, residual, state


class MambaBackbone(SequenceBackbone):
    """Token or feature sequences -> per-token features through `n_layer` Mamba blocks.

    forward/forward_features also take `reset` (B, L) bool, True where a new
    sequence starts (episode boundaries); `step` takes the matching `reset_t` (B,).
    """

    recurrent = True

    def __init__(
        self,
        d_model: int = 128,
        n_layer: int = 4,
        d_state: int = 16,
        d_conv: int = 4,
        expand: float = 2,
        dt_rank: int | str = "auto",
        rms_norm: bool = True,
        norm_epsilon: float = 1e-5,
        residual_in_fp32: bool = True,
        vocab_size: int | None = None,
        in_features: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            vocab_size = 16
        self.stem = InputStem(d_model, vocab_size=vocab_size, in_features=in_features)
        mixer_kw = {"d_state": d_state, "d_conv": d_conv, "expand": expand, "dt_rank": dt_rank}
        self.layers = nn.ModuleList(
            MambaBlock(d_model, rms_norm, norm_epsilon, residual_in_fp32, i, **mixer_kw) for i in range(n_layer)
        )
        self.norm_f = nn.RMSNorm(d_model, eps=norm_epsilon) if rms_norm else nn.LayerNorm(d_model, eps=norm_epsilon)
        self.init_head(d_model, num_classes, global_pool, drop_rate)
        self._init_weights(n_layer)

    def _init_weights(self, n_layer: int) -> None:
        # mixer_seq_simple._init_weights: zero biases (not dt_proj's), N(0, 0.02) embeddings, and
        # GPT-2's 1/sqrt(n_layer) scaling of the projections that write into the residual stream.
        for module in self.modules():
            if (
                isinstance(module, nn.Linear)
                and module.bias is not None
                and not getattr(module.bias, "_no_reinit", False)
            ):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for layer in self.layers:
            nn.init.kaiming_uniform_(layer.mixer.out_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                layer.mixer.out_proj.weight /= math.sqrt(n_layer)

    def forward_features(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden, residual = self.stem(x), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual, mask, reset)
        residual = hidden + residual
        return self.norm_f(residual.to(self.norm_f.weight.dtype))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask, reset), mask)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> list[MambaState]:
        return [layer.mixer.init_state(batch, device, dtype) for layer in self.layers]

    def step(self, x_t: torch.Tensor, state: list[MambaState], reset_t: torch.Tensor | None = None):
        """x_t: (B,) token ids or (B, C) features -> (y_t (B, num_classes or d_model), new state)."""
        hidden, residual, new_state = self.stem(x_t.unsqueeze(1)).squeeze(1), None, []
        for layer, layer_state in zip(self.layers, state):
            hidden, residual, layer_state = layer.step(hidden, residual, layer_state, reset_t)
            new_state.append(layer_state)
        residual = hidden + residual
        return self.step_head(self.norm_f(residual.to(self.norm_f.weight.dtype))), new_state


@register_model
def test_mamba(**kw) -> MambaBackbone:
    return MambaBackbone(**{"d_model": 32, "n_layer": 2, "d_state": 8, **kw})


@register_model
def mamba_tiny(**kw) -> MambaBackbone:
    return MambaBackbone(**{"d_model": 128, "n_layer": 4, **kw})


@register_model
def mamba_small(**kw) -> MambaBackbone:
    return MambaBackbone(**{"d_model": 256, "n_layer": 8, **kw})


@register_model
def mamba_130m(**kw) -> MambaBackbone:
    """state-spaces/mamba-130m: 24 x d_model 768, vocabulary 50277 padded to a multiple of 8."""
    vocab = {} if "in_features" in kw else {"vocab_size": 50280}
    return MambaBackbone(**{"d_model": 768, "n_layer": 24, "rms_norm": True, "residual_in_fp32": True, **vocab, **kw})
