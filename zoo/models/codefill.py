"""CodeFill: multi-token code completion from aligned value and type streams.

Izadi, Gismondi, Gousios, "CodeFill: Multi-token Code Completion by Jointly
Learning from Structure and Naming Sequences", ICSE 2022
(https://github.com/saltudelft/codefill). Three tasks are learned together from
a source file's token *values* and token *types* (the role of each token:
FUNCTION_CALL, LOCAL_VARIABLE, ...): next value (TVP), next type (TTP) and
statement completion (SC, the rest of the statement, decoded with beam search);
value candidates are re-ranked by the predicted type.

How this module builds it, and where it departs from the paper and its code:

- Inputs: each position's value embedding plus its type embedding, one causal
  encoder over the sum. The paper describes two parallel streams; its released
  notebook builds three GPT-2 task models meant to share one encoder. We fuse the
  streams at the input so any zoo backbone can be the encoder.
- Parameter sharing: `sharing="hard"` (default) is the released code's design, one
  shared encoder with task-specific heads. `sharing="soft"` gives each task its own
  encoder and adds an L2 penalty pulling their parameters together (soft sharing,
  the alternative the paper discusses); it triples the encoder's size and the
  inference cost, so it is off by default.
- Heads: next value = the shared features times the value embedding (tied, as GPT-2)
  plus a bias; next type = a linear layer; statement = the value head after a
  task-specific residual adapter (zero-initialised, so it starts as the value head),
  trained only on the pieces that continue a statement. The notebook samples one task
  per batch; we sum the three losses (`task_weights`) in every step, the same
  objective in expectation with one forward pass.
- Encoder: `backbone="transformer"` (the paper's GPT-2-style decoder; ours uses
  rotary positions instead of learned absolute ones, so contexts are not capped),
  or a zoo family sized by `dim`/`depth` ("hyena", "xlstm", "mamba", "s5"), or any
  registered model name with `backbone_kwargs`; zoo encoders are built with
  `in_features=dim, num_classes=0, global_pool=''`.
- Re-ranking: the released notebook hard-codes per-type weights; we learn a
  value->type table P(type | value piece) from the training streams
  (`set_type_table`) and re-score `log p(v) + rerank_weight * log sum_t q(t) P(t|v)`,
  renormalised, where q is the predicted type distribution (a product of experts:
  values whose usual type matches the predicted type move up).
- `multitask=False` is the paper's value-only ablation: value stream in, next value out.

Sizes: `test_codefill` (40,832 parameters), `codefill_small` (width 256, 4 layers,
8,192 values: 5.44M) and `codefill_base`, the paper's size: GPT-2 small (width 768,
12 layers, 12 heads, 50,257 values, context 1024: 125.0M).

Inference: `prefill` encodes a context once; `next_log_probs_after` scores many
continuations of it. With the Transformer encoder this is a KV cache built from the
zoo block's own layers (tested equal to the full forward); other encoders recompute
the whole sequence. Heads run only where asked (`last_only`), since at 8k values
they cost more than the encoder, and the last block runs its attention and MLP at
the last position only (the other positions need only their keys and values).
The keys/values of every scored continuation are remembered in the context's state,
so a beam or a partial word that grows by one piece costs one position, and all
continuations of a step share one batched forward that never copies the cache.

`num_classes=None` (default) keeps CodeFill's task heads as the model's `head`; an
integer gives the plain classifier every zoo backbone has (CodeFill as an encoder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.attention import apply_rotary, rotary_tables
from zoo.layers.heads import pool_sequence
from zoo.models.base import SequenceBackbone
from zoo.models.transformer import Transformer
from zoo.registry import register_model

TASKS = ("value", "type", "statement")
# Soft sharing's per-task encoders, named by the paper's task abbreviations (`type` is taken by nn.Module).
ENCODER_KEYS = {"value": "tvp", "type": "ttp", "statement": "sc"}

# Zoo families sized by CodeFill's width and depth: (registered base name, kwargs builder).
BACKBONE_FAMILIES: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "transformer": (
        "transformer_tiny",
        lambda dim, depth, heads, mlp, drop, ctx: dict(
            dim=dim, depth=depth, num_heads=heads, mlp_ratio=mlp, dropout=drop
        ),
    ),
    "hyena": (
        "hyenadna_tiny_1k",
        lambda dim, depth, heads, mlp, drop, ctx: dict(
            d_model=dim, n_layer=depth, d_inner=int(mlp * dim), max_seq_len=ctx, embed_dropout=drop
        ),
    ),
    "xlstm": (
        "xlstm_tiny",
        lambda dim, depth, heads, mlp, drop, ctx: dict(
            dim=dim, depth=depth, slstm_at=[1] if depth > 1 else [], m_num_heads=heads, s_num_heads=heads, dropout=drop
        ),
    ),
    "mamba": ("mamba_tiny", lambda dim, depth, heads, mlp, drop, ctx: dict(d_model=dim, n_layer=depth)),
    "s5": ("s5_tiny", lambda dim, depth, heads, mlp, drop, ctx: dict(dim=dim, depth=depth, dropout=drop)),
}
BACKBONE_ALIASES = {"hyenadna": "hyena", "bio_xlstm": "xlstm"}


def build_encoder(
    backbone: str,
    dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float,
    dropout: float,
    context: int,
    backbone_kwargs: dict[str, Any] | None = None,
) -> SequenceBackbone:
    """A causal zoo encoder taking `(B, L, dim)` features and returning `(B, L, num_features)`."""
    from zoo.registry import build_model, is_model

    family = BACKBONE_ALIASES.get(backbone, backbone)
    if family in BACKBONE_FAMILIES:
        name, sized = BACKBONE_FAMILIES[family]
        kwargs = {**sized(dim, depth, num_heads, mlp_ratio, dropout, context), **(backbone_kwargs or {})}
    elif is_model(backbone):
        name, kwargs = backbone, dict(backbone_kwargs or {})
    else:
        raise ZooError(
            f"codefill: unknown backbone {backbone!r}; use one of {sorted(BACKBONE_FAMILIES)} or a registered "
            "model name (zoo list)"
        )
    encoder = build_model(name, **{**kwargs, "in_features": dim, "num_classes": 0, "global_pool": ""})
    if not getattr(encoder, "causal", True):
        raise ZooError(f"codefill: backbone {backbone!r} is not causal; next-token prediction needs a causal one")
    return encoder


class CodeFillHeads(nn.Module):
    """The task heads: next value (tied to the value embedding), next type, statement (adapter + tied)."""

    def __init__(self, dim: int, vocab_size: int, num_types: int, multitask: bool):
        super().__init__()
        self.value_bias = nn.Parameter(torch.zeros(vocab_size))
        self.statement_adapter = nn.Linear(dim, dim)
        nn.init.zeros_(self.statement_adapter.weight)  # starts as the value head; learns what statements need
        nn.init.zeros_(self.statement_adapter.bias)
        self.statement_bias = nn.Parameter(torch.zeros(vocab_size))
        self.type_head = nn.Linear(dim, num_types) if multitask else None

    def value(self, features: torch.Tensor, value_weight: torch.Tensor) -> torch.Tensor:
        return F.linear(features, value_weight, self.value_bias)

    def statement(self, features: torch.Tensor, value_weight: torch.Tensor) -> torch.Tensor:
        adapted = features + F.gelu(self.statement_adapter(features))
        return F.linear(adapted, value_weight, self.statement_bias)

    def type(self, features: torch.Tensor) -> torch.Tensor:
        if self.type_head is None:
            raise ZooError("this CodeFill is value-only (multitask=False): it has no type head")
        return self.type_head(features)


@dataclass
class Hypothesis:
    """A beam-search candidate: generated piece ids, their types, and the summed log-probability."""

    tokens: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    score: float = 0.0
    finished: bool = False

    def normalized(self, length_penalty: float) -> float:
        return self.score / max(len(self.tokens), 1) ** length_penalty


# step_fn(hypotheses) -> ((N, V) next-piece log-probs, type_of(n, v) -> type id of piece v after hypothesis n)
StepFn = Callable[[list[Hypothesis]], tuple[torch.Tensor, Callable[[int, int], int]]]


def beam_search(
    step_fn: StepFn,
    beam_size: int = 5,
    max_steps: int = 32,
    stop_ids: Sequence[int] = (),
    length_penalty: float = 0.0,
) -> list[Hypothesis]:
    """Generic beam search over next-piece log-probabilities (CodeFill and the n-gram baseline share it).

    A hypothesis ends when it emits a piece of `stop_ids` (kept, e.g. `<NEWLINE>`) or after `max_steps`.
    Returns up to `beam_size` hypotheses, best first by `score / len ** length_penalty`. With
    `beam_size=1` this is greedy decoding.
    """
    if beam_size < 1 or max_steps < 1:
        raise ZooError(f"beam_size={beam_size}, max_steps={max_steps}; both must be >= 1")
    stops = set(stop_ids)
    alive, finished = [Hypothesis()], []
    for _ in range(max_steps):
        log_probs, type_of = step_fn(alive)
        scores = torch.tensor([h.score for h in alive], dtype=torch.float64).unsqueeze(1) + log_probs.double()
        flat = scores.flatten()
        top = torch.topk(flat, min(2 * beam_size, flat.numel()))
        vocab = log_probs.shape[1]
        new_alive = []
        for score, index in zip(top.values.tolist(), top.indices.tolist()):
            n, v = divmod(index, vocab)
            parent = alive[n]
            hyp = Hypothesis(parent.tokens + [v], parent.types + [type_of(n, v)], score, v in stops)
            (finished if hyp.finished else new_alive).append(hyp)
            if len(new_alive) == beam_size:
                break
        alive = new_alive
        if not alive:
            break
        if finished:
            best_done = max(h.normalized(length_penalty) for h in finished)
            if len(finished) >= beam_size and best_done >= max(h.normalized(length_penalty) for h in alive):
                break
            if beam_size == 1 and best_done >= alive[0].normalized(length_penalty):
                break
    ranked = sorted(finished + alive, key=lambda h: h.normalized(length_penalty), reverse=True)
    return ranked[:beam_size]


# Keys/values of one layer: (batch, heads, positions, head_dim) each.
KV = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ContextState:
    """An encoded context (`CodeFill.prefill`): its ids, per-encoder KV caches (Transformer) and last features.

    memo: encoder key -> {(continuation values, types): per-layer keys/values `(H, T, head_dim)` of that
    continuation}, filled by `next_log_probs_after`, so a continuation that extends one scored before
    (a beam, a longer word) costs only its newest piece.
    """

    values: torch.Tensor  # (1, S)
    types: torch.Tensor | None
    caches: dict[str, list[KV]]
    last: dict[str, torch.Tensor]  # encoder key -> (1, 1, dim)
    memo: dict[str, dict[tuple, list[KV]]] = field(default_factory=dict)


_ROTARY: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _rotary(length: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`rotary_tables`, kept per (length, head_dim, device): completion asks for the same tables every call."""
    key = (length, head_dim, str(device))
    if key not in _ROTARY:
        if len(_ROTARY) > 64:
            _ROTARY.clear()
        _ROTARY[key] = rotary_tables(length, head_dim, device)
    return _ROTARY[key]


