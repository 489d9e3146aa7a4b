"""Recformer: sequential recommendation from item text (Li et al., "Text Is All You Need: Learning
Language Representations for Sequential Recommendation", KDD 2023; official code AaronHeee/RecFormer).

An item is a "sentence" of `key value` attributes; a user history is the sentences of its items, most
recent first, after a `<s>` token. Four embeddings are summed per token (word, token position, token
type: 0 `<s>` / 1 key / 2 value / 3 pad, item position: 0 for `<s>`, k for the k-th most recent item),
then LayerNorm, a Longformer encoder (`zoo.layers.longformer`, sliding window + global attention on
`<s>`; why not `transformers`: see that module) and the `<s>` state is the representation. The same
encoder encodes a sequence of one item to embed that item, so a new item needs only its text.
Scores are cosine similarity / temperature (0.05).

Training, as in the paper and the official code:
- pre-training: `pretraining_loss`, item-item contrastive loss with in-batch negatives (history
  representation vs next-item representation) plus 0.1 x MLM on masked copies of both;
- two-stage fine-tuning (`TwoStageFinetuning`): a frozen item table (the encoder's embedding of every
  catalogue item, a buffer, never a parameter) scored with full softmax (`finetune_loss`); in stage 1 the
  table is re-encoded at the start of each epoch (`refresh_item_table`); stage 2 restarts from the best
  stage-1 weights and keeps that table fixed.

Inputs are the dict `domains.recsys.sentences` builds: `input_ids`, `attention_mask`,
`token_type_ids`, `item_position_ids`, `global_attention_mask` (all (B, L) long).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.longformer import LongformerLayer
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model

TEMPERATURE = 0.05
MLM_WEIGHT = 0.1
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "item_position_ids", "global_attention_mask")


def token_position_ids(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """RoBERTa positions: pad_token_id + 1, +2, ... on non-pad tokens, pad_token_id on pads (as the official code)."""
    real = input_ids.ne(pad_token_id).long()
    return torch.cumsum(real, dim=1) * real + pad_token_id


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def cosine_scores(queries: torch.Tensor, items: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """(B, D) x (N, D) -> (B, N) cosine similarity / temperature."""
    return F.normalize(queries, dim=-1, eps=1e-8) @ F.normalize(items, dim=-1, eps=1e-8).T / temperature


def contrastive_loss(queries: torch.Tensor, keys: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """In-batch contrastive loss: row i's positive is keys[i], the other rows of the batch are its negatives."""
    scores = cosine_scores(queries, keys, temperature)
    return F.cross_entropy(_at_least_float32(scores), torch.arange(len(scores), device=scores.device))


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on masked positions (labels -100 elsewhere)."""
    return F.cross_entropy(
        _at_least_float32(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )


class MLMHead(nn.Module):
    """RoBERTa/Longformer LM head: dense -> GELU -> LayerNorm -> decoder (its own weights, as the release)."""

    def __init__(self, dim: int, vocab_size: int, eps: float = 1e-5):
        super().__init__()
        self.dense, self.norm = nn.Linear(dim, dim), nn.LayerNorm(dim, eps=eps)
        self.decoder = nn.Linear(dim, vocab_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(features))))


class Recformer(SequenceBackbone):
    """Text-based sequential recommender (see the module docstring).

    vocab_size, pad_token_id: of the tokenizer (`domains.recsys.tokenizer`); max_positions: token positions
    (max tokens + pad_token_id + 1); max_items: item positions (max items + 1 for `<s>`);
    attention_window: both sides together (64 in the paper); attention: "longformer" or "full" (the
    quadratic baseline of equal size); num_items: rows of the item table (set by `set_item_table`);
    mlm_head: build the MLM head (pre-training; the registry-wide gradient test runs without it).
    """

    causal = False

    def __init__(
        self,
        vocab_size: int = 50265,
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        attention_window: int = 64,
        max_positions: int = 4098,
        max_items: int = 51,
        num_token_types: int = 4,
        pad_token_id: int = 1,
        layer_norm_eps: float = 1e-5,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        temperature: float = TEMPERATURE,
        mlm_head: bool = True,
        num_items: int = 0,
        attention: str = "longformer",
        num_classes: int = 0,
        global_pool: str = "cls",
    ):
        super().__init__()
        self.vocab_size, self.pad_token_id, self.temperature = vocab_size, pad_token_id, temperature
        self.max_positions, self.max_items = max_positions, max_items
        self.word_embeddings = nn.Embedding(vocab_size, dim, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, dim, padding_idx=pad_token_id)
        self.token_type_embeddings = nn.Embedding(num_token_types, dim)
        self.item_position_embeddings = nn.Embedding(max_items, dim)
        self.embed_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.embed_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            LongformerLayer(
                dim, num_heads, mlp_dim, attention_window, dropout, attention_dropout, layer_norm_eps, attention
            )
            for _ in range(depth)
        )
        self.mlm = MLMHead(dim, vocab_size, layer_norm_eps) if mlm_head else None
        self.register_buffer("item_table", torch.zeros(num_items, dim))
        self.init_head(dim, num_classes, global_pool)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """BERT initialisation (normal 0.02, zero biases and padding rows), as `transformers` does."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    # ------------------------------------------------------------------ encoding

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        return torch.randint(self.pad_token_id + 1, self.vocab_size, (batch, length))

    def forward_features(
        self,
        x: torch.Tensor | Mapping[str, torch.Tensor],
        mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        item_position_ids: torch.Tensor | None = None,
        global_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-token states (B, L, D). `x`: input ids, or the whole batch dict (keys `INPUT_KEYS`).

        Missing ids default as for a bare token sequence: mask all real, token type and item position 0,
        the first token global.
        """
        if isinstance(x, Mapping):
            batch = x
            x, mask = batch["input_ids"], batch.get("attention_mask", mask)
            token_type_ids = batch.get("token_type_ids", token_type_ids)
            item_position_ids = batch.get("item_position_ids", item_position_ids)
            global_attention_mask = batch.get("global_attention_mask", global_attention_mask)
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.bool()
        if global_attention_mask is None:
            global_attention_mask = torch.zeros_like(mask)
            global_attention_mask[:, 0] = True
        positions = token_position_ids(x, self.pad_token_id)
        if x.shape[1] + self.pad_token_id >= self.max_positions:
            raise ZooError(
                f"a sequence of {x.shape[1]} tokens is longer than this Recformer takes "
                f"({self.max_positions - self.pad_token_id - 1}); lower max_tokens in the sentence config"
            )
        h = self.word_embeddings(x) + self.position_embeddings(positions)
        h = h + self.token_type_embeddings(torch.zeros_like(x) if token_type_ids is None else token_type_ids)
        if item_position_ids is not None and int(item_position_ids.max()) >= self.max_items:
            raise ZooError(
                f"item position {int(item_position_ids.max())} is beyond this Recformer's {self.max_items - 1} "
                "items per history; lower max_items in the sentence config"
            )
        h = h + self.item_position_embeddings(torch.zeros_like(x) if item_position_ids is None else item_position_ids)
        h = self.embed_drop(self.embed_norm(h))
        global_attention_mask = global_attention_mask.bool() & mask
        for block in self.blocks:
            h = block(h, mask, global_attention_mask)
        return h

    def encode(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) representation of each sequence (or single item): the `<s>` state."""
        return self.forward_features(batch)[:, 0]

    @torch.no_grad()
    def encode_items(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        """(N, D) embeddings of items, each given as a one-item sequence; eval mode, no gradient."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            parts = [self.encode({k: v.to(device) for k, v in b.items() if k in INPUT_KEYS}) for b in batches]
        finally:
            self.train(was_training)
        if not parts:
            raise ZooError("no items to encode; the catalogue is empty")
        return torch.cat(parts).float()

    def mlm_logits(self, features: torch.Tensor) -> torch.Tensor:
        if self.mlm is None:
            raise ZooError("this Recformer has no MLM head; build it with mlm_head=True to pre-train with MLM")
        return self.mlm(features)

    # ------------------------------------------------------------------ scoring

    def score(self, sequence_repr: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) cosine / temperature against `items` (N, D), by default the item table."""
        items = self.item_table if items is None else items
        if items.shape[0] == 0:
            raise ZooError("the item table is empty; call set_item_table/refresh_item_table with the catalogue first")
        return cosine_scores(sequence_repr, items.to(sequence_repr.dtype), self.temperature)

    def recommend(
        self, batch: Mapping[str, torch.Tensor], topk: int = 10, items: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, item indices), each (B, topk), best first. `items`: candidate embeddings (default: table);
        for items never seen in training pass `torch.cat([model.item_table, model.encode_items(new)])`."""
        scores = self.score(self.encode(batch), items)
        return scores.topk(min(topk, scores.shape[1]), dim=1)

    def set_item_table(self, embeddings: torch.Tensor) -> None:
        """Install (N, D) item embeddings as the frozen table; the saved config records N so loading fits."""
        self.item_table = embeddings.detach().to(self.word_embeddings.weight.device, torch.float32).clone()
        if getattr(self, "zoo_config", None):
            self.zoo_config["kwargs"]["num_items"] = int(embeddings.shape[0])

    def refresh_item_table(self, item_batches: Iterable[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        """Stage-1 step: re-encode every catalogue item with the current encoder and install the table."""
        table = self.encode_items(item_batches)
        self.set_item_table(table)
        return table

    # ------------------------------------------------------------------ losses

    def finetune_loss(self, batch: Mapping[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """Full-catalogue softmax over the frozen item table; targets are catalogue indices (B,)."""
        return F.cross_entropy(_at_least_float32(self.score(self.encode(batch))), targets)

    def pretraining_loss(
        self, history: Mapping[str, torch.Tensor], item: Mapping[str, torch.Tensor], mlm_weight: float = MLM_WEIGHT
    ) -> dict[str, torch.Tensor]:
        """Contrastive (history i vs its next item i, in-batch negatives) + mlm_weight x MLM.

        Each dict may carry `mlm_input_ids` and `mlm_labels` (from the MLM collator): the masked copy is
        encoded in a separate pass, as the official code does. Returns loss, contrastive, mlm, accuracy.
        """
        queries, keys = self.encode(history), self.encode(item)
        contrastive = contrastive_loss(queries, keys, self.temperature)
        accuracy = (cosine_scores(queries, keys).argmax(1) == torch.arange(len(keys), device=keys.device)).float()
        out = {"contrastive": contrastive, "accuracy": accuracy.mean().detach(), "loss": contrastive}
        mlm_terms = []
        for part in (history, item):
            if "mlm_input_ids" in part and mlm_weight:
                features = self.forward_features({**part, "input_ids": part["mlm_input_ids"]})
                mlm_terms.append(mlm_loss(self.mlm_logits(features), part["mlm_labels"]))
        if mlm_terms:
            out["mlm"] = sum(mlm_terms) / len(mlm_terms)
            out["loss"] = contrastive + mlm_weight * sum(mlm_terms)
        return out


@dataclass
class TwoStageFinetuning:
    """The paper's two-stage fine-tuning as a small state machine a training loop calls once per epoch.

    Stage 1: before each epoch `refresh_due()` is True: call `model.refresh_item_table(...)`. After each
    validation call `update(metric)`: "improved" (save the best weights, table included), "continue",
    "next_stage" (patience ran out in stage 1: load the best weights and go on; the table is now fixed),
    or "stop". The best metric carries over between stages, as in the official finetune.py.
    """

    patience_stage1: int = 5
    patience_stage2: int = 3
    stage: int = 1
    best: float = -math.inf
    bad_epochs: int = 0

    def refresh_due(self) -> bool:
        return self.stage == 1

    def update(self, metric: float) -> str:
        if metric > self.best:
            self.best, self.bad_epochs = metric, 0
            return "improved"
        self.bad_epochs += 1
        if self.bad_epochs < (self.patience_stage1 if self.stage == 1 else self.patience_stage2):
            return "continue"
        self.bad_epochs = 0
        if self.stage == 1:
            self.stage = 2
            return "next_stage"
        return "stop"

    def state_dict(self) -> dict:
        return {"stage": self.stage, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.stage, self.best, self.bad_epochs = int(state["stage"]), float(state["best"]), int(state["bad_epochs"])


@register_model
def recformer_base(**kw) -> Recformer:
    """The paper's size: Longformer-base (768 wide, 12 layers, 12 heads), window 64, 50 items + `<s>`."""
    return Recformer(**kw)


@register_model
def recformer_small(**kw) -> Recformer:
    return Recformer(
        **{
            "vocab_size": 8192,
            "dim": 256,
            "depth": 4,
            "num_heads": 4,
            "mlp_dim": 1024,
            "max_positions": 1026,
            **kw,
        }
    )


@register_model
def test_recformer(**kw) -> Recformer:
    return Recformer(
        **{
            "vocab_size": 512,
            "dim": 32,
            "depth": 2,
            "num_heads": 2,
            "mlp_dim": 64,
            "attention_window": 8,
            "max_positions": 258,
            "mlm_head": False,
            **kw,
        }
    )
