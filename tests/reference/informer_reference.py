"""Test-only restatement of Informer's math, with the official module names.

Zhou et al., "Informer: Beyond Efficient Transformer for Long Sequence Time-Series
Forecasting", AAAI 2021, Sec. 3 (ProbSparse self-attention, Eq. 3-4; self-attention
distilling, Eq. 5; generative decoder) and the official zhouhaoyi/Informer2020
`models/` for what the paper leaves open. Written from those equations, not from the
zoo's code, and computed differently where the two may not share a mistake:

- the sparsity measurement reads the sampled q.k products out of the *full* score
  matrix (the zoo gathers sampled keys and multiplies); the sum of the sample is
  still divided by L_K and u = c ceil(ln L_Q), U = c ceil(ln L_K), both capped at L;
- lazy queries get mean(V) (encoder) or cumsum(V) (masked decoder), and the active
  rows are written over them per (batch, head);
- positions and fixed temporal tables come from `sinusoid`, built by an explicit
  formula per (position, column);
- the 1x1 feed-forward layers are `nn.Conv1d(k=1)` and the value embedding pads
  circularly by hand before an unpadded conv, as the official shapes are.

Module names equal the official ones, so `state_dict()` has the official key layout
and `benchmarks.timeseries_informer_official.convert_official_state_dict` is tested
too. Key samples are drawn by `draw(L_K, (L_Q, U))` once per ProbSparse call, in call
order (encoder layers, then decoder self-attention): the default takes torch's global
generator, as the official code does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Draw = Callable[[int, tuple[int, int]], torch.Tensor]


def global_draw(high: int, shape: tuple[int, int]) -> torch.Tensor:
    return torch.randint(high, shape)


def capped(factor: int, length: int) -> int:
    return min(factor * math.ceil(math.log(length)), length)


def sinusoid(rows: int, dim: int) -> torch.Tensor:
    """PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d))."""
    table = torch.zeros(rows, dim, dtype=torch.float64)
    for col in range(dim):
        rate = 10000.0 ** (-(col - col % 2) / dim)
        for p in range(rows):
            table[p, col] = math.sin(p * rate) if col % 2 == 0 else math.cos(p * rate)
    return table.float()


def probsparse(q, k, v, factor: int, causal: bool, draw: Draw) -> torch.Tensor:
    """Head-first `(B, H, L, E)` ProbSparse attention (paper Eq. 3-4)."""
    batch, heads, length_q, dim = q.shape
    length_k = k.shape[2]
    n_sample, n_top = capped(factor, length_k), capped(factor, length_q)
    sample = draw(length_k, (length_q, n_sample))
    products = q @ k.transpose(-2, -1)  # (B, H, L_Q, L_K)
    sampled = products.gather(-1, sample.expand(batch, heads, -1, -1).to(q.device))
    measure = sampled.max(-1).values - sampled.sum(-1) / length_k
    top = measure.topk(n_top, dim=-1).indices  # (B, H, u)
    out = (v.cumsum(-2) if causal else v.mean(-2, keepdim=True).expand(-1, -1, length_q, -1)).clone()
    for b in range(batch):
        for h in range(heads):
            rows = top[b, h]
            scores = products[b, h, rows] / math.sqrt(dim)  # the active queries' rows of the full scores
            if causal:  # query i sees keys 0..i
                scores = scores.masked_fill(
                    torch.arange(length_k, device=q.device)[None] > rows[:, None], float("-inf")
                )
            out[b, h, rows] = scores.softmax(-1) @ v[b, h]
    return out


def canonical(q, k, v, causal: bool) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(
            torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).triu(1), float("-inf")
        )
    return scores.softmax(-1) @ v


class AttentionLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, kind: str, causal: bool, factor: int, mix: bool):
        super().__init__()
        self.query_projection, self.key_projection = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.value_projection, self.out_projection = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.n_heads, self.kind, self.causal, self.factor, self.mix = n_heads, kind, causal, factor, mix

    def forward(self, queries, keys, values, draw: Draw):
        batch, length = queries.shape[:2]

        def split(x):  # (B, L, d) -> (B, H, L, E)
            return x.view(batch, x.shape[1], self.n_heads, -1).permute(0, 2, 1, 3)

        q, k, v = (
            split(self.query_projection(queries)),
            split(self.key_projection(keys)),
            split(self.value_projection(values)),
        )
        out = (
            probsparse(q, k, v, self.factor, self.causal, draw)
            if self.kind == "prob"
            else canonical(q, k, v, self.causal)
        )
        # official `mix`: the (B, H, L, E) block is read as (B, L, H*E) without moving heads back
        merged = (
            out.contiguous().view(batch, length, -1) if self.mix else out.permute(0, 2, 1, 3).reshape(batch, length, -1)
        )
        return self.out_projection(merged)


def circular_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """k=3 conv over time of `(B, L, C)`, the sequence wrapped around by one step each side."""
    wrapped = torch.cat([x[:, -1:], x, x[:, :1]], dim=1).transpose(1, 2)
    return F.conv1d(wrapped, conv.weight, conv.bias).transpose(1, 2)


class TokenEmbedding(nn.Module):
    def __init__(self, c_in: int, d_model: int):
        super().__init__()
        self.tokenConv = nn.Conv1d(c_in, d_model, kernel_size=3)


#: calendar field -> (table rows, column of the marks)
CALENDAR = {"month": (13, 0), "day": (32, 1), "weekday": (7, 2), "hour": (24, 3), "minute": (4, 4)}
#: timeF width per frequency code (official `TimeFeatureEmbedding`'s freq_map)
TIMEF_WIDTH = {"h": 4, "t": 5, "s": 6, "m": 1, "a": 1, "w": 2, "d": 3, "b": 3}


class TemporalEmbedding(nn.Module):
    """`fixed` (sinusoid tables) or `learned` (nn.Embedding) calendar fields [month, day, weekday, hour, minute]."""

    def __init__(self, d_model: int, embed: str, freq: str):
        super().__init__()
        self.embed_type, self.fields = embed, ["month", "day", "weekday", "hour"] + (["minute"] if freq == "t" else [])
        for name in self.fields:
            size = CALENDAR[name][0]
            setattr(
                self,
                f"{name}_embed",
                FixedEmbedding(size, d_model) if embed == "fixed" else nn.Embedding(size, d_model),
            )

    def forward(self, marks):
        return sum(getattr(self, f"{n}_embed")(marks[..., CALENDAR[n][1]].long()) for n in self.fields)


class FixedEmbedding(nn.Module):
    def __init__(self, rows: int, d_model: int):
        super().__init__()
        self.emb = nn.Embedding(rows, d_model)
        self.emb.weight = nn.Parameter(sinusoid(rows, d_model), requires_grad=False)

    def forward(self, x):
        return self.emb(x)


class TimeFeatureEmbedding(nn.Module):
    def __init__(self, d_model: int, width: int):
        super().__init__()
        self.embed = nn.Linear(width, d_model)

    def forward(self, marks):
        return self.embed(marks)


class PositionalEmbedding(nn.Module):
    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", sinusoid(max_len, d_model)[None])


class DataEmbedding(nn.Module):
    def __init__(self, c_in: int, d_model: int, embed: str, freq: str, max_len: int):
        super().__init__()
        self.value_embedding = TokenEmbedding(c_in, d_model)
        self.position_embedding = PositionalEmbedding(d_model, max_len)
        self.temporal_embedding = (
            TimeFeatureEmbedding(d_model, TIMEF_WIDTH[freq])
            if embed == "timeF"
            else TemporalEmbedding(d_model, embed, freq)
        )

    def forward(self, x, marks):
        return (
            circular_conv(self.value_embedding.tokenConv, x)
            + self.position_embedding.pe[:, : x.shape[1]]
            + self.temporal_embedding(marks)
        )


class EncoderLayer(nn.Module):
    def __init__(self, attention: AttentionLayer, d_model: int, d_ff: int):
        super().__init__()
        self.attention = attention
        self.conv1, self.conv2 = nn.Conv1d(d_model, d_ff, 1), nn.Conv1d(d_ff, d_model, 1)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def feed_forward(self, x):
        return self.conv2(F.gelu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)

    def forward(self, x, draw: Draw):
        x = self.norm1(x + self.attention(x, x, x, draw))
        return self.norm2(x + self.feed_forward(x))


class ConvLayer(nn.Module):
    """Distilling (paper Eq. 5): X_{j+1} = MaxPool(ELU(Conv1d([X_j]_AB)))."""

    def __init__(self, d_model: int):
        super().__init__()
        self.downConv = nn.Conv1d(d_model, d_model, kernel_size=3)
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x):
        h = F.elu(self.norm(circular_conv(self.downConv, x).transpose(1, 2)))
        return F.max_pool1d(h, 3, stride=2, padding=1).transpose(1, 2)


class Encoder(nn.Module):
    def __init__(self, layers: list[EncoderLayer], convs: list[ConvLayer] | None, d_model: int):
        super().__init__()
        self.attn_layers = nn.ModuleList(layers)
        self.conv_layers = nn.ModuleList(convs) if convs is not None else None
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x, draw: Draw):
        for i, layer in enumerate(self.attn_layers):
            x = layer(x, draw)
            if self.conv_layers is not None and i < len(self.conv_layers):
                x = self.conv_layers[i](x)
        return self.norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, self_attention: AttentionLayer, cross_attention: AttentionLayer, d_model: int, d_ff: int):
        super().__init__()
        self.self_attention, self.cross_attention = self_attention, cross_attention
        self.conv1, self.conv2 = nn.Conv1d(d_model, d_ff, 1), nn.Conv1d(d_ff, d_model, 1)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x, memory, draw: Draw):
        x = self.norm1(x + self.self_attention(x, x, x, draw))
        x = self.norm2(x + self.cross_attention(x, memory, memory, draw))
        return self.norm3(x + self.conv2(F.gelu(self.conv1(x.transpose(1, 2)))).transpose(1, 2))


class Decoder(nn.Module):
    def __init__(self, layers: list[DecoderLayer], d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x, memory, draw: Draw):
        for layer in self.layers:
            x = layer(x, memory, draw)
        return self.norm(x)


class Informer(nn.Module):
    """Official `Informer(enc_in, dec_in, c_out, ..., out_len)` with dropout 0 and GELU."""

    def __init__(
        self,
        enc_in: int,
        c_out: int,
        out_len: int,
        factor: int = 5,
        d_model: int = 32,
        n_heads: int = 4,
        e_layers: int = 2,
        d_layers: int = 1,
        d_ff: int = 64,
        attn: str = "prob",
        embed: str = "timeF",
        freq: str = "h",
        distil: bool = True,
        mix: bool = True,
        max_len: int = 5000,
    ):
        super().__init__()
        self.pred_len = out_len
        self.enc_embedding = DataEmbedding(enc_in, d_model, embed, freq, max_len)
        self.dec_embedding = DataEmbedding(enc_in, d_model, embed, freq, max_len)
        self.encoder = Encoder(
            [
                EncoderLayer(AttentionLayer(d_model, n_heads, attn, False, factor, mix=False), d_model, d_ff)
                for _ in range(e_layers)
            ],
            [ConvLayer(d_model) for _ in range(e_layers - 1)] if distil else None,
            d_model,
        )
        self.decoder = Decoder(
            [
                DecoderLayer(
                    AttentionLayer(d_model, n_heads, attn, True, factor, mix=mix),
                    AttentionLayer(d_model, n_heads, "full", False, factor, mix=False),
                    d_model,
                    d_ff,
                )
                for _ in range(d_layers)
            ],
            d_model,
        )
        self.projection = nn.Linear(d_model, c_out)

    def forward(self, x_enc, x_mark_enc, x_dec, x_mark_dec, draw: Draw = global_draw):
        memory = self.encoder(self.enc_embedding(x_enc, x_mark_enc), draw)
        out = self.decoder(self.dec_embedding(x_dec, x_mark_dec), memory, draw)
        return self.projection(out)[:, -self.pred_len :]
