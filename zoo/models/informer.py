"""Informer: ProbSparse encoder-decoder for long sequence time-series forecasting.

Zhou, Zhang, Peng, Zhang, Li, Xiong, Zhang, "Informer: Beyond Efficient Transformer
for Long Sequence Time-Series Forecasting", AAAI 2021. Follows the official code
(zhouhaoyi/Informer2020, `models/`): value embedding by a circular Conv1d(k=3),
sinusoidal positions, temporal embeddings (`timeF`, `fixed`, `learned`); a post-norm
encoder of ProbSparse self-attention with self-attention distilling between layers
(Conv1d k=3 circular -> BatchNorm -> ELU -> MaxPool stride 2); a generative decoder
(masked ProbSparse self-attention with `mix`, full cross-attention) fed `label_len`
known steps followed by zeros, projected to `c_out` channels in one forward pass.

In the zoo the projection is the backbone's `head` (`num_classes` = c_out), so:
- `forecast(x_enc, x_mark_enc, x_dec, x_mark_dec)` is the official forward: `(B, pred_len, c_out)`.
- `forward_features(x)` runs the same network as a sequence encoder: the encoder
  reads x and the decoder reads x itself (every step known), giving `(B, L, d_model)`
  so that the model also serves as a classifier backbone. No time marks there.
Differences from the official code: feed-forward 1x1 convolutions are `nn.Linear`
(same function), the fixed temporal tables are buffers rather than frozen
parameters, positions are computed for any length, in eval mode the ProbSparse
key sample is drawn from a fixed seed so that forecasts are reproducible, and the last
decoder layer runs its cross-attention and feed-forward on the `pred_len` forecast steps
only. The official code computes them for the `label_len` known steps too and then
discards them (`dec_out[:, -pred_len:]`). Everything after the self-attention is per
position, so the forecast is the same and a training step at the ETTh1 windows does
12-23% fewer floating-point operations (docs/performance.md).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.probsparse import AttentionLayer, FullAttention, ProbSparseAttention
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model

#: width of the `timeF` marks per frequency code (official `TimeFeatureEmbedding`).
TIME_FEATURE_DIMS = {"h": 4, "t": 5, "s": 6, "m": 1, "a": 1, "y": 1, "q": 1, "w": 2, "d": 3, "b": 3}
#: `fixed`/`learned` marks are integer columns [month, day, weekday, hour, minute // 15].
CALENDAR_SIZES = (13, 32, 7, 24, 4)


@lru_cache(maxsize=16)
def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """Rows t: sin(t w_i) at even and cos(t w_i) at odd columns, w_i = 10000^(-2i/dim)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