def _cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: KV, own: KV | None) -> torch.Tensor:
    """Attention of new positions `q/k/v` `(N, H, T, D)` to a context cache `past` `(1, H, S, D)` shared by
    all N rows, to each row's own earlier continuation `own` `(N, H, t, D)`, and causally to each other.

    The cache is never copied per row: the N*T queries meet it in one `(H, N*T, D) @ (H, D, S)` product.
    """
    n, heads, length, dim = q.shape
    scale = dim**-0.5
    qf = q.float()
    rows = qf.transpose(0, 1).reshape(heads, n * length, dim)
    past_scores = (rows @ past[0][0].float().transpose(-1, -2)).view(heads, n, length, -1).transpose(0, 1) * scale
    parts = [past_scores]
    if own is not None:
        parts.append((qf @ own[0].float().transpose(-1, -2)) * scale)
    new_scores = (qf @ k.float().transpose(-1, -2)) * scale  # (N, H, T, T)
    if length > 1:
        causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        new_scores = new_scores.masked_fill(~causal, float("-inf"))
    parts.append(new_scores)
    weights = torch.softmax(torch.cat(parts, dim=-1), dim=-1)
    split, mine = past_scores.shape[-1], 0 if own is None else own[0].shape[2]
    to_past = weights[..., :split].transpose(0, 1).reshape(heads, n * length, split)
    out = (to_past @ past[1][0].float()).view(heads, n, length, dim).transpose(0, 1)
    if own is not None:
        out = out + weights[..., split : split + mine] @ own[1].float()
    out = out + weights[..., split + mine :] @ v.float()
    return out.to(q.dtype)


