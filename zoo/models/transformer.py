"""Transformer baseline: pre-norm blocks on PyTorch SDPA with rotary positions.

The reference point every long-sequence family is compared against (Vaswani et
al., "Attention Is All You Need", NeurIPS 2017; RoPE from Su et al., 2021).
Causal by default; `causal=False` gives the bidirectional (BERT-style) encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.attention import TransformerBlock
from zoo.layers.heads import InputStem
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


class Transformer(SequenceBackbone):
    def __init__(
        self,
        dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        causal: bool = True,
        vocab_size: int | None = None,
        in_features: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
        dropout: float = 0.0,
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            vocab_size = 16
        self.causal = causal
        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio, causal, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.init_head(dim, num_classes, global_pool, dropout)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)


@register_model
def test_transformer(**kw) -> Transformer:
    return Transformer(**{"dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0, **kw})


@register_model
def transformer_tiny(**kw) -> Transformer:
    return Transformer(**{"dim": 128, "depth": 4, "num_heads": 4, **kw})


@register_model
def transformer_small(**kw) -> Transformer:
    return Transformer(**{"dim": 256, "depth": 6, "num_heads": 8, **kw})


@register_model
def transformer_base(**kw) -> Transformer:
    return Transformer(**{"dim": 512, "depth": 8, "num_heads": 8, **kw})
