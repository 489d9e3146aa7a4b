"""HyenaDNA: a causal stack of pre-norm Hyena blocks over single nucleotides.

Nguyen et al., "HyenaDNA: Long-Range Genomic Foundation Models at Single
Nucleotide Resolution", NeurIPS 2023 (arXiv:2306.15794); the operator is from
Poli et al., "Hyena Hierarchy", ICML 2023. Architecture as the official release
(HazyResearch/hyena-dna `standalone_hyenadna.py`): token embedding (vocabulary
padded to a multiple of `pad_vocab_size_multiple`), blocks of
x += Hyena(LN(x)); x += MLP(LN(x)) with a tanh-GELU MLP, a final LayerNorm, and
an LM head tied to the embedding. The released checkpoints (LongSafari/hyenadna-*)
load through `zoo.convert.hyenadna`; sizes below are those of their config.json.

Padding: `mask` (B, L), True on real tokens, zeroes the embeddings of padded
positions, so outputs at real positions never depend on what the pads hold; the
model is causal, so right padding leaves real positions exactly as unpadded.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.heads import InputStem
from zoo.layers.hyena import HyenaOperator
from zoo.models.base import SequenceBackbone
from zoo.registry import PretrainedTag, register_model


class HyenaBlock(nn.Module):
    def __init__(self, d_model: int, d_inner: int, eps: float, resid_dropout: float, **mixer_kwargs):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.mixer = HyenaOperator(d_model, **mixer_kwargs)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(d_model, d_inner), act=nn.GELU(approximate="tanh"), fc2=nn.Linear(d_inner, d_model)
            )
        )
        self.drop = nn.Dropout(resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.mixer(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class HyenaDNA(SequenceBackbone):
    """HyenaDNA backbone; argument names follow the official `-hf` config.json.

    max_seq_len: longest input (the official `l_max`: context + 2 special tokens); sizes
        the positional tables of the implicit filters.
    vocab_size: token vocabulary (default 12, the official character tokenizer), padded
        to a multiple of `pad_vocab_size_multiple`; or `in_features` for real-valued input.
    filter_shift: the window's additive shift: 0.05 in the released inference code
        (and the `-hf` port), 0.0 in the training code; the converter uses 0.05.
    """

    causal = True

    def __init__(
        self,
        d_model: int = 128,
        n_layer: int = 2,
        d_inner: int | None = None,
        max_seq_len: int = 1026,
        vocab_size: int | None = None,
        in_features: int | None = None,
        pad_vocab_size_multiple: int = 8,
        hyena_order: int = 2,
        filter_order: int = 64,
        emb_dim: int = 5,
        num_inner_mlps: int = 2,
        activation_freq: float = 10.0,
        train_freq: bool = True,
        filter_shift: float = 0.05,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        decay_target: float = 1e-2,
        modulate: bool = True,
        normalized: bool = False,
        short_filter_order: int = 3,
        layer_norm_epsilon: float = 1e-5,
        embed_dropout: float = 0.1,
        resid_dropout: float = 0.0,
        hyena_dropout: float = 0.0,
        num_classes: int = 0,
        global_pool: str = "",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            vocab_size = 12
        if vocab_size is not None:
            vocab_size = math.ceil(vocab_size / pad_vocab_size_multiple) * pad_vocab_size_multiple
        self.max_seq_len = max_seq_len
        self.stem = InputStem(d_model, vocab_size=vocab_size, in_features=in_features)
        self.embed_drop = nn.Dropout(embed_dropout)
        mixer = dict(
            max_seq_len=max_seq_len,
            order=hyena_order,
            filter_order=filter_order,
            short_filter_order=short_filter_order,
            dropout=hyena_dropout,
            emb_dim=emb_dim,
            num_inner=num_inner_mlps,
            freq=activation_freq,
            train_freq=train_freq,
            shift=filter_shift,
            fast_decay_pct=fast_decay_pct,
            slow_decay_pct=slow_decay_pct,
            target=decay_target,
            modulate=modulate,
            normalized=normalized,
        )
        d_inner = d_inner or 4 * d_model
        self.blocks = nn.ModuleList(
            HyenaBlock(d_model, d_inner, layer_norm_epsilon, resid_dropout, **mixer) for _ in range(n_layer)
        )
        self.norm_f = nn.LayerNorm(d_model, eps=layer_norm_epsilon)
        self._init_weights(n_layer)
        self.init_head(d_model, num_classes, global_pool, drop_rate)

    def _init_weights(self, n_layer: int, std: float = 0.02) -> None:
        """GPT-2 style, as the official `_init_weights`: N(0, 0.02) linears (filter MLP included) and
        embedding, zero biases, and residual output projections scaled by 1/sqrt(2 n_layer)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            for weight in (block.mixer.out_proj.weight, block.mlp.fc2.weight):
                nn.init.normal_(weight, std=std / math.sqrt(2 * n_layer))

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1] > self.max_seq_len:
            raise ZooError(
                f"input of length {x.shape[1]} exceeds this HyenaDNA's max_seq_len {self.max_seq_len}; "
                "crop or chunk the sequences, or pick a model with a longer context (zoo list 'hyenadna*')"
            )
        h = self.stem(x)
        if mask is not None:
            h = h * mask.unsqueeze(-1).to(h.dtype)
        h = self.embed_drop(h)
        for block in self.blocks:
            h = block(h)
        return self.norm_f(h)

    def lm_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Next-token logits over the padded vocabulary, with the head tied to the embedding."""
        if self.stem.vocab_size is None:
            raise ZooError("lm_logits needs a token-input HyenaDNA (vocab_size=...), not in_features")
        return F.linear(features, self.stem.proj.weight)


# Sizes of the released checkpoints, from each LongSafari repo's config.json (see docs/hyenadna_conversion.md).
RELEASED_SIZES: dict[str, dict[str, int]] = {
    "hyenadna_tiny_1k": dict(d_model=128, n_layer=2, d_inner=512, max_seq_len=1026),
    "hyenadna_tiny_1k_d256": dict(d_model=256, n_layer=2, d_inner=1024, max_seq_len=1026),
    "hyenadna_tiny_16k": dict(d_model=128, n_layer=2, d_inner=512, max_seq_len=16386),
    "hyenadna_small_32k": dict(d_model=256, n_layer=4, d_inner=1024, max_seq_len=32770),
    "hyenadna_medium_160k": dict(d_model=256, n_layer=8, d_inner=1024, max_seq_len=160002),
    "hyenadna_medium_450k": dict(d_model=256, n_layer=8, d_inner=1024, max_seq_len=450002),
    "hyenadna_large_1m": dict(d_model=256, n_layer=8, d_inner=1024, max_seq_len=1000002),
}


def _hg38(repo: str, what: str) -> dict[str, PretrainedTag]:
    return {
        "hg38": PretrainedTag(
            source=f"hf://LongSafari/{repo}",
            converter="hyenadna",
            description=f"Official HyenaDNA {what}, next-nucleotide pre-training on the human reference genome hg38.",
        )
    }


@register_model
def test_hyenadna(**kw) -> HyenaDNA:
    return HyenaDNA(**{"d_model": 32, "n_layer": 2, "d_inner": 64, "filter_order": 16, "max_seq_len": 1024, **kw})


@register_model(pretrained=_hg38("hyenadna-tiny-1k-seqlen", "tiny, 1k context"))
def hyenadna_tiny_1k(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_tiny_1k"], **kw})


@register_model(pretrained=_hg38("hyenadna-tiny-1k-seqlen-d256", "tiny, 1k context, width 256"))
def hyenadna_tiny_1k_d256(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_tiny_1k_d256"], **kw})


@register_model(pretrained=_hg38("hyenadna-tiny-16k-seqlen-d128", "tiny, 16k context"))
def hyenadna_tiny_16k(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_tiny_16k"], **kw})


@register_model(pretrained=_hg38("hyenadna-small-32k-seqlen", "small, 32k context"))
def hyenadna_small_32k(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_small_32k"], **kw})


@register_model(pretrained=_hg38("hyenadna-medium-160k-seqlen", "medium, 160k context"))
def hyenadna_medium_160k(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_medium_160k"], **kw})


@register_model(pretrained=_hg38("hyenadna-medium-450k-seqlen", "medium, 450k context"))
def hyenadna_medium_450k(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_medium_450k"], **kw})


@register_model(pretrained=_hg38("hyenadna-large-1m-seqlen", "large, 1M context"))
def hyenadna_large_1m(**kw) -> HyenaDNA:
    return HyenaDNA(**{**RELEASED_SIZES["hyenadna_large_1m"], **kw})
