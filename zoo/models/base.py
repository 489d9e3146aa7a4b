"""The contract every backbone in the zoo keeps.

A backbone maps `(B, L)` token ids or `(B, L, C)` features to per-token
features `(B, L, num_features)` (`forward_features`), then `forward_head` pools
them (`global_pool`, '' keeps every token) and applies the classifier `head`
(`num_classes=0` makes it the identity). `reset_classifier` swaps the head, as
in timm. Recurrent backbones also implement `init_state(batch)` and
`step(x_t, state) -> (y_t, state)`, whose outputs over time equal `forward`.

Capabilities are class attributes, read by tasks through `zoo.registry.model_class(name)`
without building a model (never from a module's file name):

- `recurrent`: `init_state`/`step` exist and equal `forward` position by position.
- `causal`: position t sees only positions <= t.
- `resettable`: `forward(x, reset=...)` and `step(x_t, state, reset_t)` take episode starts
  `(B, L)` / `(B,)` and restart the state there (the RL step contract; policy cores also
  give `forward_chunk(x, state, reset) -> (y, state)` to continue a rollout from a state).
- `forecaster`: how a forecasting task calls the model: "encoder_decoder" (Informer),
  "window" (a whole input window to a whole horizon), "autoregressive" (AR-Net), or None
  (a sequence backbone under the generic head).
- `closed_form`: fitted without gradients by the task's `fit_closed_form` (baselines).
- `takes_season`: the forecasting task fills the `season` kwarg with the data's seasonal
  period when the config leaves it None (seasonal_naive).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.layers.heads import POOL_MODES, pool_sequence


class SequenceBackbone(nn.Module):
    """Base class: subclasses build their layers, call `init_head`, and implement `forward_features`."""

    #: name of the classifier submodule; hub loading may re-initialise it when sizes differ.
    head_name = "head"
    #: whether `init_state`/`step` are implemented (checked by the registry-wide tests).
    recurrent = False
    #: whether position t only sees positions <= t.
    causal = True
    #: whether forward/step take `reset` (episode starts) and restart the state there.
    resettable = False
    #: how a forecasting task calls it (see the module docstring); None: the generic head.
    forecaster: str | None = None
    #: fitted without gradients (`fit_closed_form`), e.g. a forecasting baseline.
    closed_form = False
    #: the forecasting task passes the data's seasonal period as `season` when none is given.
    takes_season = False

    def init_head(self, num_features: int, num_classes: int = 0, global_pool: str = "", drop_rate: float = 0.0) -> None:
        if global_pool not in POOL_MODES:
            raise ValueError(f"global_pool={global_pool!r}; choose one of {POOL_MODES}")
        self.num_features = num_features
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(
        self, features: torch.Tensor, mask: torch.Tensor | None = None, pre_logits: bool = False
    ) -> torch.Tensor:
        features = pool_sequence(features, mask, self.global_pool)
        features = self.head_drop(features)
        return features if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask), mask)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh one of width `num_classes` (0: identity)."""
        if global_pool is not None:
            if global_pool not in POOL_MODES:
                raise ValueError(f"global_pool={global_pool!r}; choose one of {POOL_MODES}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = next(self.parameters())
        self.head = (
            nn.Linear(self.num_features, num_classes).to(ref.device, ref.dtype) if num_classes > 0 else nn.Identity()
        )
        if getattr(self, "zoo_config", None):
            self.zoo_config["kwargs"].update(num_classes=num_classes, global_pool=self.global_pool)

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        """A valid random input, for tests and benchmarks (token ids or features, by the stem)."""
        from zoo.layers.heads import InputStem

        stem = next((m for m in self.modules() if isinstance(m, InputStem)), None)
        if stem is None:
            raise NotImplementedError(f"{type(self).__name__} has no InputStem; override example_inputs")
        if stem.vocab_size:
            return torch.randint(0, stem.vocab_size, (batch, length))
        return torch.randn(batch, length, stem.in_features)

    # Recurrent inference. `step` returns what `forward` returns at one position.
    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} is not recurrent")

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError(f"{type(self).__name__} is not recurrent")

    def step_head(self, features_t: torch.Tensor) -> torch.Tensor:
        """Head for one recurrent step: per-token, so pooling does not apply."""
        return self.head(self.head_drop(features_t))


# ----------------------------------------------------------------------------- next-token models


def has_lm_head(backbone: nn.Module) -> bool:
    """Whether next-token logits come from the backbone's own `lm_logits` (HyenaDNA's tied embedding,
    Bio-xLSTM's LM head) rather than from its classifier head."""
    return callable(getattr(backbone, "lm_logits", None)) and getattr(backbone, "num_classes", 0) == 0


def token_logits(backbone: nn.Module, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token vocabulary logits from `forward_features` (or `step`) output, through whichever head the model has."""
    return backbone.lm_logits(features) if has_lm_head(backbone) else backbone.forward_head(features, mask)
