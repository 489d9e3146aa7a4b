"""Test-only restatement of the official HyenaDNA, with the official module names.

Nguyen et al., "HyenaDNA", NeurIPS 2023; Poli et al., "Hyena Hierarchy", ICML 2023.
The math follows HazyResearch/hyena-dna `standalone_hyenadna.py` (the released
inference code) and the LongSafari `-hf` port: fftconv at FFT size exactly 2L,
z from a complex exponential, one `Sin` module shared by the implicit MLP, and the
flash-attention style block that carries (hidden, residual) pairs. Modules are
named as upstream so `state_dict()` gives the released key layouts:

- `LightningWrapper(...)` -> `model.backbone.*`, `model.lm_head.weight` (weights.ckpt),
  with `checkpointed=True` -> `.mixer.layer.` / `.mlp.layer.` (gradient checkpointing);
- `HFCausalLM(...)` -> `hyena.backbone.*`, `lm_head.weight` (the `-hf` repos).

`z_as_parameter` picks the release where the positional table is a Parameter
(-hf before Feb 2024) instead of a buffer (Lightning, lr_pos_emb = 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def fftconv_2l(u: torch.Tensor, k: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """The official long convolution: rfft of size 2L, kernel pre-divided by 2L, irfft with norm='forward'."""
    n = 2 * u.shape[-1]
    spectrum = torch.fft.rfft(u, n=n) * (torch.fft.rfft(k, n=n) / n)
    return torch.fft.irfft(spectrum, n=n, norm="forward")[..., : u.shape[-1]] + u * skip[:, None]


class Sin(nn.Module):
    def __init__(self, width: int, w: float):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, width))


class PositionalEmbedding(nn.Module):
    def __init__(self, emb_dim: int, seq_len: int, z_as_parameter: bool):
        super().__init__()
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, seq_len)[None, :, None]
        w = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[None, :, None] / seq_len
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        phase = torch.exp(-1j * f * w)
        z = torch.cat([t, phase.real, phase.imag], dim=-1)
        if z_as_parameter:
            self.z = nn.Parameter(z)
        else:
            self.register_buffer("z", z)
        self.register_buffer("t", t)


class ExponentialModulation(nn.Module):
    def __init__(self, channels: int, shift: float, fast=0.3, slow=1.5, target=1e-2):
        super().__init__()
        self.shift = shift
        self.register_buffer(
            "deltas", torch.linspace(math.log(target) / slow, math.log(target) / fast, channels)[None, None]
        )


class HyenaFilter(nn.Module):
    def __init__(self, channels, seq_len, emb_dim, order, w, shift, num_inner_mlps, z_as_parameter, normalized):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(channels))
        self.pos_emb = PositionalEmbedding(emb_dim, seq_len, z_as_parameter)
        act = Sin(order, w)
        layers = [nn.Linear(emb_dim, order), act]
        for _ in range(num_inner_mlps):
            layers += [nn.Linear(order, order), act]
        self.implicit_filter = nn.Sequential(*layers, nn.Linear(order, channels, bias=False))
        self.modulation = ExponentialModulation(channels, shift)
        self.normalized = normalized

    def kernel(self, length: int) -> torch.Tensor:
        """(1, L, channels) like upstream `filter(L)`."""
        h = self.pos_emb.z[:, :length]
        for module in self.implicit_filter:
            h = torch.sin(module.freq * h) if isinstance(module, Sin) else module(h)
        decay = torch.exp(-self.pos_emb.t[:, :length] * self.modulation.deltas.abs())
        h = h * (decay + self.modulation.shift)
        return h / torch.norm(h, dim=-1, p=1, keepdim=True) if self.normalized else h


class HyenaOperator(nn.Module):
    def __init__(self, d_model, l_max, filter_order, **filter_args):
        super().__init__()
        self.d_model = d_model
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(3 * d_model, 3 * d_model, 3, padding=2, groups=3 * d_model)
        self.filter_fn = HyenaFilter(d_model, l_max, order=filter_order, **filter_args)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[1]
        uc = self.short_filter(self.in_proj(u).transpose(1, 2))[..., :length]
        x0, x1, v = uc.split(self.d_model, dim=1)
        k = self.filter_fn.kernel(length)[0].transpose(0, 1)  # order 2: one kernel over all channels
        v = fftconv_2l(v * x1, k, self.filter_fn.bias)
        return self.out_proj((v * x0).transpose(1, 2))


class Mlp(nn.Module):
    def __init__(self, d_model, d_inner):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_model, d_inner), nn.Linear(d_inner, d_model)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Checkpointed(nn.Module):
    """Upstream `CheckpointedModule`: only adds `.layer` to the key path."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