def _block_forward(
    block,
    x: torch.Tensor,
    past: KV | None,
    offset: int,
    own: KV | None = None,
    last_only: bool = False,
) -> tuple[torch.Tensor, KV]:
    """One zoo TransformerBlock (pre-norm, rotary, causal) over new positions `offset..`, attending to the
    context cache `past` and to `own` (keys/values of each row's earlier continuation pieces); returns
    (output, this call's keys/values). Uses the block's own layers (eval mode).

    last_only: the output at the last position only (keys/values still of every position): what the last
    block needs, since nothing reads its other outputs.
    """
    attn = block.attn
    batch, length, dim = x.shape
    q, k, v = attn.qkv(block.norm1(x)).view(batch, length, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    if attn.rotary:
        cos, sin = _rotary(offset + length, attn.head_dim, x.device)
        q, k = apply_rotary(q, cos[offset:], sin[offset:]), apply_rotary(k, cos[offset:], sin[offset:])
    if last_only:
        q, x = q[:, :, -1:], x[:, -1:]
    if past is None:  # the context itself: plain causal attention (SDPA's fast path)
        # The last query alone sees every key, so it needs no mask.
        out = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only and length > 1)
    elif last_only:  # one query per row that sees all new keys: `_cached_attention` with no mask to build
        out = _cached_attention(q, k[:, :, -1:], v[:, :, -1:], past, _join(own, (k[:, :, :-1], v[:, :, :-1])))
    else:
        out = _cached_attention(q, k, v, past, own)
    x = x + attn.proj(out.transpose(1, 2).reshape(batch, x.shape[1], dim))
    return x + block.mlp(block.norm2(x)), (k, v)