class CircularConv(nn.Conv1d):
    """Conv1d(k=3) with circular padding over `(B, L, C)` inputs."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class CalendarEmbedding(nn.Module):
    """Sum of month, day, weekday, hour (and quarter-hour when freq='t') embeddings."""

    def __init__(self, d_model: int, learned: bool, freq: str):
        super().__init__()
        self.n_fields = 5 if freq == "t" else 4
        self.learned = learned
        if learned:
            self.tables = nn.ModuleList(nn.Embedding(size, d_model) for size in CALENDAR_SIZES[: self.n_fields])
        else:
            for i, size in enumerate(CALENDAR_SIZES[: self.n_fields]):
                self.register_buffer(f"table{i}", sinusoid_table(size, d_model).clone(), persistent=False)

    def forward(self, marks: torch.Tensor) -> torch.Tensor:
        marks = marks.long()
        if self.learned:
            return sum(table(marks[..., i]) for i, table in enumerate(self.tables))
        return sum(getattr(self, f"table{i}")[marks[..., i]] for i in range(self.n_fields))


class DataEmbedding(nn.Module):
    """Value (circular conv, or token embedding) + position + temporal embedding, then dropout."""

    def __init__(
        self, c_in: int | None, d_model: int, embed: str, freq: str, dropout: float, vocab_size: int | None = None
    ):
        super().__init__()
        if embed not in ("timeF", "fixed", "learned"):
            raise ZooError(f"Informer embed={embed!r}; choose timeF, fixed or learned")
        if embed == "timeF" and freq not in TIME_FEATURE_DIMS:
            raise ZooError(f"Informer freq={freq!r}; choose one of {sorted(TIME_FEATURE_DIMS)}")
        self.d_model = d_model
        if vocab_size:
            self.value = nn.Embedding(vocab_size, d_model)
        else:
            self.value = CircularConv(c_in, d_model)
            nn.init.kaiming_normal_(self.value.weight, mode="fan_in", nonlinearity="leaky_relu")
        self.temporal = (
            nn.Linear(TIME_FEATURE_DIMS[freq], d_model)
            if embed == "timeF"
            else CalendarEmbedding(d_model, embed == "learned", freq)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, marks: torch.Tensor | None = None) -> torch.Tensor:
        h = self.value(x) + sinusoid_table(x.shape[1], self.d_model).to(x.device)
        if marks is not None:
            h = h + self.temporal(marks)
        return self.dropout(h)


class Distilling(nn.Module):
    """Self-attention distilling: halves the length (ceil(L/2)) between encoder layers."""

    def __init__(self, d_model: int):
        super().__init__()
        self.conv = CircularConv(d_model, d_model)
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.elu(self.norm(self.conv(x).transpose(1, 2)))
        return F.max_pool1d(x, kernel_size=3, stride=2, padding=1).transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)
        self.act = F.relu if activation == "relu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class EncoderLayer(nn.Module):
    """Post-norm: x = LN(x + Attn(x)); LN(x + FFN(x))."""

    def __init__(self, attention: AttentionLayer, d_model: int, d_ff: int, dropout: float, activation: str):
        super().__init__()
        self.attention = attention
        self.ffn = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attention(x, x, x)))
        return self.norm2(x + self.ffn(x))


class DecoderLayer(nn.Module):
    """Post-norm: masked self-attention, cross-attention to the encoder, feed-forward."""

    def __init__(
        self,
        self_attention: AttentionLayer,
        cross_attention: AttentionLayer,
        d_model: int,
        d_ff: int,
        dropout: float,
        activation: str,
    ):
        super().__init__()
        self.self_attention, self.cross_attention = self_attention, cross_attention
        self.ffn = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, keep_last: int | None = None) -> torch.Tensor:
        """keep_last: return only the last steps; everything after the self-attention is
        per position, so the steps kept are the same as without it."""
        x = self.norm1(x + self.drop(self.self_attention(x, x, x)))
        if keep_last is not None:
            x = x[:, -keep_last:]
        x = self.norm2(x + self.drop(self.cross_attention(x, memory, memory)))
        return self.norm3(x + self.ffn(x))


class Informer(SequenceBackbone):
    """Informer encoder-decoder; `num_classes` is the number of forecast channels c_out."""

    causal = False
    #: how the timeseries domain drives this model: `forecast(x_enc, x_mark_enc, x_dec, x_mark_dec)`.
    forecaster = "encoder_decoder"

    def __init__(
        self,
        in_features: int | None = None,
        dec_in: int | None = None,
        label_len: int = 48,
        pred_len: int = 24,
        factor: int = 5,
        d_model: int = 512,
        n_heads: int = 8,
        e_layers: int = 2,
        d_layers: int = 1,
        d_ff: int = 2048,
        dropout: float = 0.05,
        attn: str = "prob",
        embed: str = "timeF",
        freq: str = "h",
        activation: str = "gelu",
        distil: bool = True,
        mix: bool = True,
        vocab_size: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            in_features = 7
        if attn not in ("prob", "full"):
            raise ZooError(f"Informer attn={attn!r}; choose prob or full")
        self.in_features, self.vocab_size = in_features, vocab_size
        self.label_len, self.pred_len, self.freq, self.embed = label_len, pred_len, freq, embed
        self.enc_embedding = DataEmbedding(in_features, d_model, embed, freq, dropout, vocab_size)
        self.dec_embedding = DataEmbedding(dec_in or in_features, d_model, embed, freq, dropout, vocab_size)

        def self_attention(causal: bool) -> nn.Module:
            return (
                ProbSparseAttention(factor, causal=causal)
                if attn == "prob"
                else FullAttention(causal=causal, dropout=dropout)
            )

        self.encoder_layers = nn.ModuleList(
            EncoderLayer(AttentionLayer(self_attention(False), d_model, n_heads), d_model, d_ff, dropout, activation)
            for _ in range(e_layers)
        )
        self.distilling = nn.ModuleList(Distilling(d_model) for _ in range(e_layers - 1)) if distil else None
        self.encoder_norm = nn.LayerNorm(d_model)
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(
                AttentionLayer(self_attention(True), d_model, n_heads, mix=mix),
                AttentionLayer(FullAttention(causal=False, dropout=dropout), d_model, n_heads),
                d_model,
                d_ff,
                dropout,
                activation,
            )
            for _ in range(d_layers)
        )
        self.decoder_norm = nn.LayerNorm(d_model)
        self.init_head(d_model, num_classes, global_pool)

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        if self.vocab_size:
            return torch.randint(0, self.vocab_size, (batch, length))
        return torch.randn(batch, length, self.in_features)

    def encode(self, x: torch.Tensor, marks: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output `(B, ceil(L / 2^(e_layers-1)), d_model)` with distilling."""
        h = self.enc_embedding(x, marks)
        for i, layer in enumerate(self.encoder_layers):
            h = layer(h)
            if self.distilling is not None and i < len(self.distilling):
                h = self.distilling[i](h)
        return self.encoder_norm(h)

    def decode(
        self, x: torch.Tensor, marks: torch.Tensor | None, memory: torch.Tensor, keep_last: int | None = None
    ) -> torch.Tensor:
        """Decoder output `(B, L, d_model)`, or only its last `keep_last` steps.

        Only the last layer can drop steps: an earlier layer's every step is read by the
        next layer's self-attention.
        """
        h = self.dec_embedding(x, marks)
        last = len(self.decoder_layers) - 1
        for i, layer in enumerate(self.decoder_layers):
            h = layer(h, memory, keep_last if i == last else None)
        return self.decoder_norm(h)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and not bool(mask.all()):
            raise ZooError(
                "Informer does not support padding masks: its circular convolutions and ProbSparse "
                "measurement see the whole window; give it equal-length windows (no padding)."
            )
        return self.decode(x, None, self.encode(x))

    def forecast(
        self, x_enc: torch.Tensor, x_mark_enc: torch.Tensor | None, x_dec: torch.Tensor, x_mark_dec: torch.Tensor | None
    ) -> torch.Tensor:
        """The official forward.

        `x_dec` is `label_len` known steps then `pred_len` zeros; returns `(B, pred_len, c_out)`.
        """
        features = self.decode(x_dec, x_mark_dec, self.encode(x_enc, x_mark_enc), keep_last=self.pred_len)
        return self.forward_head(features)


def _informer(defaults: dict, kw: dict) -> Informer:
    return Informer(**{**defaults, **kw})


@register_model
def test_informer(**kw) -> Informer:
    return _informer(
        dict(d_model=32, n_heads=2, e_layers=2, d_layers=1, d_ff=64, factor=3, embed="fixed", dropout=0.0), kw
    )


@register_model
def informer_tiny(**kw) -> Informer:
    return _informer(dict(d_model=64, n_heads=4, d_ff=128), kw)


@register_model
def informer_small(**kw) -> Informer:
    return _informer(dict(d_model=256, n_heads=8, d_ff=1024), kw)


@register_model
def informer_base(**kw) -> Informer:
    """The paper's configuration (official `main_informer.py` defaults)."""
    return _informer(dict(d_model=512, n_heads=8, e_layers=2, d_layers=1, d_ff=2048, dropout=0.05, factor=5), kw)
