"""Bio-xLSTM: the xLSTM backbone of DNA-xLSTM, Prot-xLSTM and Chem-xLSTM.

Schmidinger et al., "Bio-xLSTM: Generative modeling, representation and in-context learning
of biological and chemical sequences" (ICLR 2025), arXiv:2411.04165; official code
ml-jku/DNA-xLSTM, ml-jku/Prot-xLSTM, ml-jku/Chem-xLSTM, built on the xLSTM of Beck et al.
(NeurIPS 2024, NX-AI/xlstm). Token embedding -> a stack of mLSTM and sLSTM blocks
(`slstm_at` lists the sLSTM positions, as the official `xLSTMBlockStackConfig`) ->
post-blocks LayerNorm; `lm_logits` is the language-model head (separate by default, as
in all three official repositories, or tied to the embedding).

Variants of the official DNA-xLSTM code, selected by keyword:
- `bidirectional=True`: each block runs on the sequence and on its reverse with shared
  weights and the two outputs are summed (masked language modelling). As officially, both
  directions include the block's residual path, so the residual stream is doubled.
- `rc_equivariant=True` (parameter sharing, "PS", after Caduceus, Schiff et al., ICML 2024): the
  stack runs with shared weights on the sequence and on its reverse complement (bases mapped
  by `complement_map` and reversed; the tokens in `rc_fixed_ids` (special tokens such as
  [SEP], [CLS], padding) keep their place, so the second strand is exactly what the tokenizer
  makes of the reverse-complemented text). Features are [h(x), h(rc x) aligned back to x's
  positions with channels flipped], width 2 * dim, so that f(rc x) equals f(x) with the bases
  mirrored and the channels flipped. The LM head adds the complement-permuted logits of the
  second half (official `RCPSLMHead`). The classifier is the official one
  (`CaduceusForSequenceClassification`, DNA-xLSTM's `conjoin_train` decoder): one linear head
  of width `dim` shared by both strands, their outputs averaged, so pooled predictions
  (mean, max; last/first when that token is a fixed special token) are strand-invariant and
  per-base ones strand-equivariant. Unlike the official code, which leaves mLSTM layers
  un-shared, every layer is covered.
Both variants see the whole sequence, so they are not causal and have no `step`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.heads import InputStem, pool_sequence
from zoo.layers.xlstm import GatedFeedForward, ResidualLayerNorm, small_init_, xLSTMBlock
from zoo.layers.xlstm_mlstm import mLSTMLayer
from zoo.layers.xlstm_slstm import sLSTMLayer
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model


class BioXLSTM(SequenceBackbone):
    recurrent = True

    def __init__(
        self,
        dim: int = 128,
        depth: int = 4,
        slstm_at: list[int] | str = (),
        vocab_size: int | None = None,
        in_features: int | None = None,
        num_classes: int = 0,
        global_pool: str = "",
        dropout: float = 0.0,
        m_num_heads: int = 4,
        m_proj_factor: float = 2.0,
        m_qkv_proj_blocksize: int = 4,
        m_conv1d_kernel_size: int = 4,
        m_bias: bool = False,
        m_chunk_size: int = 64,
        m_round_proj_up_to_multiple_of: int = 64,
        m_round_proj_up_dim_up: bool = True,
        m_rope_theta: float | None = None,
        m_rope_mode: str = "head",
        s_num_heads: int = 4,
        s_conv1d_kernel_size: int = 4,
        s_bias_init: str = "powerlaw_blockdependent",
        s_proj_factor: float = 1.3,
        s_act: str = "gelu",
        s_round_proj_up_to_multiple_of: int = 64,
        s_round_proj_up_dim_up: bool = True,
        add_post_blocks_norm: bool = True,
        tie_weights: bool = False,
        bidirectional: bool = False,
        rc_equivariant: bool = False,
        complement_map: list[int] | None = None,
        rc_fixed_ids: list[int] | None = None,
    ):
        super().__init__()
        if vocab_size is None and in_features is None:
            vocab_size = 16
        slstm_at = list(range(depth)) if slstm_at == "all" else sorted(slstm_at)
        if any(not 0 <= i < depth for i in slstm_at):
            raise ZooError(
                f"bio_xlstm: slstm_at={slstm_at} has block indices outside 0..{depth - 1}; "
                f"list positions of the depth={depth} blocks."
            )
        self.rc_equivariant, self.bidirectional, self.tie_weights = rc_equivariant, bidirectional, tie_weights
        self.recurrent = self.causal = not (rc_equivariant or bidirectional)
        if rc_equivariant:
            self.register_buffer("complement", _complement_ids(complement_map, vocab_size), persistent=False)
            self.register_buffer(
                "rc_fixed", torch.tensor(sorted(rc_fixed_ids or []), dtype=torch.long), persistent=False
            )
        if tie_weights and vocab_size is None:
            raise ZooError(
                "bio_xlstm: tie_weights=True needs token inputs (vocab_size); drop tie_weights for in_features models."
            )

        self.stem = InputStem(dim, vocab_size=vocab_size, in_features=in_features)
        if vocab_size:
            small_init_(self.stem.proj.weight, dim)
        self.blocks = nn.ModuleList()
        for idx in range(depth):
            if idx in slstm_at:
                layer = sLSTMLayer(dim, s_num_heads, s_conv1d_kernel_size, dropout, s_bias_init, idx, depth)
                ffn = GatedFeedForward(
                    dim,
                    s_proj_factor,
                    s_act,
                    dropout=dropout,
                    num_blocks=depth,
                    round_proj_up_to_multiple_of=s_round_proj_up_to_multiple_of,
                    round_proj_up_dim_up=s_round_proj_up_dim_up,
                )
            else:
                layer = mLSTMLayer(
                    dim,
                    m_num_heads,
                    m_proj_factor,
                    m_qkv_proj_blocksize,
                    m_conv1d_kernel_size,
                    m_bias,
                    dropout,
                    m_chunk_size,
                    depth,
                    m_round_proj_up_to_multiple_of,
                    m_round_proj_up_dim_up,
                    m_rope_theta,
                    m_rope_mode,
                )
                ffn = None
            self.blocks.append(xLSTMBlock(dim, layer, ffn))
        self.post_blocks_norm = ResidualLayerNorm(dim) if add_post_blocks_norm else nn.Identity()
        self.lm_head = None
        if vocab_size and not tie_weights:
            self.lm_head = nn.Linear(dim, vocab_size, bias=False)
            small_init_(self.lm_head.weight, dim)
        self.init_head(2 * dim if rc_equivariant else dim, num_classes, global_pool, dropout)
        self._strand_head()

    def forward_features(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L) ids or (B, L, C) features -> (B, L, num_features); `position_ids` (L,) or (B, L) feed RoPE only."""
        if self.rc_equivariant:
            # both strands through the same weights in one batch; the reverse complement is read 5'->3' as well
            index = strand_index(x, mask, self.rc_fixed)
            x = torch.cat([x, self.complement[x.gather(1, index)]])
            mask = None if mask is None else torch.cat([mask, mask])  # padding and fixed tokens keep their place
            if position_ids is not None and position_ids.dim() == 2:
                position_ids = torch.cat([position_ids, position_ids])
        h = self.stem(x)
        for block in self.blocks:
            if self.bidirectional:
                back_mask = None if mask is None else mask.flip(1)
                h = block(h, mask, position_ids) + block(h.flip(1), back_mask, position_ids).flip(1)
            else:
                h = block(h, mask, position_ids)
        h = self.post_blocks_norm(h)
        if self.rc_equivariant:
            forward, reverse = h.chunk(2)
            reverse = reverse.gather(1, index[..., None].expand_as(reverse)).flip(-1)  # back to x's positions
            h = torch.cat([forward, reverse], dim=-1)
        return h

    def reverse_complement(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The other strand's ids: bases complemented and reversed, `rc_fixed_ids` and padding in place."""
        return self.complement[ids.gather(1, strand_index(ids, mask, self.rc_fixed))]

    # RC-equivariant models: one head of width `dim` for both strands, outputs averaged (Caduceus' classifier).
    def _strand_head(self) -> None:
        if self.rc_equivariant and self.num_classes > 0:
            ref = next(self.parameters())
            self.head = nn.Linear(self.num_features // 2, self.num_classes).to(ref.device, ref.dtype)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        self._strand_head()

    def pool_features(self, features: torch.Tensor, mask: torch.Tensor | None, mode: str) -> torch.Tensor:
        """`pool_sequence` of `forward_features`; RC models average the two strands (width dim, strand-invariant)."""
        if not self.rc_equivariant:
            return pool_sequence(features, mask, mode)
        forward, reverse = features.chunk(2, dim=-1)
        return (pool_sequence(forward, mask, mode) + pool_sequence(reverse.flip(-1), mask, mode)) / 2

    def forward_head(
        self, features: torch.Tensor, mask: torch.Tensor | None = None, pre_logits: bool = False
    ) -> torch.Tensor:
        if not self.rc_equivariant:
            return super().forward_head(features, mask, pre_logits)
        pooled = self.head_drop(self.pool_features(features, mask, self.global_pool))
        return pooled if pre_logits else self.head(pooled)

    def lm_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Next-token (or masked-token) logits (B, L, vocab) from `forward_features` output."""
        if self.stem.vocab_size is None:
            raise ZooError("bio_xlstm: lm_logits needs a token model (vocab_size=...); this one takes in_features.")
        weight = self.stem.proj.weight if self.tie_weights else self.lm_head.weight
        if not self.rc_equivariant:
            return F.linear(features, weight)
        forward, reverse = features.chunk(2, dim=-1)
        return F.linear(forward, weight) + F.linear(reverse.flip(-1), weight[self.complement])

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> list:
        self._check_recurrent()
        return [block.init_state(batch, device, dtype) for block in self.blocks]

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """One token (B,) or feature vector (B, C) -> (head output at t, new state); constant memory in t."""
        self._check_recurrent()
        h = self.stem(x_t[:, None])[:, 0]
        new_state = []
        for block, block_state in zip(self.blocks, state):
            h, block_state = block.step(h, block_state)
            new_state.append(block_state)
        return self.step_head(self.post_blocks_norm(h)), new_state

    def _check_recurrent(self) -> None:
        if not self.recurrent:
            raise ZooError(
                "bio_xlstm: step() needs a causal model; bidirectional / rc_equivariant models read the whole sequence."
            )


def strand_index(
    ids: torch.Tensor, mask: torch.Tensor | None = None, fixed: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, L) gather index that reverses each row's bases: the real (`mask`) positions whose token is
    not in `fixed` are mirrored among themselves; fixed tokens and padding stay. An involution, so it
    also maps the reversed strand back. Without mask and fixed ids it is plain reversal, L-1-i."""
    length = ids.shape[1]
    positions = torch.arange(length, device=ids.device).expand_as(ids)
    moving = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
    if fixed is not None and fixed.numel():
        moving = moving & ~torch.isin(ids, fixed)
    rank = moving.cumsum(1) - 1  # k for the k-th moving position of the row
    mirror = (moving.sum(1, keepdim=True) - 1 - rank).clamp_min(0)
    order = torch.where(moving, positions, positions + length).argsort(1)  # moving positions first, in order
    return torch.where(moving, order.gather(1, mirror), positions)


def _complement_ids(complement_map: list[int] | None, vocab_size: int | None) -> torch.Tensor:
    if not vocab_size:
        raise ZooError("bio_xlstm: rc_equivariant=True needs token inputs (vocab_size=...).")
    if (
        complement_map is None
        or len(complement_map) != vocab_size
        or any(not 0 <= c < vocab_size for c in complement_map)
    ):
        raise ZooError(
            f"bio_xlstm: rc_equivariant=True needs complement_map, a list of {vocab_size} token ids "
            "(the complement of each id, itself for non-nucleotide tokens); take it from the genomics tokenizer."
        )
    return torch.tensor(complement_map, dtype=torch.long)


def convert_xlstm_state_dict(
    state_dict: dict[str, torch.Tensor], slstm_layout: str = "cuda"
) -> dict[str, torch.Tensor]:
    """State dict of the official `xLSTMLMModel` / `xLSTMBlockStack` (optionally under `backbone.`) -> `BioXLSTM` keys.

    Only keys change, except the sLSTM recurrent kernel and bias of checkpoints written
    with the package's CPU ("vanilla") backend, whose internal layout differs from the
    CUDA one used here: pass `slstm_layout="vanilla"` to permute them.
    """
    if slstm_layout not in ("cuda", "vanilla"):
        raise ZooError(f"convert_xlstm_state_dict: slstm_layout={slstm_layout!r}; choose 'cuda' or 'vanilla'.")
    out = {}
    for key, value in state_dict.items():
        name = key.removeprefix("backbone.").removeprefix("xlstm_block_stack.")
        if name == "token_embedding.weight":
            name = "stem.proj.weight"
        elif name.endswith("slstm_cell._recurrent_kernel_"):
            name = name.replace("_recurrent_kernel_", "recurrent_kernel")
            value = value.transpose(1, 2) if slstm_layout == "vanilla" else value
        elif name.endswith("slstm_cell._bias_"):
            name = name.replace("_bias_", "bias")
            if slstm_layout == "vanilla":
                heads, head_dim = state_dict[key.replace("_bias_", "_recurrent_kernel_")].shape[::2]
                value = value.view(4, heads, head_dim).transpose(0, 1).reshape(-1)
        out[name] = value.contiguous()
    return out


@register_model
def test_bio_xlstm(**kw) -> BioXLSTM:
    """Two blocks (mLSTM, sLSTM), width 32, tied LM head: the registry-wide test model."""
    return BioXLSTM(**{"dim": 32, "depth": 2, "slstm_at": [1], "m_chunk_size": 16, "tie_weights": True, **kw})


@register_model
def xlstm_tiny(**kw) -> BioXLSTM:
    """Generic xLSTM[3:1]: width 128, four blocks with the sLSTM second, as the xlstm package's examples."""
    return BioXLSTM(**{"dim": 128, "depth": 4, "slstm_at": [1], **kw})


# Official DNA-xLSTM config (configs/model/xlstm.yaml): 12-token character vocabulary, mLSTM
# inner width rounded down to a multiple of 64. The paper's exact 500k / 2M configs were not
# found in the released code; these take the released commands' widths and depths.
_DNA = {"vocab_size": 12, "m_round_proj_up_dim_up": False}


@register_model
def dna_xlstm_500k(**kw) -> BioXLSTM:
    """DNA-xLSTM small (0.44M parameters): width 128, four mLSTM blocks.

    As the official README's pre-training command.
    """
    return BioXLSTM(**{**_DNA, "dim": 128, "depth": 4, **kw})


@register_model
def dna_xlstm_2m(**kw) -> BioXLSTM:
    """DNA-xLSTM 2M class (1.67M parameters): width 256, four mLSTM blocks. The official pre-training script
    (scripts_pretrain/run_pretrain_xlstm.sh) has this width and depth but defaults to sLSTM blocks
    (`slstm_at="all", s_proj_factor=1.1, s_round_proj_up_dim_up=False, s_round_proj_up_to_multiple_of=8`:
    1.40M parameters here), the variant its parameter-sharing RC models use."""
    return BioXLSTM(**{**_DNA, "dim": 256, "depth": 4, **kw})


@register_model
def prot_xlstm_26m(**kw) -> BioXLSTM:
    """Prot-xLSTM-26M: width 512, 16 mLSTM blocks, 38 tokens, RoPE over the inner dim (base 500k).

    Trained to 2^17 tokens.
    """
    return BioXLSTM(
        **{"vocab_size": 38, "dim": 512, "depth": 16, "m_rope_theta": 500_000.0, "m_rope_mode": "inner", **kw}
    )


@register_model
def prot_xlstm_102m(**kw) -> BioXLSTM:
    """Prot-xLSTM-102M: the official default config (width 1024, 16 mLSTM blocks, RoPE base 500k, context 2^17)."""
    return BioXLSTM(
        **{"vocab_size": 38, "dim": 1024, "depth": 16, "m_rope_theta": 500_000.0, "m_rope_mode": "inner", **kw}
    )


@register_model
def chem_xlstm_15m(**kw) -> BioXLSTM:
    """Chem-xLSTM-15M (official "xLSTM 14.8M"): width 512, nine mLSTM blocks with 8 heads, 37 SMILES tokens."""
    return BioXLSTM(**{"vocab_size": 37, "dim": 512, "depth": 9, "m_num_heads": 8, **kw})
