"""Input stems and output heads shared by every sequence backbone.

Inputs are either token ids `(B, L)` (a vocabulary) or features `(B, L, C)`;
`InputStem` maps both to `(B, L, D)`. Outputs are per-token features `(B, L, D)`
that `pool_sequence` reduces to `(B, D)` for sequence-level tasks.

Padding masks are `(B, L)` booleans, True on real tokens.
"""

from __future__ import annotations

import torch
from torch import nn

POOL_MODES = ("", "mean", "max", "last", "first", "cls")


class InputStem(nn.Module):
    """Token embedding (`vocab_size`) or linear projection (`in_features`) to width `dim`."""

    def __init__(
        self, dim: int, vocab_size: int | None = None, in_features: int | None = None, padding_idx: int | None = None
    ):
        super().__init__()
        if (vocab_size is None) == (in_features is None):
            raise ValueError("give exactly one of vocab_size (token inputs) or in_features (real-valued inputs)")
        self.vocab_size, self.in_features = vocab_size, in_features
        self.proj = (
            nn.Embedding(vocab_size, dim, padding_idx=padding_idx) if vocab_size else nn.Linear(in_features, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.vocab_size and x.is_floating_point():
            raise ValueError(f"this model takes token ids (B, L) of dtype long, got float {tuple(x.shape)}")
        if self.in_features and x.dim() != 3:
            raise ValueError(f"this model takes features (B, L, {self.in_features}), got {tuple(x.shape)}")
        return self.proj(x)


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True per row; works for left and right padding."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, positions, -1).amax(dim=1).clamp_min(0)


def first_valid_index(mask: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, positions, mask.shape[1]).amin(dim=1).clamp_max(mask.shape[1] - 1)


def pool_sequence(features: torch.Tensor, mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Reduce `(B, L, D)` to `(B, D)`: mean/max over valid tokens, last/first valid token.

    `cls` is `first` (a classification token prepended by the tokenizer).
    """
    if mode == "":
        return features
    batch = torch.arange(features.shape[0], device=features.device)
    if mask is None:
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    if mode == "mean":
        weights = mask.unsqueeze(-1).to(features.dtype)
        return (features * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    if mode == "max":
        return features.masked_fill(~mask.unsqueeze(-1), torch.finfo(features.dtype).min).amax(1)
    if mode == "last":
        return features[batch, last_valid_index(mask)]
    if mode in ("first", "cls"):
        return features[batch, first_valid_index(mask)]
    raise ValueError(f"unknown pooling {mode!r}; choose one of {POOL_MODES}")
