"""Longformer self-attention: a sliding window plus global tokens, and the post-norm block around it.

Beltagy, Peters and Cohan, "Longformer: The Long-Document Transformer", 2020. Recformer (Li et al.,
KDD 2023) runs `transformers`' `LongformerEncoder`; `transformers` is not a zoo dependency, so this file
implements the same attention with the zoo's own blocks, to the same numbers (checked against a dense
reference in tests/test_recformer.py and against the official key layout in zoo/convert/recformer.py):

- a local token i attends to real, non-global tokens j with |i - j| <= window/2, and to every global
  token (global keys are taken out of the window so none is counted twice), through `query/key/value`;
- a global token attends to every real token through its own `query_global/key_global/value_global`;
- padded queries output zeros; scores are softmaxed in float32.

The window is computed in blocks of window/2 queries against 3 blocks of keys (O(L * window) time and
memory), not with an (L, L) mask, so a 1000-token history costs ~3x window per token, not L.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.attention import SelfAttention


def band_mask(half: int, device=None) -> torch.Tensor:
    """(half, 3*half) bool: query r of a block sees key column c (keys start one block earlier) iff |r+half-c|<=half."""
    r = torch.arange(half, device=device)[:, None]
    c = torch.arange(3 * half, device=device)[None, :]
    return (c >= r) & (c <= r + 2 * half)


def global_slots(global_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the global tokens, first G per row in order `(B, G)`, and which slots are real `(B, G)`."""
    count = global_mask.sum(1)
    slots = int(count.max()) if global_mask.numel() else 0
    order = torch.argsort((~global_mask).to(torch.int8), dim=1, stable=True)[:, :slots]
    valid = torch.arange(slots, device=global_mask.device)[None, :] < count[:, None]
    return order, valid


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax in at least float32 (half-precision scores would lose the small probabilities)."""
    return scores.to(torch.promote_types(scores.dtype, torch.float32)).softmax(-1)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, length, dim = x.shape
    return x.view(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, H, L, D), index (B, G) -> (B, H, G, D)."""
    batch, heads, _, dim = x.shape
    return x.gather(2, index[:, None, :, None].expand(batch, heads, index.shape[1], dim))


class LongformerSelfAttention(nn.Module):
    """Sliding-window + global multi-head attention; `mask` (B, L) marks real tokens, `global_mask` global ones."""

    def __init__(self, dim: int, num_heads: int, window: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if window <= 0 or window % 2:
            raise ValueError(f"attention window must be a positive even number (both sides together), got {window}")
        self.num_heads, self.half, self.dropout = num_heads, window // 2, dropout
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.query_global, self.key_global, self.value_global = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def _drop(self, p: torch.Tensor) -> torch.Tensor:
        return F.dropout(p, self.dropout, self.training) if self.dropout else p

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, global_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        batch, length, dim = x.shape
        heads, half = self.num_heads, self.half
        mask = torch.ones(batch, length, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        global_mask = torch.zeros_like(mask) if global_mask is None else global_mask.bool() & mask
        scale = (dim // heads) ** -0.5
        q = _heads(self.query(x) * scale, heads)
        k, v = _heads(self.key(x), heads), _heads(self.value(x), heads)

        # Local window, in blocks of `half` queries against the block before, itself and the block after.
        pad = (-length) % half
        blocks = (length + pad) // half
        q_blocks = F.pad(q, (0, 0, 0, pad)).view(batch, heads, blocks, half, -1)
        k_blocks = F.pad(k, (0, 0, half, half + pad)).unfold(2, 3 * half, half)  # (B, H, nb, Dh, 3h)
        v_blocks = F.pad(v, (0, 0, half, half + pad)).unfold(2, 3 * half, half).transpose(-1, -2)
        key_ok = F.pad(mask & ~global_mask, (half, half + pad), value=False).unfold(1, 3 * half, half)
        allowed = band_mask(half, x.device)[None, None, None] & key_ok[:, None, :, None, :]
        local = (q_blocks @ k_blocks).masked_fill(~allowed, torch.finfo(q.dtype).min)
        local = local.reshape(batch, heads, blocks * half, 3 * half)[:, :, :length]

        order, valid = global_slots(global_mask)
        slots = order.shape[1]
        if slots:  # every query also sees the global keys, through the local projections
            to_global = (q @ _gather_rows(k, order).transpose(-1, -2)).masked_fill(
                ~valid[:, None, None, :], torch.finfo(q.dtype).min
            )
            local = torch.cat([to_global, local], dim=-1)
        probs = self._drop(_softmax(local).to(v.dtype))
        window_probs = F.pad(probs[..., slots:], (0, 0, 0, pad)).view(batch, heads, blocks, half, 3 * half)
        out = (window_probs @ v_blocks).view(batch, heads, blocks * half, -1)[:, :, :length]
        if slots:
            out = out + probs[..., :slots] @ _gather_rows(v, order)
            out = self._global_rows(x, out, mask, order, valid, scale)
        out = out.masked_fill(~mask[:, None, :, None], 0.0)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))

    def _global_rows(self, x, out, mask, order, valid, scale) -> torch.Tensor:
        """Replace the rows of global tokens by full attention over every real token (own projections)."""
        heads = self.num_heads
        x_global = x.gather(1, order[:, :, None].expand(-1, -1, x.shape[-1]))
        q = _heads(self.query_global(x_global) * scale, heads)  # (B, H, G, Dh)
        k, v = _heads(self.key_global(x), heads), _heads(self.value_global(x), heads)
        scores = (q @ k.transpose(-1, -2)).masked_fill(~mask[:, None, None, :], torch.finfo(q.dtype).min)
        rows = self._drop(_softmax(scores).to(v.dtype)) @ v
        rows = torch.where(valid[:, None, :, None], rows, _gather_rows(out, order))  # unused slots keep their row
        index = order[:, None, :, None].expand(-1, heads, -1, out.shape[-1])
        return out.scatter(2, index, rows)


class LongformerLayer(nn.Module):
    """Post-norm encoder block as in BERT/RoBERTa/Longformer: x = LN(x + Attn(x)); x = LN(x + MLP(x)).

    attention: "longformer" (window + global) or "full" (every real token sees every real token; the
    quadratic baseline of equal size, without the global projections).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        window: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        eps: float = 1e-5,
        attention: str = "longformer",
    ):
        super().__init__()
        if attention == "longformer":
            self.attn = LongformerSelfAttention(dim, num_heads, window, attention_dropout)
        elif attention == "full":
            self.attn = SelfAttention(dim, num_heads, causal=False, rotary=False, dropout=attention_dropout)
        else:
            raise ValueError(f"attention={attention!r}; choose 'longformer' or 'full'")
        self.full = attention == "full"
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, global_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        attended = self.attn(x, mask) if self.full else self.attn(x, mask, global_mask)
        x = self.norm1(x + self.drop(attended))
        return self.norm2(x + self.drop(self.fc2(F.gelu(self.fc1(x)))))
