"""AR-Net: an auto-regressive model fitted as a neural network, with sparse coefficients.

Triebe, Laptev, Rajagopal, "AR-Net: A simple Auto-Regressive Neural Network for
time-series", arXiv:1911.12436 (2019); official code ourownstory/AR-Net.

The first layer is a linear map from the last p lags to `n_forecasts` outputs, so its
weights are the AR coefficients (`ar_coefficients()`, lag 1 first). Optional hidden
layers (ReLU) trade that interpretability for capacity. The paper's sparsity
regulariser R(theta) = mean_i 2 / (1 + exp(-c1 |theta_i|^(1/c2))) - 1 is applied to the
first layer with weight lambda(s) = c_lambda (1/s - 1), s the expected sparsity and
c_lambda ~ noise std / 100; lambda ramps up quadratically over training
(`sparsity_lambda`, as in the official code's `SparsifyAR`). c1 = c2 = 2 by default, the
official code's defaults: the paper's c1 = c2 = 3 has a slope near zero steep enough that
Adam keeps the zero lags oscillating (docs/timeseries.md, AR-Net's sparse study).

As a sequence backbone, `forward_features` applies the AR layer causally at every
position (a Conv1d of width p over the zero-left-padded series), so position t
forecasts t+1..t+n_forecasts from the p values ending at t.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


def sparsity_regularizer(weights: torch.Tensor, c1: float = 2.0, c2: float = 2.0) -> torch.Tensor:
    """R(theta): near-L0 penalty with a steep slope at 0 that flattens for large |theta|.

    |theta|^(1/c2) has an infinite slope at 0, so a weight that lands exactly on 0 would
    get a NaN gradient (inf x sign(0)) and spread it through the optimiser; there the
    gradient is 0, a subgradient that keeps the weight at the penalty's minimum.
    """
    magnitude = weights.abs()
    nonzero = magnitude > 0
    root = torch.where(nonzero, torch.where(nonzero, magnitude, 1.0).pow(1.0 / c2), 0.0)
    return (2.0 / (1.0 + torch.exp(-c1 * root)) - 1.0).mean()


def sparsity_lambda(
    progress: float,
    sparsity: float | None,
    noise_std: float = 1.0,
    strength: float = 0.01,
    start: float = 0.0,
    full: float = 0.5,
) -> float:
    """lambda at `progress` in [0, 1] of training: 0 before `start`, quadratic ramp, lambda_max after `full`.

    lambda_max = strength * noise_std * (1/sparsity - 1); `sparsity=None` or 1 disables it.
    """
    if sparsity is None:
        return 0.0
    if not 0.0 < sparsity <= 1.0:
        raise ZooError(f"AR-Net sparsity={sparsity}; give the expected fraction of non-zero lags in (0, 1]")
    lam_max = strength * noise_std * (1.0 / sparsity - 1.0)
    ramp = (progress - start) / max(full - start, 1e-12)
    return 0.0 if ramp <= 0 else lam_max * min(ramp, 1.0) ** 2


class ARNet(SequenceBackbone):
    """AR-Net over p lags of `in_features` channels; outputs `n_forecasts` steps."""

    causal = True
    #: how the timeseries domain drives this model: `forecast(history)`, one channel at a time.
    forecaster = "autoregressive"

    def __init__(
        self,
        ar_order: int = 3,
        n_forecasts: int = 1,
        hidden_sizes: tuple[int, ...] | list[int] = (),
        in_features: int | None = None,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
        dropout: float = 0.0,
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            in_features = 1
        self.ar_order, self.n_forecasts = ar_order, n_forecasts
        # Token inputs get a learned value per token and channel; the AR runs over those values.
        self.token_values = nn.Embedding(vocab_size, in_features or 1) if vocab_size else None
        self.in_features = in_features or 1
        widths = [*hidden_sizes, n_forecasts]
        self.ar = nn.Linear(ar_order * self.in_features, widths[0])
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.init_head(n_forecasts, num_classes, global_pool, dropout)

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        if self.token_values is not None:
            return torch.randint(0, self.token_values.num_embeddings, (batch, length))
        return torch.randn(batch, length, self.in_features)

    def _values(self, x: torch.Tensor) -> torch.Tensor:
        if self.token_values is not None:
            if x.is_floating_point():
                raise ValueError(f"this model takes token ids (B, L), got float {tuple(x.shape)}")
            return self.token_values(x)
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"AR-Net takes (B, L, {self.in_features}) values, got {tuple(x.shape)}")
        return x

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            h = layer(F.relu(h))
        return h

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        values = self._values(x)
        if mask is not None:
            values = values * mask.unsqueeze(-1).to(values.dtype)  # padded steps read as the zero history
        # Linear weight (out, p*C) laid out time-major -> conv kernel (out, C, p), oldest lag first.
        kernel = self.ar.weight.view(-1, self.ar_order, self.in_features).transpose(1, 2)
        padded = F.pad(values.transpose(1, 2), (self.ar_order - 1, 0))
        return self._mlp(F.conv1d(padded, kernel, self.ar.bias).transpose(1, 2))

    def forecast(self, history: torch.Tensor) -> torch.Tensor:
        """`(B, L >= p, in_features)` -> `(B, n_forecasts)` from the last p steps."""
        if history.shape[1] < self.ar_order:
            raise ZooError(f"AR-Net needs at least ar_order={self.ar_order} past steps, got {history.shape[1]}")
        window = self._values(history)[:, -self.ar_order :].reshape(history.shape[0], -1)
        return self._mlp(self.ar(window))

    def ar_coefficients(self) -> torch.Tensor:
        """First-layer weights as `(n_out, p, in_features)` with lag 1 (the newest value) first."""
        return self.ar.weight.detach().view(-1, self.ar_order, self.in_features).flip(1)

    def regularizer(self, c1: float = 2.0, c2: float = 2.0) -> torch.Tensor:
        return sparsity_regularizer(self.ar.weight, c1, c2)


@register_model
def test_arnet(**kw) -> ARNet:
    return ARNet(**{"ar_order": 8, "n_forecasts": 2, "hidden_sizes": [16], **kw})


@register_model
def arnet_linear(**kw) -> ARNet:
    """The paper's AR-Net: a single linear layer (its weights are the AR coefficients)."""
    return ARNet(**kw)


@register_model
def arnet_mlp(**kw) -> ARNet:
    """AR-Net with two hidden layers of 64 units (the paper's Fig. 1b variant)."""
    return ARNet(**{"hidden_sizes": [64, 64], **kw})