class Block(nn.Module):
    def __init__(self, d_model, d_inner, eps, checkpointed, mixer_args):
        super().__init__()
        wrap = Checkpointed if checkpointed else (lambda m: m)
        self.mixer = wrap(HyenaOperator(d_model, **mixer_args))
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.mlp = wrap(Mlp(d_model, d_inner))
        self.norm2 = nn.LayerNorm(d_model, eps=eps)

    def forward(self, hidden, residual):
        residual = hidden if residual is None else hidden + residual
        hidden = self.mixer(self.norm1(residual))
        residual = hidden + residual
        return self.mlp(self.norm2(residual)), residual


class Embeddings(nn.Module):
    def __init__(self, vocab, d_model):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d_model)


class LMBackbone(nn.Module):
    def __init__(self, d_model, n_layer, d_inner, vocab, eps=1e-5, checkpointed=False, **mixer_args):
        super().__init__()
        self.embeddings = Embeddings(vocab, d_model)
        self.layers = nn.ModuleList(Block(d_model, d_inner, eps, checkpointed, mixer_args) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embeddings.word_embeddings(ids), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        return self.ln_f(hidden + residual)


class LMHeadModel(nn.Module):
    """Upstream `ConvLMHeadModel`: the backbone plus an LM head tied to the embedding."""

    def __init__(self, vocab_size, pad_vocab_size_multiple, **backbone_args):
        super().__init__()
        vocab = math.ceil(vocab_size / pad_vocab_size_multiple) * pad_vocab_size_multiple
        self.backbone = LMBackbone(vocab=vocab, **backbone_args)
        self.lm_head = nn.Linear(backbone_args["d_model"], vocab, bias=False)
        self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight

    def forward(self, ids):
        hidden = self.backbone(ids)
        return hidden, self.lm_head(hidden)


class LightningWrapper(nn.Module):
    """The Lightning task holding the model as `.model` (weights.ckpt keys start with `model.`)."""

    def __init__(self, **model_args):
        super().__init__()
        self.model = LMHeadModel(**model_args)

    def forward(self, ids):
        return self.model(ids)


class HFCausalLM(nn.Module):
    """`HyenaDNAForCausalLM`: `.hyena.backbone` plus an untied (tie_word_embeddings false) copy of the head."""

    def __init__(self, **model_args):
        super().__init__()
        inner = LMHeadModel(**model_args)
        self.hyena = nn.Module()
        self.hyena.backbone = inner.backbone
        self.lm_head = nn.Linear(inner.lm_head.in_features, inner.lm_head.out_features, bias=False)

    def forward(self, ids):
        hidden = self.hyena.backbone(ids)
        return hidden, self.lm_head(hidden)


def randomize_(model: nn.Module, seed: int = 0, std: float = 0.3, jitter_buffers: bool = True) -> nn.Module:
    """Replace every parameter by N(0, std) noise and jitter the buffers (z, t, deltas), so that no
    mapping mistake can hide behind an initial value or a recomputed table."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for b in model.buffers() if jitter_buffers else ():
            b.add_(torch.randn(b.shape, generator=g) * 0.05)
        if isinstance(model, HFCausalLM):
            model.lm_head.weight.copy_(model.hyena.backbone.embeddings.word_embeddings.weight)
    return model
