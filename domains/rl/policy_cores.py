"""Baseline policy cores for RL: GRU, LSTM and a memoryless MLP, as zoo backbones.

The recurrent baselines of Lu et al. (NeurIPS 2023, "Structured State Space
Models for In-Context Reinforcement Learning"): an encoder (linear + ReLU)
followed by a GRU (Cho et al., 2014) or LSTM (Hochreiter & Schmidhuber, 1997)
cell; the MLP has no memory at all and shows which tasks need it.

Every core keeps the same interface as `S5Backbone`, so the agent treats them
alike: `forward_features(x, mask, reset)`, `forward_chunk(x, state, reset) ->
(features, state)` continuing from a stored state, `init_state(batch)`,
`step(x_t, state, reset_t)`. `reset[:, t]` zeroes the state before step t. An
RNN has no parallel form with resets, so its chunk forward is a loop over time
(the cost the paper's S5 removes). Importing this module also registers the
Transformer over the trial (`domains.rl.trial_transformer`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.layers.heads import InputStem
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


def _keep(reset_t: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    return h if reset_t is None else h * (~reset_t).unsqueeze(-1).to(h.dtype)


class RecurrentCore(SequenceBackbone):
    """Linear+ReLU encoder, then one recurrent cell (`cell="gru"` or `"lstm"`)."""

    recurrent = True

    def __init__(
        self,
        dim: int = 128,
        cell: str = "gru",
        in_features: int | None = None,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            in_features = 4
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell={cell!r}; choose 'gru' or 'lstm'")
        self.cell_type = cell
        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        self.cell = nn.GRUCell(dim, dim) if cell == "gru" else nn.LSTMCell(dim, dim)
        self.init_head(dim, num_classes, global_pool)

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        ref = self.cell.weight_hh
        zeros = torch.zeros(batch, self.num_features, device=device or ref.device, dtype=dtype or ref.dtype)
        return zeros if self.cell_type == "gru" else (zeros, zeros.clone())

    def _cell(self, u_t: torch.Tensor, state: Any, reset_t: torch.Tensor | None) -> tuple[torch.Tensor, Any]:
        if self.cell_type == "gru":
            h = self.cell(u_t, _keep(reset_t, state))
            return h, h
        h, c = self.cell(u_t, (_keep(reset_t, state[0]), _keep(reset_t, state[1])))
        return h, (h, c)

    def forward_chunk(
        self, x: torch.Tensor, state: Any, reset: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Features of a chunk continuing from `state`, and the state after it.

        Padded steps (`mask` False) carry the state over unchanged, so right padding
        leaves the real positions' outputs equal to the unpadded ones.
        """
        u = torch.relu(self.stem(x))
        outputs = []
        for t in range(u.shape[1]):
            h, new_state = self._cell(u[:, t], state, None if reset is None else reset[:, t])
            if mask is not None:
                keep = mask[:, t].unsqueeze(-1)
                new_state = (
                    torch.where(keep, new_state, state)
                    if self.cell_type == "gru"
                    else tuple(torch.where(keep, n, o) for n, o in zip(new_state, state))
                )
                h = new_state if self.cell_type == "gru" else new_state[0]
            state = new_state
            outputs.append(h)
        return torch.stack(outputs, dim=1), state

    def forward_features(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_chunk(x, self.init_state(x.shape[0], x.device), reset, mask)[0]

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask, reset), mask)

    def step(self, x_t: torch.Tensor, state: Any, reset_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        u_t = torch.relu(self.stem(x_t.unsqueeze(1)).squeeze(1))
        h, state = self._cell(u_t, state, reset_t)
        return self.step_head(h), state


class MLPCore(SequenceBackbone):
    """Per-step MLP (tanh, `depth` layers): no memory, the control for memory tasks."""

    recurrent = True  # a trivially recurrent core: empty state, step == forward

    def __init__(
        self,
        dim: int = 64,
        depth: int = 2,
        in_features: int | None = None,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            in_features = 4
        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth - 1))
        self.init_head(dim, num_classes, global_pool)

    def forward_features(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        for layer in self.layers:
            h = torch.tanh(layer(h))
        return h

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask), mask)

    def forward_chunk(self, x: torch.Tensor, state: Any, reset: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        return self.forward_features(x), state

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> list:
        return []

    def step(self, x_t: torch.Tensor, state: Any, reset_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        return self.step_head(self.forward_features(x_t.unsqueeze(1)).squeeze(1)), state


@register_model
def test_policy_cores(**kw) -> RecurrentCore:
    return RecurrentCore(**{"dim": 32, "cell": "gru", **kw})


@register_model
def gru_policy_small(**kw) -> RecurrentCore:
    return RecurrentCore(**{"dim": 128, "cell": "gru", **kw})


@register_model
def lstm_policy_small(**kw) -> RecurrentCore:
    return RecurrentCore(**{"dim": 128, "cell": "lstm", **kw})


@register_model
def mlp_policy_small(**kw) -> MLPCore:
    return MLPCore(**{"dim": 64, "depth": 2, **kw})


def core_config(core: str) -> tuple[str, dict]:
    """(registry name, kwargs) of `model=<core>` (domains/rl/configs/model/<core>.yaml), for scripts and benchmarks."""
    from importlib import resources

    from omegaconf import OmegaConf

    path = resources.files("domains.rl") / "configs" / "model" / f"{core}.yaml"
    if not path.is_file():
        raise ValueError(f"no policy core config {core!r}; choose one of s5, gru, lstm, mlp, transformer")
    cfg = OmegaConf.load(str(path))
    return str(cfg.name), dict(cfg.kwargs)
