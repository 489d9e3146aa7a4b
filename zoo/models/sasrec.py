"""SASRec: self-attentive sequential recommendation on item IDs (Kang and McAuley, "Self-Attentive
Sequential Recommendation", ICDM 2018; official code kang205/SASRec, PyTorch port pmixer/SASRec.pytorch).

Item ids are catalogue index + 1 (0 pads). Embeddings are scaled by sqrt(dim), a learned position
embedding is added, then causal blocks as the official code builds them: the query is LayerNorm(x), keys
and values are x, the residual adds to the normalised query; then LayerNorm and a point-wise feed-forward
with its own residual; padding rows are zeroed after every block; a final LayerNorm. The score of item j
after position t is the dot product with item j's (shared) input embedding.

Deviations: positions are counted from the most recent item (0 = last), which is the official
left-padding to `max_len` without materialising it, so a batch needs only its longest history;
`training_loss` defaults to full softmax cross-entropy over the catalogue (RecBole's default; the paper's
binary cross-entropy with one sampled negative is `loss="bce"`).
`equal_size_kwargs` gives the SASRec as wide and deep as a given Recformer (the issue's "equal size").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


class CausalAttentionBlock(nn.Module):
    """One SASRec block (official layout, see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float, eps: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.attn_norm, self.ffn_norm = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        heads = self.num_heads
        query = self.attn_norm(x)
        q = self.q(query).view(batch, length, heads, -1).transpose(1, 2)
        k, v = self.kv(x).view(batch, length, 2, heads, -1).permute(2, 0, 3, 1, 4)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        # A padding row has no real key in its past; let it see itself (its output is zeroed anyway).
        allowed = (causal & mask[:, None, None, :]) | torch.eye(length, dtype=torch.bool, device=x.device)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        x = query + self.proj(attended.transpose(1, 2).reshape(batch, length, dim))
        x = self.ffn_norm(x)
        x = x + self.drop(self.fc2(self.drop(F.relu(self.fc1(x)))))
        return x * mask[..., None]


class SASRec(SequenceBackbone):
    """ID-based causal self-attention recommender. Inputs (B, L) item ids, left-padded with 0."""

    causal = True

    def __init__(
        self,
        num_items: int = 1682,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 1,
        mlp_dim: int | None = None,
        max_len: int = 200,
        dropout: float = 0.2,
        layer_norm_eps: float = 1e-8,
        num_classes: int = 0,
        global_pool: str = "last",
    ):
        super().__init__()
        self.num_items, self.max_len, self.dim = num_items, max_len, dim
        self.item_embeddings = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, dim)
        self.embed_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            CausalAttentionBlock(dim, num_heads, mlp_dim or dim, dropout, layer_norm_eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.init_head(dim, num_classes, global_pool, 0.0)
        for p in self.parameters():  # Xavier-normal on every matrix, as the PyTorch port does
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        with torch.no_grad():
            self.item_embeddings.weight[0].zero_()

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        return torch.randint(1, self.num_items + 1, (batch, min(length, self.max_len)))

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = x.ne(0) if mask is None else mask.bool()
        if x.shape[1] > self.max_len:  # keep the most recent max_len items, as the official padding does
            x, mask = x[:, -self.max_len :], mask[:, -self.max_len :]
        from_end = torch.arange(x.shape[1] - 1, -1, -1, device=x.device)
        h = self.item_embeddings(x) * self.dim**0.5 + self.position_embeddings(from_end)[None]
        h = self.embed_drop(h) * mask[..., None]
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)

    def item_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., num_items): scores of catalogue items 0..N-1 (ids 1..N)."""
        return features @ self.item_embeddings.weight[1:].T

    def next_item_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_items) scores for the item after each left-padded history."""
        return self.item_scores(self.forward_features(x)[:, -1])

    def training_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, loss: str = "ce", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Next-item loss at every real position; `targets` are ids (0 = no target).

        loss="ce": softmax over the whole catalogue; "bce": the paper's one random negative per position.
        """
        features = self.forward_features(inputs)
        real = targets.ne(0)
        if loss == "ce":
            logits = self.item_scores(features[real])
            return F.cross_entropy(logits.float(), targets[real] - 1)
        if loss != "bce":
            raise ValueError(f"loss={loss!r}; choose 'ce' or 'bce'")
        negatives = torch.randint(1, self.num_items + 1, targets.shape, device=targets.device, generator=generator)
        h = features[real]
        pos = (h * self.item_embeddings(targets[real])).sum(-1)
        neg = (h * self.item_embeddings(negatives[real])).sum(-1)
        return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
            neg, torch.zeros_like(neg)
        )


def pad_histories(histories: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    """Catalogue indices -> (B, L) ids (index + 1), the most recent `max_len` of each, left-padded with 0."""
    length = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    out = torch.zeros(len(histories), length, dtype=torch.long)
    for row, history in enumerate(histories):
        recent = list(history)[-length:]
        if recent:
            out[row, length - len(recent) :] = torch.tensor(recent) + 1
    return out


def training_pairs(sequences: Sequence[Sequence[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for teacher forcing: inputs = seq[:-1], targets = seq[1:] as ids, left-padded."""
    inputs = pad_histories([s[:-1] for s in sequences], max_len)
    targets = pad_histories([s[1:] for s in sequences], max_len)
    return inputs, targets


def equal_size_kwargs(recformer: nn.Module | Mapping) -> dict:
    """SASRec kwargs as wide and deep as a Recformer (a model or its kwargs): dim, depth, heads, feed-forward."""
    if isinstance(recformer, nn.Module):
        block = recformer.blocks[0]
        return {
            "dim": recformer.num_features,
            "depth": len(recformer.blocks),
            "num_heads": block.attn.num_heads,
            "mlp_dim": block.fc1.out_features,
        }
    defaults = {"dim": 768, "depth": 12, "num_heads": 12, "mlp_dim": 3072}
    return {k: recformer.get(k, v) for k, v in defaults.items()}


@register_model
def sasrec_small(**kw) -> SASRec:
    """The paper's setting (2 blocks, 1 head, max_len 200) at width 64."""
    return SASRec(**kw)


@register_model
def test_sasrec(**kw) -> SASRec:
    return SASRec(**{"num_items": 100, "dim": 32, "depth": 2, "num_heads": 2, "max_len": 50, **kw})