def _join(own: KV | None, new: KV) -> KV | None:
    """A row's earlier keys/values followed by new ones (None when there are none)."""
    if new[0].shape[2] == 0:
        return own
    if own is None:
        return new
    return torch.cat([own[0], new[0]], dim=2), torch.cat([own[1], new[1]], dim=2)


def _transformer_prefill(encoder: Transformer, h: torch.Tensor, last_only: bool = False):
    """Features of a context (all positions, or the last one) and its per-layer keys/values."""
    x, cache = encoder.stem(h), []
    for i, block in enumerate(encoder.blocks):
        x, kv = _block_forward(block, x, None, 0, last_only=last_only and i == len(encoder.blocks) - 1)
        cache.append((kv[0].contiguous(), kv[1].contiguous()))  # values are a strided view of the qkv output
    return encoder.norm(x), cache


def _transformer_extend(
    encoder: Transformer,
    h: torch.Tensor,
    cache: list[KV],
    offset: int,
    own: list[KV] | None = None,
    last_only: bool = False,
) -> tuple[torch.Tensor, list[KV]]:
    """Features of new positions `h` after a cached context (and each row's earlier continuation `own`,
    per layer), and the rows' keys/values per layer, earlier pieces included."""
    x, rows = encoder.stem(h), []
    for i, (block, past) in enumerate(zip(encoder.blocks, cache)):
        mine = own[i] if own is not None else None
        x, kv = _block_forward(block, x, past, offset, mine, last_only=last_only and i == len(encoder.blocks) - 1)
        rows.append(_join(mine, kv))
    return encoder.norm(x), rows


