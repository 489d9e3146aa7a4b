"""ProbSparse self-attention and the canonical attention it replaces, as in Informer.

Zhou et al., "Informer: Beyond Efficient Transformer for Long Sequence Time-Series
Forecasting", AAAI 2021 (official code: zhouhaoyi/Informer2020, `models/attn.py`).

ProbSparse attention scores only the u = c * ceil(ln L_Q) "active" queries exactly.
A query's activity is the max-mean measurement M(q, K) = max_j q.k_j - (1/L_K) sum_j q.k_j,
estimated on U = c * ceil(ln L_K) keys sampled at random per query (the sum is still
divided by L_K, as in the official code). The remaining "lazy" queries receive mean(V)
(bidirectional) or cumsum(V) (causal, un-normalised, as the official code does).
When u >= L_Q every query is active and the output equals full attention.

Shapes here are head-first: q, k, v are `(B, H, L, E)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: eval-mode key samples come from this seed so that a trained model forecasts reproducibly.
EVAL_SAMPLE_SEED = 0
#: at most this many gathered key-sample elements exist at once (64 MiB in float32).
SAMPLE_BLOCK_ELEMENTS = 1 << 24


def active_count(factor: int, length: int) -> int:
    """c * ceil(ln L), capped at L (and at least 1)."""
    return max(1, min(factor * math.ceil(math.log(length)) if length > 1 else 1, length))


class FullAttention(nn.Module):
    """Canonical softmax attention (Informer's `FullAttention`): dropout on the weights, optional causal mask."""

    def __init__(self, causal: bool = False, dropout: float = 0.0, scale: float | None = None):
        super().__init__()
        self.causal, self.dropout, self.scale = causal, dropout, scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal, scale=self.scale
        )


class ProbSparseAttention(nn.Module):
    """ProbSparse attention; `causal=True` is the masked variant of Informer's decoder."""

    def __init__(self, factor: int = 5, causal: bool = False, scale: float | None = None):
        super().__init__()
        # The official ProbAttention builds a dropout module but never applies it; neither do we.
        self.factor, self.causal, self.scale = factor, causal, scale

    def sample_keys(self, length_q: int, length_k: int, n_sample: int, device: torch.device) -> torch.Tensor:
        # Drawn on the CPU generator (as the official code) so seeded runs match it; fixed in eval.
        generator = torch.Generator().manual_seed(EVAL_SAMPLE_SEED) if not self.training else None
        return torch.randint(length_k, (length_q, n_sample), generator=generator).to(device)

    @torch.no_grad()
    def select_queries(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Indices `(B, H, u)` of the u queries with the largest sampled max-mean measurement.

        Only the indices leave this method, so no gradient is needed. Each query's own
        key sample, `(B, H, L_Q, U, E)` in the official code, is gathered a block of
        queries at a time: the result is the same to the bit, but the peak memory is
        bounded by `SAMPLE_BLOCK_ELEMENTS` instead of growing with L log L.
        """
        length_q, length_k = q.shape[2], k.shape[2]
        index = self.sample_keys(length_q, length_k, active_count(self.factor, length_k), q.device)
        per_query = q.shape[0] * q.shape[1] * index.shape[1] * q.shape[3]
        block = max(1, SAMPLE_BLOCK_ELEMENTS // per_query)
        measure = torch.cat(
            [
                self.sampled_measure(q[:, :, start : start + block], k, index[start : start + block], length_k)
                for start in range(0, length_q, block)
            ],
            dim=-1,
        )
        return measure.topk(active_count(self.factor, length_q), dim=-1, sorted=False).indices

    @staticmethod
    def sampled_measure(q: torch.Tensor, k: torch.Tensor, index: torch.Tensor, length_k: int) -> torch.Tensor:
        """M(q, K) estimated on each query's sampled keys `index` (L_q, U); the sum is divided by L_K."""
        qk_sample = torch.einsum("bhle,bhlue->bhlu", q, k[:, :, index, :])
        return qk_sample.amax(-1) - qk_sample.sum(-1) / length_k

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        length_q, dim = q.shape[2], q.shape[3]
        length_k = k.shape[2]
        if self.causal and length_q != length_k:
            raise ValueError(f"causal ProbSparse attention is self-attention: got L_Q={length_q}, L_K={length_k}")
        top = self.select_queries(q, k)
        q_top = q.gather(2, top.unsqueeze(-1).expand(-1, -1, -1, dim))
        scores = q_top @ k.transpose(-2, -1) * (self.scale or 1.0 / math.sqrt(dim))
        if self.causal:
            future = torch.arange(length_k, device=q.device) > top.unsqueeze(-1)
            scores = scores.masked_fill(future, float("-inf"))
        active = scores.softmax(-1) @ v
        lazy = v.cumsum(-2) if self.causal else v.mean(-2, keepdim=True).expand(-1, -1, length_q, -1)
        return lazy.scatter(2, top.unsqueeze(-1).expand(-1, -1, -1, v.shape[-1]), active.to(lazy.dtype))


class AttentionLayer(nn.Module):
    """Projections around an inner attention (Informer's `AttentionLayer`).

    mix: Informer's decoder flattens the head-first output `(B, H, L, D)` straight
        into `(B, L, H*D)`, which mixes positions across heads; `mix=False` is the
        usual head concatenation.
    """

    def __init__(self, attention: nn.Module, d_model: int, n_heads: int, mix: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.inner, self.n_heads, self.mix = attention, n_heads, mix
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        batch, length_q = queries.shape[:2]
        length_k = keys.shape[1]

        def heads(x: torch.Tensor, length: int) -> torch.Tensor:
            return x.view(batch, length, self.n_heads, -1).transpose(1, 2)

        out = self.inner(
            heads(self.query(queries), length_q), heads(self.key(keys), length_k), heads(self.value(values), length_k)
        )
        out = out.reshape(batch, length_q, -1) if self.mix else out.transpose(1, 2).reshape(batch, length_q, -1)
        return self.out(out)
