"""LSTM baseline: a stack of classic LSTM layers (Hochreiter & Schmidhuber, Neural Comput. 1997).

The recurrent baseline that xLSTM and the state-space families are compared
against; as a SMILES language model it is the char-RNN of Segler et al.,
"Generating Focused Molecule Libraries for Drug Discovery with Recurrent Neural
Networks" (ACS Cent. Sci. 2018). Training runs the fused `nn.LSTM` kernel over
the whole sequence; `step()` advances `(h, c)` one token at a time for
constant-memory sampling and equals `forward` position by position.

Padded positions get a zero input, so outputs never depend on what the padding
holds; with right padding (the usual case) real positions see no padding at all.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.heads import InputStem
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


class LSTM(SequenceBackbone):
    recurrent = True
    causal = True

    def __init__(
        self,
        dim: int = 256,
        depth: int = 2,
        vocab_size: int | None = None,
        in_features: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
        dropout: float = 0.0,
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            vocab_size = 16
        self.dim, self.depth = dim, depth
        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        self.lstm = nn.LSTM(dim, dim, num_layers=depth, batch_first=True, dropout=dropout if depth > 1 else 0.0)
        self.norm = nn.LayerNorm(dim)
        self.init_head(dim, num_classes, global_pool, dropout)

    def _embed(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.stem(x)
        return h if mask is None else h * mask.unsqueeze(-1).to(h.dtype)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.lstm(self._embed(x, mask))
        return self.norm(out)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ref = next(self.parameters())
        zeros = torch.zeros(self.depth, batch, self.dim, device=device or ref.device, dtype=dtype or ref.dtype)
        return zeros, zeros.clone()

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x_t: `(B,)` token ids or `(B, C)` features -> per-token output `(B, num_classes or dim)`."""
        out, state = self.lstm(self.stem(x_t.unsqueeze(1)), state)
        return self.step_head(self.norm(out[:, 0])), state


@register_model
def test_lstm(**kw) -> LSTM:
    return LSTM(**{"dim": 64, "depth": 2, **kw})


@register_model
def lstm_tiny(**kw) -> LSTM:
    return LSTM(**{"dim": 256, "depth": 2, **kw})


@register_model
def lstm_small(**kw) -> LSTM:
    return LSTM(**{"dim": 512, "depth": 3, **kw})


@register_model
def lstm_base(**kw) -> LSTM:
    return LSTM(**{"dim": 1024, "depth": 3, **kw})