class CodeFill(SequenceBackbone):
    """CodeFill over piece ids: input `(B, L, 2)` = (value id, type id) per piece, or `(B, L)` values when
    `multitask=False`. `forward` gives next-value logits `(B, L, vocab_size)`; `forward_tasks` all three tasks.

    vocab_size / num_types: sizes of the value BPE and the type vocabulary (from the data).
    context: the longest input in pieces (sizes Hyena's filters; completion keeps the last `context`).
    rerank_weight: strength of the type re-ranking (0 turns it off); type_smoothing: add-alpha for the table.
    task_weights: (value, type, statement) loss weights; sharing_weight: soft sharing's penalty weight.
    """

    recurrent = False
    causal = True

    def __init__(
        self,
        vocab_size: int = 8192,
        num_types: int = 64,
        dim: int = 256,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        context: int = 512,
        backbone: str = "transformer",
        backbone_kwargs: dict[str, Any] | None = None,
        multitask: bool = True,
        sharing: str = "hard",
        task_weights: Sequence[float] = (1.0, 1.0, 1.0),
        sharing_weight: float = 1.0,
        rerank_weight: float = 1.0,
        type_smoothing: float = 0.1,
        pad_id: int = 0,
        num_classes: int | None = None,
        global_pool: str = "",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if sharing not in ("hard", "soft"):
            raise ZooError(f"codefill: sharing={sharing!r}; choose 'hard' (one shared encoder) or 'soft'")
        if len(task_weights) != 3:
            raise ZooError(f"codefill: task_weights={list(task_weights)}; give three (value, type, statement)")
        self.vocab_size, self.num_types, self.dim, self.context = vocab_size, num_types, dim, context
        self.multitask, self.sharing = multitask, sharing
        self.task_weights = tuple(float(w) for w in task_weights)
        self.sharing_weight, self.rerank_weight, self.type_smoothing = sharing_weight, rerank_weight, type_smoothing
        self.pad_id = pad_id
        self.backbone_name = backbone
        self.value_embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.value_embed.weight, std=0.02)
        self.type_embed = nn.Embedding(num_types, dim) if multitask else None
        if self.type_embed is not None:
            nn.init.normal_(self.type_embed.weight, std=0.02)
        self.embed_drop = nn.Dropout(dropout)
        keys = ("shared",) if sharing == "hard" or not multitask else tuple(ENCODER_KEYS.values())
        args = (backbone, dim, depth, num_heads, mlp_ratio, dropout, context, backbone_kwargs)
        self.encoders = nn.ModuleDict({key: build_encoder(*args) for key in keys})
        width = next(iter(self.encoders.values())).num_features
        self.out_proj = nn.Identity() if width == dim else nn.Linear(width, dim)
        # P(type | value piece), learned from the training streams; uniform until `set_type_table`.
        self.register_buffer("type_given_value", torch.full((vocab_size, num_types), 1.0 / num_types))
        if num_classes is None:
            self.init_head(dim, 0, global_pool, drop_rate)
            self.num_classes = None
            self.head = CodeFillHeads(dim, vocab_size, num_types, multitask)
        else:
            self.init_head(dim, num_classes, global_pool, drop_rate)

    @property
    def soft(self) -> bool:
        """Whether each task has its own encoder (soft parameter sharing)."""
        return "tvp" in self.encoders

    # -------------------------------------------------------------------------- inputs and features
    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        values = torch.randint(1, self.vocab_size, (batch, length))
        if not self.multitask:
            return values
        return torch.stack([values, torch.randint(1, self.num_types, (batch, length))], dim=-1)

    @staticmethod
    def pack(values: torch.Tensor, types: torch.Tensor | None) -> torch.Tensor:
        """`(B, L)` values and types -> the `(B, L, 2)` input (values alone when types is None)."""
        return values if types is None else torch.stack([values, types], dim=-1)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.is_floating_point():
            raise ZooError(f"codefill takes piece ids (long), got a float tensor of shape {tuple(x.shape)}")
        if x.dim() == 3 and x.shape[-1] == 2:
            return x[..., 0], x[..., 1]
        if x.dim() == 2:
            if self.multitask:
                raise ZooError(
                    "this CodeFill is multitask: give (B, L, 2) value and type ids (CodeFill.pack(values, types))"
                )
            return x, None
        raise ZooError(f"codefill: expected (B, L) or (B, L, 2) ids, got shape {tuple(x.shape)}")

    def _embed(self, values: torch.Tensor, types: torch.Tensor | None) -> torch.Tensor:
        h = self.value_embed(values)
        if self.type_embed is not None and types is not None:
            h = h + self.type_embed(types)
        return self.embed_drop(h)

    def _encode(self, h: torch.Tensor, task: str) -> torch.Tensor:
        key = ENCODER_KEYS[task]
        encoder = self.encoders[key if key in self.encoders else "shared"]
        return self.out_proj(encoder.forward_features(h))

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        values, types = self._split(x)
        return self._encode(self._embed(values, types), "value")

    def forward_head(
        self, features: torch.Tensor, mask: torch.Tensor | None = None, pre_logits: bool = False
    ) -> torch.Tensor:
        if not isinstance(self.head, CodeFillHeads):
            return super().forward_head(features, mask, pre_logits)
        features = self.head_drop(pool_sequence(features, mask, self.global_pool))
        return features if pre_logits else self.head.value(features, self.value_embed.weight)

    # -------------------------------------------------------------------------- the three tasks
    def _heads(self) -> CodeFillHeads:
        if not isinstance(self.head, CodeFillHeads):
            raise ZooError("this CodeFill has a plain classifier (num_classes was set); its task heads are gone")
        return self.head

    def forward_tasks(
        self, x: torch.Tensor, tasks: Sequence[str] = TASKS, last_only: bool = False
    ) -> dict[str, torch.Tensor | None]:
        """Logits of each task: value/statement `(B, L, V)`, type `(B, L, T)` (None when value-only).

        tasks: which heads to run; last_only: only at the last position (`(B, 1, .)`; what inference needs,
        and much cheaper: the value heads cost more than the encoder at long contexts).
        """
        values, types = self._split(x)
        h = self._embed(values, types)
        features = {key: self._encode(h, task) for task, key in self._task_keys(tasks).items()}
        if last_only:
            features = {key: f[:, -1:] for key, f in features.items()}
        return self._task_logits(features, tasks)

    def _task_keys(self, tasks: Sequence[str]) -> dict[str, str]:
        """The encoder each requested task reads (one shared encoder, or one per task)."""
        out = {}
        for task in tasks:
            if task == "type" and not self.multitask:
                continue
            key = ENCODER_KEYS[task] if self.soft else "shared"
            out[task] = key
        return out

    def _task_logits(self, features: dict[str, torch.Tensor], tasks: Sequence[str]) -> dict[str, torch.Tensor | None]:
        heads, weight = self._heads(), self.value_embed.weight
        out: dict[str, torch.Tensor | None] = {"type": None}
        for task, key in self._task_keys(tasks).items():
            f = self.head_drop(features[key])
            if task == "value":
                out[task] = heads.value(f, weight)
            elif task == "statement":
                out[task] = heads.statement(f, weight)
            else:
                out[task] = heads.type(f)
        return out

    def sharing_penalty(self) -> torch.Tensor:
        """Soft sharing: mean squared difference between the value encoder and each other task's encoder."""
        if not self.soft:
            return self.value_embed.weight.new_zeros(())
        total, count = 0.0, 0
        reference = dict(self.encoders["tvp"].named_parameters())
        for key in ("ttp", "sc"):
            for name, param in self.encoders[key].named_parameters():
                total = total + (param - reference[name]).pow(2).sum()
                count += param.numel()
        return total / max(count, 1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses of a batch from `domains.code.corpus.collate_windows` (values, types, mask, statement).

        Inputs are positions 0..L-2, targets 1..L-1. Returns {"loss", "value", "type", "statement"
        [, "sharing"]}; "loss" is the weighted sum the optimiser minimises.
        """
        values, types, mask = batch["values"], batch["types"], batch["mask"]
        x = self.pack(values[:, :-1], types[:, :-1] if self.multitask else None)
        out = self.forward_tasks(x)
        target_mask = mask[:, 1:]
        value_targets = values[:, 1:].masked_fill(~target_mask, -100)
        losses = {"value": F.cross_entropy(out["value"].flatten(0, 1).float(), value_targets.flatten())}
        statement_mask = target_mask & batch["statement"][:, 1:]
        statement_targets = values[:, 1:].masked_fill(~statement_mask, -100)
        if statement_mask.any():
            losses["statement"] = F.cross_entropy(out["statement"].flatten(0, 1).float(), statement_targets.flatten())
        else:
            losses["statement"] = out["statement"].sum() * 0.0
        weights = dict(zip(TASKS, self.task_weights))
        total = weights["value"] * losses["value"] + weights["statement"] * losses["statement"]
        if self.multitask:
            type_targets = types[:, 1:].masked_fill(~target_mask, -100)
            losses["type"] = F.cross_entropy(out["type"].flatten(0, 1).float(), type_targets.flatten())
            total = total + weights["type"] * losses["type"]
        if self.soft:
            losses["sharing"] = self.sharing_penalty()
            total = total + self.sharing_weight * losses["sharing"]
        losses["loss"] = total
        return losses

    # -------------------------------------------------------------------------- re-ranking by type
    @torch.no_grad()
    def set_type_table(self, counts: torch.Tensor) -> None:
        """Learn P(type | value) from `(vocab_size, num_types)` counts (`corpus.value_type_counts`), add-alpha."""
        if tuple(counts.shape) != tuple(self.type_given_value.shape):
            raise ZooError(
                f"type table of shape {tuple(counts.shape)} does not fit this model "
                f"({self.vocab_size} values x {self.num_types} types); count with the model's tokenizer"
            )
        counts = counts.to(self.type_given_value.device, torch.float64) + self.type_smoothing
        self.type_given_value.copy_((counts / counts.sum(1, keepdim=True)).to(self.type_given_value.dtype))

    def rerank(
        self, value_log_probs: torch.Tensor, type_log_probs: torch.Tensor, weight: float | None = None
    ) -> torch.Tensor:
        """Re-ranked, renormalised log-probabilities: `log p(v) + w * log sum_t q(t) P(t|v)`."""
        weight = self.rerank_weight if weight is None else weight
        if weight == 0:
            return value_log_probs
        agreement = type_log_probs.float().exp() @ self.type_given_value.float().T  # P(type of v = predicted)
        return torch.log_softmax(value_log_probs.float() + weight * agreement.clamp_min(1e-12).log(), dim=-1)

    def type_of_value(self, value_id: int | torch.Tensor, type_log_probs: torch.Tensor) -> torch.Tensor:
        """The most likely type of a chosen value: argmax_t q(t) P(t|v)."""
        return (type_log_probs.float() + self.type_given_value[value_id].float().clamp_min(1e-12).log()).argmax(-1)

    @torch.no_grad()
    def next_value_log_probs(
        self, x: torch.Tensor, rerank: bool = True, task: str = "value", last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(value log-probs `(B, L, V)`, re-ranked when asked and multitask; type log-probs or None).

        task: "value" (next piece) or "statement" (the statement head); last_only: the last position only.
        """
        out = self.forward_tasks(x, (task, "type"), last_only)
        return self._log_probs(out, task, rerank)

    def _log_probs(self, out: dict, task: str, rerank: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        values = torch.log_softmax(out[task].float(), dim=-1)
        types = torch.log_softmax(out["type"].float(), dim=-1) if out["type"] is not None else None
        if rerank and types is not None:
            values = self.rerank(values, types)
        return values, types

    # -------------------------------------------------------------------------- incremental decoding
    @torch.no_grad()
    def prefill(self, values: Sequence[int], types: Sequence[int] | None, reserve: int = 0) -> ContextState:
        """Encode one context once (its last `context - reserve` pieces), so that candidates continuing it
        cost only their own pieces: a KV cache for the Transformer encoder, a full recompute otherwise."""
        keep = max(self.context - reserve, 1)
        values = list(values)[-keep:]
        if not values:
            raise ZooError("codefill: completion needs at least one context piece")
        types = list(types)[-keep:] if types is not None and self.multitask else None
        device = self.value_embed.weight.device
        v = torch.tensor([values], device=device)
        t = torch.tensor([types], device=device) if types is not None else None
        h = self._embed(v, t)
        state = ContextState(v, t, {}, {})
        for key, encoder in self.encoders.items():
            if isinstance(encoder, Transformer) and encoder.stem.in_features:
                features, state.caches[key] = _transformer_prefill(encoder, h, last_only=True)
                state.last[key] = self.out_proj(features[:, -1:])
            else:
                state.last[key] = self.out_proj(encoder.forward_features(h))[:, -1:]
        return state

    @torch.no_grad()
    def next_log_probs_after(
        self,
        state: ContextState,
        new_values: torch.Tensor | None = None,
        new_types: torch.Tensor | None = None,
        task: str = "value",
        rerank: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-piece log-probs `(N, V)` (and type log-probs `(N, T)`) after the context plus `N` equally
        long continuations `new_values` `(N, T)` (None: right after the context).

        With a KV cache, the keys/values of every continuation are remembered in `state.memo`; when each row
        extends one seen before (its first `T - 1` pieces), only its newest piece is computed."""
        features = {}
        for key in set(self._task_keys((task, "type")).values()):
            if new_values is None or new_values.shape[1] == 0:
                features[key] = state.last[key]
                continue
            types = new_types if self.multitask else None
            encoder = self.encoders[key]
            if key in state.caches:
                out = self._extend_cached(state, key, new_values, types)
            else:  # no cache: the whole sequence again, keep the new positions
                n = new_values.shape[0]
                full_v = torch.cat([state.values.expand(n, -1), new_values], 1)
                full_t = None if state.types is None else torch.cat([state.types.expand(n, -1), new_types], 1)
                out = encoder.forward_features(self._embed(full_v, full_t))[:, -new_values.shape[1] :]
            features[key] = self.out_proj(out[:, -1:])
        log_probs, type_log_probs = self._log_probs(self._task_logits(features, (task, "type")), task, rerank)
        return log_probs[:, -1], (type_log_probs[:, -1] if type_log_probs is not None else None)

    def _extend_cached(
        self, state: ContextState, key: str, new_values: torch.Tensor, new_types: torch.Tensor | None
    ) -> torch.Tensor:
        """Last-position features after the cached context plus each continuation, reusing `state.memo`."""
        memo = state.memo.setdefault(key, {})
        values = new_values.tolist()
        types = new_types.tolist() if new_types is not None else [[]] * len(values)
        length = new_values.shape[1]
        # The longest prefix length every row has been seen with (keys/values are causal: a prefix's are its own).
        known = length - 1
        while known > 0 and not all((tuple(v[:known]), tuple(t[:known])) in memo for v, t in zip(values, types)):
            known -= 1
        own = None
        if known:
            entries = [memo[(tuple(v[:known]), tuple(t[:known]))] for v, t in zip(values, types)]
            own = [
                (torch.stack([e[i][0] for e in entries]), torch.stack([e[i][1] for e in entries]))
                for i in range(len(entries[0]))
            ]
        h_new = self._embed(new_values[:, known:], new_types[:, known:] if new_types is not None else None)
        offset = state.values.shape[1] + known
        out, rows = _transformer_extend(self.encoders[key], h_new, state.caches[key], offset, own, last_only=True)
        for n, (v, t) in enumerate(zip(values, types)):
            for end in range(known + 1, length + 1):
                memo[(tuple(v[:end]), tuple(t[:end]))] = [(k[n, :, :end], vv[n, :, :end]) for k, vv in rows]
        return out

    # -------------------------------------------------------------------------- statement completion
    def _step_fn(self, state: ContextState, rerank: bool, allowed: torch.Tensor | None) -> StepFn:
        device = self.value_embed.weight.device
        blocked = None if allowed is None else ~allowed.to(device)
        # `type_of_value`'s table term, computed once per search instead of once per candidate.
        log_table = self.type_given_value.float().clamp_min(1e-12).log()

        def step(hyps: list[Hypothesis]):
            new_v = torch.tensor([h.tokens for h in hyps], dtype=torch.long, device=device)
            new_t = torch.tensor([h.types for h in hyps], dtype=torch.long, device=device)
            log_probs, last_types = self.next_log_probs_after(state, new_v, new_t, "statement", rerank)
            if blocked is not None:
                log_probs = log_probs.masked_fill(blocked, float("-inf"))
            last_types = None if last_types is None else last_types.float()

            def type_of(n: int, value: int) -> int:
                return 0 if last_types is None else int((last_types[n] + log_table[value]).argmax(-1))

            return log_probs.cpu(), type_of

        return step

    @torch.no_grad()
    def complete_statement(
        self,
        values: Sequence[int],
        types: Sequence[int] | None = None,
        beam_size: int = 5,
        max_steps: int = 32,
        stop_ids: Sequence[int] = (),
        length_penalty: float = 0.0,
        rerank: bool = True,
        allowed: torch.Tensor | None = None,
    ) -> list[Hypothesis]:
        """Beam search for the rest of a statement after one context (piece and type ids; the last
        `context - max_steps` pieces are used, so context and statement fit the model's context).

        stop_ids: pieces that end a statement (the tokenizer's `<NEWLINE>`, `<EOS>`, ...).
        allowed: optional `(V,)` bool mask of pieces that may be generated.
        """
        step = self._step_fn(self.prefill(values, types, reserve=max_steps), rerank, allowed)
        return beam_search(step, beam_size, max_steps, stop_ids, length_penalty)

    @torch.no_grad()
    def greedy_statement(
        self,
        values: Sequence[int],
        types: Sequence[int] | None = None,
        max_steps: int = 32,
        stop_ids: Sequence[int] = (),
        rerank: bool = True,
    ) -> Hypothesis:
        """Greedy decoding (argmax each step): what `complete_statement(beam_size=1)` must reproduce."""
        step = self._step_fn(self.prefill(values, types, reserve=max_steps), rerank, None)
        hyp = Hypothesis()
        for _ in range(max_steps):
            log_probs, type_of = step([hyp])
            v = int(log_probs[0].argmax())
            hyp = Hypothesis(hyp.tokens + [v], hyp.types + [type_of(0, v)], hyp.score + float(log_probs[0, v]))
            if v in set(stop_ids):
                hyp.finished = True
                break
        return hyp


def _codefill(defaults: dict[str, Any], kw: dict[str, Any]) -> CodeFill:
    return CodeFill(**{**defaults, **kw})


@register_model
def test_codefill(**kw) -> CodeFill:
    """Width 32, two layers, 512 values: the registry-wide test model (40,832 parameters)."""
    return _codefill(dict(vocab_size=512, dim=32, depth=2, num_heads=2, mlp_ratio=2.0, context=256), kw)


@register_model
def codefill_small(**kw) -> CodeFill:
    """Width 256, four layers, 8,192 values, context 512 (5.44M parameters): the default, CPU-friendly."""
    return _codefill(dict(vocab_size=8192, dim=256, depth=4, num_heads=4, context=512), kw)


@register_model
def codefill_base(**kw) -> CodeFill:
    """The paper's size: GPT-2 small (width 768, 12 layers, 12 heads, 50,257 values, context 1024; 125.0M)."""
    return _codefill(dict(vocab_size=50257, dim=768, depth=12, num_heads=12, context=1024), kw)


__all__ = [
    "BACKBONE_FAMILIES",
    "CodeFill",
    "CodeFillHeads",
    "Hypothesis",
    "beam_search",
    "build_encoder",
    "codefill_base",
    "codefill_small",
    "test_codefill",
]
