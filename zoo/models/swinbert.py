"""SwinBERT: end-to-end video captioning with a Video Swin encoder and a sparse multimodal transformer.

Lin, Li, Lin, Ahmed, Gan, Liu, Lu, Wang, "SwinBERT: End-to-End Transformers with Sparse Attention for
Video Captioning", CVPR 2022. Follows the official code (microsoft/SwinBERT: `video_captioning_e2e_vid_swin_bert.py`,
`caption_tensorizer.py`, `layers/bert/modeling_bert.py`):

- Video Swin encoder: torchvision's `SwinTransformer3d` (the `swin3d_t` / `swin3d_s` architecture, never
  downloaded; `encoder_weights=<file>` loads a local Kinetics state dict in torchvision's layout). Its grid
  features (B, T/2, H/32, W/32, C) are the video tokens, projected C -> `img_feature_dim` -> `hidden_size`
  (official `fc` then `img_embedding`, then dropout; no position embedding, as in the official code).
- Multimodal transformer: post-LayerNorm BERT layers over [caption tokens, video tokens]. Caption tokens
  attend causally to caption tokens and fully to video tokens; video tokens attend only to video tokens
  (the official `learn_vid_att` mask), through the learnable sparse attention mask: an (Nv x Nv) parameter
  passed through a sigmoid, diagonal fixed to 1. Regulariser: `sparsity_weight * mean(|V|)` over the
  off-diagonal mask V (the official `get_loss_sparsity`; the paper writes lambda * sum |V|, the code averages).
- Masked language modelling: a fraction of caption positions (not [CLS]; [SEP] included, it ends the caption)
  is replaced by [MASK] 80% / a random word 10% / kept 10%, and predicted (`mask_caption_tokens`, `mlm_loss`).
  Decoding appends [MASK] to the caption so far and predicts it (greedy, or beam search with a length penalty).

Because video tokens never attend to caption tokens, the video stream is computed once per clip
(`encode_video` -> `VideoMemory`, the per-layer video keys/values) and reused at every decoding step.

Differences from the official code:
- `mask_bias="log"` (default) adds log(mask) to the attention scores, so the attention weights are the
  softmax weights multiplied by the mask and renormalised, and the mask learns from the captioning loss.
  The official code feeds the soft mask to BERT's `(1 - mask) * -10000` bias: a mask value of 0.5 becomes
  -5000, i.e. no attention and no gradient, so in practice only the sparsity term moves it.
  `mask_bias="official"` reproduces that.
- `mask_init`: "normal" (default) draws the mask logits from N(0, 1), the official init (`learn_vid_att` is an
  `nn.Embedding` at PyTorch's default). Under the official bias that draw is invisible (every pair below ~1 - 1e-3 is
  blocked); under the log bias it is a fixed random reweighting of the video attention, so `mask_init=<c>` starts the
  mask uniform at sigmoid(c) instead (the CPU digits config uses 0: the official draw's mean; docs/video.md).
- No token-type embeddings (captions are one segment); the MLM head's transform (dense, GELU, LayerNorm) is
  the last stage of `forward_features` and the vocabulary projection is the zoo classifier `head`
  (`num_classes` defaults to `vocab_size`; untied, as the official `tie_weights=False`).
- Decoding never emits [PAD], [CLS] or [MASK]; beam search finalises a hypothesis when it picks [SEP] among
  the top `num_beams` candidates and stops when `num_beams` are final (fairseq's rule), so beam size 1 is
  exactly greedy decoding; the official beam search (with spare candidates) is not.
- BERT's init std (`initializer_range`) defaults to 0.02 * sqrt(768 / hidden_size) below BERT-base's width (0.02
  from 768 up): at a fixed 0.02 a 64-wide model never learned to read the video tokens (`bert_initializer_range`).
- `video_position_embedding=True` (off by default, as the official code has none) adds a learned position to each
  video token; the CPU-size digits config uses it (docs/video.md).
- Frames come in as (B, T, 3, H, W) (or grey (B, T, 1, H, W)) floats in [0, 1] and are normalised with the
  Kinetics mean/std of torchvision's weights inside the model (`normalize_input=False` to skip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video.swin_transformer import SwinTransformer3d

from zoo.errors import ZooError
from zoo.models.base import SequenceBackbone
from zoo.registry import register_model

#: special-token ids every caption tokenizer of the zoo uses (domains/video/captions.py keeps this order).
PAD_ID, CLS_ID, SEP_ID, MASK_ID, UNK_ID = 0, 1, 2, 3, 4
FIRST_WORD_ID = 5
#: torchvision's Kinetics-400 video weights expect frames normalised with these (Swin3D_T_Weights.transforms()).
KINETICS_MEAN = (0.485, 0.456, 0.406)
KINETICS_STD = (0.229, 0.224, 0.225)
#: torchvision's swin3d_t / swin3d_s architectures (torchvision.models.video.swin_transformer).
SWIN3D_T = dict(
    patch_size=(2, 4, 4), embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=(8, 7, 7)
)
SWIN3D_S = {**SWIN3D_T, "depths": (2, 2, 18, 2)}
#: BERT-base, the paper's multimodal transformer.
BERT_BASE = dict(hidden_size=768, num_layers=12, num_attention_heads=12, intermediate_size=3072)


def bert_initializer_range(hidden_size: int, initializer_range: float | None = None) -> float:
    """BERT's `initializer_range`: 0.02 at BERT-base's width 768, scaled by sqrt(768 / hidden_size) below it.

    Why scaled: an attention branch's output is (W_v x) W_o, so at N(0, s) weights its size relative to the residual
    is about hidden * s**2 (0.3 for BERT-base at 0.02). At width 64 the same 0.02 gives 0.026: the caption tokens'
    attention to the video tokens starts ~12x weaker than in BERT and a small model learns the caption template
    from the words alone and never reads the video (measured: a 64-wide model fed the digit as a one-hot video
    token still guessed it at chance after 300 steps; at the scaled 0.069 it names it every time).
    An explicit `initializer_range` is used as given.
    """
    if initializer_range is not None:
        if initializer_range <= 0:
            raise ZooError(f"SwinBERT initializer_range={initializer_range} must be > 0")
        return float(initializer_range)
    return 0.02 * math.sqrt(BERT_BASE["hidden_size"] / hidden_size) if hidden_size < BERT_BASE["hidden_size"] else 0.02


def initial_mask_logits(num_video_tokens: int, mask_init: float | str = "normal") -> torch.Tensor:
    """The learned mask's (Nv, Nv) logits at init: "normal" draws N(0, 1) (the official `learn_vid_att`, an
    `nn.Embedding` left at PyTorch's default init); a number c fills them with c, so the mask starts uniform at
    sigmoid(c) and every video token weighs every other one alike (c = 0: the mean of the official draw, 0.5).

    Why a constant matters with `mask_bias="log"`: the N(0, 1) draw adds log sigmoid(z) to the attention scores, a
    fixed random reweighting of the video tokens (factors ~0.2 to ~0.8) shared by every head and layer that the
    model can only undo by moving each logit by about its own size. With the official -10000 bias the draw does not
    matter (any value below ~1 - 1e-3 blocks the pair), so the paper's results do not depend on it.
    A constant draws no random numbers, so the rest of the model initialises as without the mask (same seed).
    """
    if mask_init == "normal":
        return torch.randn(num_video_tokens, num_video_tokens)
    return torch.full((num_video_tokens, num_video_tokens), float(mask_init))


def video_token_grid(num_frames: int, img_size: tuple[int, int], patch_size, num_stages: int) -> tuple[int, int, int]:
    """(T', H', W') of the encoder's grid: patch embedding pads up to the patch size, each patch merging halves H, W."""
    t, h, w = (math.ceil(n / p) for n, p in zip((num_frames, *img_size), patch_size))
    for _ in range(num_stages - 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return t, h, w


@dataclass
class VideoMemory:
    """What caption tokens read from a clip: each layer's video keys/values (B, heads, Nv, head_dim),
    and the last layer's video token states (B, Nv, hidden)."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    states: torch.Tensor

    def repeat_interleave(self, n: int) -> VideoMemory:
        return VideoMemory(
            [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in self.kv],
            self.states.repeat_interleave(n, 0),
        )


@dataclass
class CaptionOutput:
    """logits: (N_masked, V) at `masked_pos`, or (B, L, V); sparsity_loss: the weighted mask regulariser."""

    logits: torch.Tensor
    sparsity_loss: torch.Tensor


@dataclass
class MLMOutput:
    loss: torch.Tensor  # mlm_loss + sparsity_loss: what to backpropagate
    mlm_loss: torch.Tensor
    sparsity_loss: torch.Tensor
    logits: torch.Tensor  # (N_masked, V)
    targets: torch.Tensor  # (N_masked,)

    @property
    def accuracy(self) -> torch.Tensor:
        return (self.logits.argmax(-1) == self.targets).float().mean()


class MultimodalLayer(nn.Module):
    """One post-LayerNorm BERT layer run as two streams: video queries over video keys (sparse mask),
    caption queries over caption keys (causal) and video keys (full). Same weights for both streams."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ZooError(f"SwinBERT hidden_size={dim} is not a multiple of num_attention_heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-12)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = attended.shape
        x = self.norm1(x + self.drop(self.proj(attended.transpose(1, 2).reshape(b, n, -1))))
        return self.norm2(x + self.drop(self.ffn(x)))

    def attend(self, q, k, v, bias: torch.Tensor | None) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        bias = None if bias is None else bias.to(q.dtype)  # under autocast q is half while the bias is float
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)

    def forward_video(
        self, video: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        q, k, v = self.split_heads(video)
        return self.finish(video, self.attend(q, k, v, bias)), (k, v)

    def forward_text(
        self, text: torch.Tensor, video_kv: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor
    ) -> torch.Tensor:
        q, k, v = self.split_heads(text)
        k = torch.cat([k, video_kv[0]], dim=2)
        v = torch.cat([v, video_kv[1]], dim=2)
        return self.finish(text, self.attend(q, k, v, bias))


class SwinBERT(SequenceBackbone):
    """Video Swin encoder + multimodal BERT with a learnable sparse attention mask, trained by masked LM.

    Backbone contract: `forward_features((frames, input_ids), mask)` -> caption token features (B, L, hidden);
    `head` maps them to vocabulary logits (`num_classes` defaults to `vocab_size`). Captioning API:
    `encode_video`, `caption_forward`, `mlm_loss`, `generate`, `sparsity_loss`.
    """

    #: what the video task reads: this model captions clips (frames + caption ids in, words out).
    captioner = True
    #: caption token t sees caption tokens <= t (and every video token).
    causal = True
    recurrent = False

    def __init__(
        self,
        vocab_size: int = 30522,
        num_frames: int = 32,
        img_size: int | tuple[int, int] = 224,
        patch_size: tuple[int, int, int] = SWIN3D_T["patch_size"],
        embed_dim: int = SWIN3D_T["embed_dim"],
        depths: tuple[int, ...] = SWIN3D_T["depths"],
        num_heads: tuple[int, ...] = SWIN3D_T["num_heads"],
        window_size: tuple[int, int, int] = SWIN3D_T["window_size"],
        stochastic_depth_prob: float = 0.1,
        encoder_weights: str | None = None,
        normalize_input: bool = True,
        img_feature_dim: int = 512,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        dropout: float = 0.1,
        initializer_range: float | None = None,
        max_caption_len: int = 50,
        learned_mask: bool = True,
        video_position_embedding: bool = False,
        sparsity_weight: float = 0.5,
        mask_bias: str = "log",
        mask_init: float | str = "normal",
        num_classes: int | None = None,
        global_pool: str = "",
    ):
        super().__init__()
        if mask_bias not in ("log", "official"):
            raise ZooError(f"SwinBERT mask_bias={mask_bias!r}; choose log or official")
        number = isinstance(mask_init, (int, float)) and not isinstance(mask_init, bool)
        if mask_init != "normal" and not (number and math.isfinite(mask_init)):
            raise ZooError(f"SwinBERT mask_init={mask_init!r}; choose normal (official N(0, 1)) or a number (constant)")
        if vocab_size <= FIRST_WORD_ID:
            raise ZooError(f"SwinBERT vocab_size={vocab_size} leaves no words after the {FIRST_WORD_ID} special tokens")
        self.vocab_size, self.max_caption_len = vocab_size, max_caption_len
        self.num_frames = num_frames
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.learned_mask, self.sparsity_weight, self.mask_bias = learned_mask, sparsity_weight, mask_bias

        # Video Swin: torchvision's class, of which the classification head and pooling are unused.
        self.encoder = SwinTransformer3d(
            patch_size=list(patch_size),
            embed_dim=embed_dim,
            depths=list(depths),
            num_heads=list(num_heads),
            window_size=list(window_size),
            stochastic_depth_prob=stochastic_depth_prob,
            num_classes=1,
        )
        self.encoder.head = nn.Identity()
        self.normalize_input = normalize_input
        self.register_buffer("pixel_mean", torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1), persistent=False)
        self.video_grid = video_token_grid(num_frames, self.img_size, patch_size, len(depths))
        self.num_video_tokens = math.prod(self.video_grid)

        self.video_fc = nn.Linear(self.encoder.num_features, img_feature_dim)
        self.video_embedding = nn.Linear(img_feature_dim, hidden_size)
        # Not in the official code (its video tokens carry no position): an option for small encoders whose tokens
        # cannot tell where and when they are, which the captions' directions need (docs/video.md measures it).
        self.video_position = nn.Embedding(self.num_video_tokens, hidden_size) if video_position_embedding else None
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(max_caption_len, hidden_size)
        self.embed_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            MultimodalLayer(hidden_size, num_attention_heads, intermediate_size, dropout) for _ in range(num_layers)
        )
        self.mask_init = mask_init
        self.video_mask_logits = (
            nn.Parameter(initial_mask_logits(self.num_video_tokens, mask_init)) if learned_mask else None
        )
        # BERT's MLM prediction transform; the vocabulary projection is `head`.
        self.mlm_transform = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size, eps=1e-12)
        )
        self.init_head(hidden_size, vocab_size if num_classes is None else num_classes, global_pool)
        self.initializer_range = bert_initializer_range(hidden_size, initializer_range)
        self._init_text_weights()
        if encoder_weights:
            self.load_encoder_weights(encoder_weights)

    def _init_text_weights(self) -> None:
        """BERT's initialisation (N(0, initializer_range) weights, zero biases) for the multimodal transformer. The
        Swin encoder keeps torchvision's, `video_fc` PyTorch's default (the official `fc` is outside the BERT model
        that `init_weights` is applied to)."""
        for name, module in self.named_modules():
            if name.startswith(("encoder", "video_fc")):
                continue
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=self.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.word_embeddings.weight[PAD_ID].zero_()

    # ------------------------------------------------------------------ configuration the hub saves
    @property
    def zoo_config(self) -> dict | None:
        return self.__dict__.get("_zoo_config")

    @zoo_config.setter
    def zoo_config(self, config: dict) -> None:
        # The Kinetics file only initialises the encoder; afterwards its weights live in the state dict, so a
        # saved model must not name a local file that the machine loading it may not have.
        kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "encoder_weights"}
        self.__dict__["_zoo_config"] = {**config, "kwargs": kwargs}

    def load_encoder_weights(self, path: str) -> None:
        """Load a local torchvision-layout Video Swin state dict (e.g. the swin3d_t Kinetics-400 file)."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise ZooError(f"encoder_weights={path!r}: no such file; give the path of a local swin3d state dict")
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip or format errors all mean the same thing to the user
            raise ZooError(f"encoder_weights={path!r}: cannot read a PyTorch state dict ({err})") from None
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict):
            raise ZooError(f"encoder_weights={path!r}: holds a {type(state).__name__}, not a state dict")
        state = {k: v for k, v in state.items() if not k.startswith("head.")}  # Kinetics classifier: unused
        own = self.encoder.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or wrong:
            detail = "; ".join(
                f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong))
                if keys
            )
            raise ZooError(
                f"encoder_weights={path!r} does not fit this encoder ({detail}); give a torchvision "
                "swin3d state dict of the same size (swin3d_t for swinbert_tiny, swin3d_s for swinbert_small)"
            )
        self.encoder.load_state_dict(state)

    # ------------------------------------------------------------------ video side
    def video_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> projected video tokens (B, Nv, hidden). Grey frames
        (B, T, 1, H, W) are repeated to RGB, as the Kinetics weights read three channels."""
        if frames.dim() != 5 or frames.shape[2] not in (1, 3):
            raise ZooError(f"SwinBERT expects frames (B, T, 3, H, W) or (B, T, 1, H, W); got {tuple(frames.shape)}")
        if frames.shape[2] == 1:
            frames = frames.expand(-1, -1, 3, -1, -1)
        if (frames.shape[1], *frames.shape[3:]) != (self.num_frames, *self.img_size):
            raise ZooError(
                f"SwinBERT was built for {self.num_frames} frames of {self.img_size[0]}x{self.img_size[1]} "
                f"({self.num_video_tokens} video tokens, the size of its learned mask); got "
                f"{frames.shape[1]} frames of {frames.shape[3]}x{frames.shape[4]}: resample the clips or build the "
                "model with num_frames=/img_size= to match"
            )
        x = frames.transpose(1, 2)  # torchvision's video models read (B, C, T, H, W)
        if self.normalize_input:
            x = (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)
        enc = self.encoder
        grid = enc.norm(enc.features(enc.pos_drop(enc.patch_embed(x))))  # (B, T', H', W', C)
        tokens = self.video_embedding(self.video_fc(grid.flatten(1, 3)))
        if self.video_position is not None:
            tokens = tokens + self.video_position.weight
        return self.drop(tokens)

    def video_mask(self) -> torch.Tensor | None:
        """The learned (Nv, Nv) mask in [0, 1], diagonal 1 (a token always sees itself); None without one."""
        if self.video_mask_logits is None:
            return None
        eye = torch.eye(self.num_video_tokens, device=self.video_mask_logits.device, dtype=torch.bool)
        return torch.where(eye, 1.0, torch.sigmoid(self.video_mask_logits))

    def video_attention_bias(self) -> torch.Tensor | None:
        """Additive attention bias among video tokens (1, 1, Nv, Nv); None means full attention."""
        if self.video_mask_logits is None:
            return None
        if self.mask_bias == "official":
            bias = (1.0 - self.video_mask()) * -10000.0
        else:  # log(mask): softmax weights times the mask, renormalised
            eye = torch.eye(self.num_video_tokens, device=self.video_mask_logits.device, dtype=torch.bool)
            bias = torch.where(eye, 0.0, F.logsigmoid(self.video_mask_logits))
        return bias[None, None]

    def sparsity_loss(self) -> torch.Tensor:
        """`sparsity_weight * mean |V|` over the (Nv, Nv) mask with the diagonal zeroed (official normalisation)."""
        if self.video_mask_logits is None:
            return self.word_embeddings.weight.new_zeros(())
        eye = torch.eye(self.num_video_tokens, device=self.video_mask_logits.device, dtype=torch.bool)
        off_diagonal = torch.where(eye, 0.0, torch.sigmoid(self.video_mask_logits))
        return self.sparsity_weight * off_diagonal.abs().mean()

    def video_stream(self, tokens: torch.Tensor) -> VideoMemory:
        """Run projected video tokens (B, Nv, hidden) through every layer; they never read caption tokens."""
        bias = self.video_attention_bias()
        kv = []
        for layer in self.layers:
            tokens, layer_kv = layer.forward_video(tokens, bias)
            kv.append(layer_kv)
        return VideoMemory(kv, tokens)

    def encode_video(self, frames: torch.Tensor) -> VideoMemory:
        return self.video_stream(self.video_tokens(frames))

    # ------------------------------------------------------------------ caption side
    def caption_features(
        self, input_ids: torch.Tensor, memory: VideoMemory, caption_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Caption ids (B, L) + a clip's `VideoMemory` -> MLM features (B, L, hidden).

        caption_mask: (B, L) True at real tokens; padded caption positions are hidden from the others
        (right padding needs none: a causal token never sees a later pad).
        """
        b, length = input_ids.shape
        if length > self.max_caption_len:
            raise ZooError(
                f"caption of {length} tokens is longer than SwinBERT's max_caption_len={self.max_caption_len}; "
                "truncate captions or build the model with a larger max_caption_len"
            )
        positions = torch.arange(length, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = self.drop(self.embed_norm(x))
        allowed = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()[None]
        if caption_mask is not None:
            allowed = allowed & caption_mask.bool()[:, None, :]
        video_cols = torch.ones(allowed.shape[0], length, memory.states.shape[1], dtype=torch.bool, device=x.device)
        allowed = torch.cat([allowed, video_cols], dim=2)  # every caption token sees every video token
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, float("-inf"))
        bias = bias[:, None]  # (B or 1, 1, L, L + Nv)
        for layer, kv in zip(self.layers, memory.kv):
            x = layer.forward_text(x, kv, bias)
        return self.mlm_transform(x)

    def split_inputs(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, (tuple, list)) and len(x) == 2:
            return x[0], x[1]
        raise ZooError(
            "SwinBERT takes a pair (frames (B, T, 3, H, W), caption ids (B, L)); "
            f"got {type(x).__name__}{tuple(x.shape) if torch.is_tensor(x) else ''}"
        )

    def forward_features(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        frames, input_ids = self.split_inputs(x)
        return self.caption_features(input_ids, self.encode_video(frames), mask)

    def example_inputs(self, batch: int = 2, length: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """Random frames at the built clip size and `length` caption ids starting with [CLS]."""
        frames = torch.rand(batch, self.num_frames, 3, *self.img_size)
        ids = torch.randint(FIRST_WORD_ID, self.vocab_size, (batch, length))
        ids[:, 0] = CLS_ID
        return frames, ids

    def caption_forward(
        self,
        frames: torch.Tensor,
        input_ids: torch.Tensor,
        masked_pos: torch.Tensor | None = None,
        caption_mask: torch.Tensor | None = None,
    ) -> CaptionOutput:
        """Vocabulary logits at `masked_pos` (B, L bool -> (N, V)), or at every position (B, L, V)."""
        features = self.caption_features(input_ids, self.encode_video(frames), caption_mask)
        if masked_pos is not None:
            features = features[masked_pos.bool()]
        return CaptionOutput(self.step_head(features), self.sparsity_loss())

    def mlm_loss(
        self,
        frames: torch.Tensor,
        caption_ids: torch.Tensor,
        mask_prob: float = 0.5,
        max_masked: int = 45,
        generator: torch.Generator | None = None,
    ) -> MLMOutput:
        """One training step's loss: mask `caption_ids` ([CLS] words [SEP] [PAD]...), predict them,
        add the sparsity regulariser. Defaults are the official MSR-VTT training flags."""
        inputs, masked_pos, targets = mask_caption_tokens(
            caption_ids, self.vocab_size, mask_prob, max_masked, generator=generator
        )
        out = self.caption_forward(frames, inputs, masked_pos)
        mlm = F.cross_entropy(out.logits.float(), targets)
        return MLMOutput(mlm + out.sparsity_loss, mlm, out.sparsity_loss, out.logits, targets)

    # ------------------------------------------------------------------ decoding
    def next_token_logprobs(self, prefix: torch.Tensor, memory: VideoMemory) -> torch.Tensor:
        """Log-probabilities (N, V) of the token after `prefix` ([CLS] w1..wt): append [MASK], read its logits."""
        masked = torch.cat([prefix, prefix.new_full((prefix.shape[0], 1), MASK_ID)], dim=1)
        logits = self.step_head(self.caption_features(masked, memory)[:, -1]).float()
        logits[:, [PAD_ID, CLS_ID, MASK_ID]] = float("-inf")  # tokens a caption never contains
        return logits.log_softmax(-1)

    @torch.no_grad()
    def generate(
        self,
        frames: torch.Tensor,
        max_length: int = 20,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        return_scores: bool = False,
        use_beam_search: bool | None = None,
    ) -> list[list[int]] | tuple[list[list[int]], list[float]]:
        """Captions as word-id lists (no [CLS]/[SEP]), greedy (`num_beams=1`) or by beam search.

        max_length: most generated tokens per caption, [SEP] included. A finished hypothesis scores
        sum(log p) / length ** length_penalty (length counts its tokens and [SEP]); the best one is returned.
        use_beam_search: run the beam search even at `num_beams=1` (it then equals greedy decoding; tested).
        Runs in eval mode (dropout off) and restores the previous mode.
        """
        if num_beams < 1 or max_length < 1:
            raise ZooError(f"generate: num_beams={num_beams} and max_length={max_length} must be >= 1")
        if max_length + 1 > self.max_caption_len:
            raise ZooError(
                f"generate: max_length={max_length} needs {max_length + 1} caption positions ([CLS], the caption, "
                f"[MASK]); the model has max_caption_len={self.max_caption_len}"
            )
        was_training = self.training
        self.eval()
        try:
            memory = self.encode_video(frames)
            if not (num_beams > 1 if use_beam_search is None else use_beam_search):
                captions, scores = self._greedy(memory, max_length, length_penalty)
            else:
                captions, scores = self._beam_search(memory, max_length, num_beams, length_penalty)
        finally:
            self.train(was_training)
        return (captions, scores) if return_scores else captions

    def _greedy(self, memory: VideoMemory, max_length: int, length_penalty: float):
        batch = memory.states.shape[0]
        device = memory.states.device
        prefix = torch.full((batch, 1), CLS_ID, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        total = torch.zeros(batch, device=device)
        for _ in range(max_length):
            logprobs = self.next_token_logprobs(prefix, memory)
            token = logprobs.argmax(-1)
            total += torch.where(done, 0.0, logprobs.gather(1, token[:, None])[:, 0])
            token = torch.where(done, PAD_ID, token)  # finished rows idle on pads (causal: nobody reads them)
            prefix = torch.cat([prefix, token[:, None]], dim=1)
            done |= token == SEP_ID
            if bool(done.all()):
                break
        captions, scores = [], []
        for row, score in zip(prefix[:, 1:].tolist(), total.tolist()):
            length = row.index(SEP_ID) + 1 if SEP_ID in row else len(row)
            captions.append([t for t in row[:length] if t != SEP_ID])
            scores.append(score / length**length_penalty)
        return captions, scores

    def _beam_search(self, memory: VideoMemory, max_length: int, num_beams: int, length_penalty: float):
        batch, k = memory.states.shape[0], num_beams
        device = memory.states.device
        memory = memory.repeat_interleave(k)
        prefix = torch.full((batch * k, 1), CLS_ID, dtype=torch.long, device=device)
        beam_scores = torch.zeros(batch, k, device=device)
        beam_scores[:, 1:] = float("-inf")  # all beams start identical: keep one
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
        done = [False] * batch
        for step in range(max_length):
            logprobs = self.next_token_logprobs(prefix, memory)
            vocab = logprobs.shape[-1]
            candidates = (beam_scores[:, :, None] + logprobs.view(batch, k, vocab)).view(batch, k * vocab)
            top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
            last = step == max_length - 1
            rows, words, scores = [], [], []
            for b in range(batch):
                live: list[tuple[float, int, int]] = []
                if not done[b]:
                    for rank, (score, index) in enumerate(zip(top_scores[b].tolist(), top_index[b].tolist())):
                        if score == float("-inf"):
                            break
                        beam, word = divmod(index, vocab)
                        row = b * k + beam
                        if word == SEP_ID or last:
                            if rank < k:  # only a top-k candidate may end a caption (fairseq's rule)
                                words_so_far = prefix[row, 1:].tolist() + ([] if word == SEP_ID else [word])
                                finished[b].append((score / (step + 1) ** length_penalty, words_so_far))
                        else:
                            live.append((score, row, word))
                        if len(live) == k:
                            break
                    done[b] = last or len(finished[b]) >= k
                live += [(float("-inf"), b * k, PAD_ID)] * (k - len(live))
                for score, row, word in live:
                    scores.append(score)
                    rows.append(row)
                    words.append(word)
            if all(done):
                break
            index = torch.tensor(rows, device=device)
            prefix = torch.cat([prefix[index], torch.tensor(words, device=device)[:, None]], dim=1)
            beam_scores = torch.tensor(scores, device=device).view(batch, k)
        best = [max(hyps, key=lambda h: h[0]) if hyps else (float("-inf"), []) for hyps in finished]
        return [words for _, words in best], [score for score, _ in best]


def mask_caption_tokens(
    caption_ids: torch.Tensor,
    vocab_size: int,
    mask_prob: float = 0.5,
    max_masked: int = 45,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official caption masking: per caption, min(max(round(mask_prob * n), 1), max_masked) positions among
    1..n-1 (n counts [CLS] and [SEP]; [CLS] never, [SEP] may be masked), each replaced by [MASK] (80%), a random
    word (10%) or kept (10%). caption_ids: (B, L) `[CLS] w.. [SEP] [PAD]..`.
    Returns (inputs, masked_pos (B, L) bool, targets (N,) = the original ids at masked_pos, row-major)."""
    device = caption_ids.device
    lengths = (caption_ids != PAD_ID).sum(1)
    positions = torch.arange(caption_ids.shape[1], device=device)[None]
    candidate = (positions >= 1) & (positions < lengths[:, None])
    count = (mask_prob * lengths.float()).round().long().clamp(min=1, max=max_masked)
    count = torch.minimum(count, candidate.sum(1))
    # A random order of each row's candidates: the first `count` of them are masked.
    noise = torch.rand(caption_ids.shape, generator=generator, device=device).masked_fill(~candidate, 2.0)
    rank = noise.argsort(1).argsort(1)
    masked_pos = rank < count[:, None]
    choice = torch.rand(caption_ids.shape, generator=generator, device=device)
    random_words = torch.randint(FIRST_WORD_ID, vocab_size, caption_ids.shape, generator=generator, device=device)
    inputs = caption_ids.clone()
    inputs = torch.where(masked_pos & (choice < 0.8), MASK_ID, inputs)
    inputs = torch.where(masked_pos & (choice >= 0.8) & (choice < 0.9), random_words, inputs)
    return inputs, masked_pos, caption_ids[masked_pos]


def _swinbert(defaults: dict, kw: dict) -> SwinBERT:
    return SwinBERT(**{**defaults, **kw})


@register_model
def test_swinbert(**kw) -> SwinBERT:
    """A ~30k-parameter SwinBERT: torchvision's SwinTransformer3d class with two 1-block stages (8 and 16
    channels), 4 frames of 32x32 (32 video tokens), a 2-layer 32-wide multimodal transformer."""
    return _swinbert(
        dict(
            vocab_size=32,
            num_frames=4,
            img_size=32,
            patch_size=(2, 4, 4),
            embed_dim=8,
            depths=(1, 1),
            num_heads=(1, 2),
            window_size=(2, 4, 4),
            stochastic_depth_prob=0.0,
            img_feature_dim=16,
            hidden_size=32,
            num_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            dropout=0.0,
            max_caption_len=24,
        ),
        kw,
    )


@register_model
def swinbert_tiny(**kw) -> SwinBERT:
    """swin3d_t encoder + BERT-base, 32 frames of 224x224 (784 video tokens) as the paper's MSR-VTT setting."""
    return _swinbert(dict(**SWIN3D_T, **BERT_BASE), kw)


@register_model
def swinbert_small(**kw) -> SwinBERT:
    """swin3d_s encoder + BERT-base, 32 frames of 224x224."""
    return _swinbert(dict(**SWIN3D_S, **BERT_BASE), kw)
