"""Read the official Recformer checkpoints into `zoo.models.recformer.Recformer`.

Li et al., "Text Is All You Need: Learning Language Representations for Sequential Recommendation",
KDD 2023; release and layout from AaronHeee/RecFormer (README "Pretrained Model", convert_pretrain_ckpt.py,
recformer/models.py). The authors publish PyTorch state dicts (`.bin`), no config:

- `recformer_pretrain_ckpt.bin` (README: `recformer_ckpt.bin`), a `RecformerModel`: keys
  `embeddings.{word,position,token_type,item_position}_embeddings.weight`, `embeddings.LayerNorm.*`,
  `embeddings.position_ids` (a buffer), `encoder.layer.N.attention.self.{query,key,value,query_global,
  key_global,value_global}.*`, `encoder.layer.N.attention.output.{dense,LayerNorm}.*`,
  `encoder.layer.N.intermediate.dense.*`, `encoder.layer.N.output.{dense,LayerNorm}.*`;
- `seqrec_pretrain_ckpt.bin` (README: `recformer_seqrec_ckpt.bin`), a `RecformerForSeqRec`/pre-training
  model: the same keys under `longformer.`, plus the MLM head `lm_head.{dense,layer_norm,decoder}.*` and
  `lm_head.bias`; a fine-tuned one (finetune.py's `best_model.bin`) adds `item_embedding.weight`, loaded
  as the frozen item table. Lightning's `_forward_module.model.` prefix is accepted too.

The architecture is read from the tensor shapes (vocabulary, width, depth, feed-forward, positions,
token types, items). What shapes cannot tell comes from a `config.json` beside the weights when there is
one (`num_attention_heads`, `attention_window`, `layer_norm_eps`, `pad_token_id`), else the release's
values: Longformer-base's 64-wide heads, window 64 (README), eps 1e-5, pad id 1.
The release's tokenizer is Longformer's (`allenai/longformer-base-4096`); with its `vocab.json` and
`merges.txt`, `domains.recsys.tokenizer.ItemTokenizer.from_bpe_files` rebuilds it offline.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from zoo.convert import register_converter
from zoo.errors import ZooError

log = logging.getLogger(__name__)

RELEASE_FILES = (
    "seqrec_pretrain_ckpt.bin",
    "recformer_seqrec_ckpt.bin",
    "recformer_pretrain_ckpt.bin",
    "recformer_ckpt.bin",
    "best_model.bin",
)
_PREFIX = re.compile(r"^(?:_forward_module\.)?(?:model\.)?")

# official key (after `longformer.` and wrappers) -> ours
_RULES = [
    (r"embeddings\.(word|position|token_type|item_position)_embeddings\.weight", r"\1_embeddings.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embed_norm.\1"),
    (
        r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value|query_global|key_global|value_global)\.(weight|bias)",
        r"blocks.\1.attn.\2.\3",
    ),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.norm1.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.fc1.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.fc2.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.norm2.\2"),
    (r"lm_head\.dense\.(weight|bias)", r"mlm.dense.\1"),
    (r"lm_head\.layer_norm\.(weight|bias)", r"mlm.norm.\1"),
    (r"lm_head\.decoder\.(weight|bias)", r"mlm.decoder.\1"),
    (r"lm_head\.bias", r"mlm.decoder.bias"),  # the same tensor as lm_head.decoder.bias in transformers
    (r"item_embedding\.weight", r"item_table"),
]
_IGNORED = re.compile(r"(embeddings\.position_ids|pooler\..*)$")


def weights_file(path: Path) -> Path | None:
    """The release file at `path` (itself, or the first of RELEASE_FILES in the folder)."""
    if path.is_file():
        return path if path.name in RELEASE_FILES or path.suffix == ".bin" else None
    return next((path / name for name in RELEASE_FILES if (path / name).is_file()), None)


def looks_like_official_recformer(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return path.name in RELEASE_FILES
    return weights_file(path) is not None


def _map_key(key: str) -> str | None:
    key = _PREFIX.sub("", key)
    key = key[len("longformer.") :] if key.startswith("longformer.") else key
    for pattern, target in _RULES:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(target)
    return None


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def zoo_kwargs(state: dict[str, torch.Tensor], config: dict, where: str) -> dict:
    """Recformer factory kwargs from converted tensor shapes (+ config.json fields shapes cannot tell)."""
    try:
        vocab, dim = state["word_embeddings.weight"].shape
        layers = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.")})
        kwargs = dict(
            vocab_size=vocab,
            dim=dim,
            depth=len(layers),
            mlp_dim=state["blocks.0.fc1.weight"].shape[0],
            max_positions=state["position_embeddings.weight"].shape[0],
            num_token_types=state["token_type_embeddings.weight"].shape[0],
            max_items=state["item_position_embeddings.weight"].shape[0],
        )
    except KeyError as err:
        raise ZooError(f"{where}: no tensor for {err} after conversion; is this an official Recformer .bin?") from None
    if layers != list(range(len(layers))):
        raise ZooError(f"{where}: encoder layers {layers} are not numbered 0..{len(layers) - 1}")
    window = config.get("attention_window", 64)
    if isinstance(window, list):
        if len(set(window)) != 1:
            raise ZooError(f"{where}: attention_window {window} differs between layers; the zoo's Recformer uses one")
        window = window[0]
    kwargs.update(
        num_heads=int(config.get("num_attention_heads", dim // 64 or 1)),
        attention_window=int(window),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-5)),
        pad_token_id=int(config.get("pad_token_id", 1)),
        mlm_head="mlm.dense.weight" in state,
        num_items=state["item_table"].shape[0] if "item_table" in state else 0,
    )
    return kwargs


def convert_state(official: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    state, unmapped = {}, []
    for key, value in official.items():
        if not isinstance(value, torch.Tensor):
            continue
        ours = _map_key(key)
        if ours is None:
            if not _IGNORED.search(key):
                unmapped.append(key)
            continue
        if ours in state and not torch.equal(state[ours], value):
            raise ZooError(f"{where}: {key} disagrees with another copy of {ours}; the checkpoint is inconsistent")
        state[ours] = value.float() if value.is_floating_point() else value
    if unmapped:
        raise ZooError(
            f"{where}: {len(unmapped)} keys are not Recformer's ({', '.join(unmapped[:4])}); "
            "give the RecformerModel or RecformerForSeqRec .bin of the official release"
        )
    return state


@register_converter("recformer", detect=looks_like_official_recformer)
def convert_recformer(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(zoo state dict, {'name', 'kwargs'}) from an official Recformer .bin (or the folder holding one)."""
    path = Path(path)
    file = weights_file(path)
    if file is None:
        raise ZooError(f"{path}: no official Recformer weights ({' / '.join(RELEASE_FILES)})")
    try:
        official = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ZooError(
            f"cannot read {file}: {str(err).splitlines()[0]}; is it a complete PyTorch state dict?"
        ) from None
    if not isinstance(official, dict):
        raise ZooError(f"{file} holds a {type(official).__name__}, not a state dict")
    state = convert_state(official, str(file))
    kwargs = zoo_kwargs(state, _read_config(file.parent), str(file))
    state.setdefault("item_table", torch.zeros(0, kwargs["dim"]))  # not fine-tuned: no item table yet

    from zoo.models.recformer import Recformer

    with torch.device("meta"):
        expected = Recformer(**kwargs).state_dict()
    missing = sorted(set(expected) - set(state))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in state if k in expected
             and state[k].shape != expected[k].shape]  # fmt: skip
    if missing or wrong:
        raise ZooError(
            f"{file} does not match the Recformer its shapes describe (missing: {', '.join(missing[:4]) or 'none'}; "
            f"wrong shape: {', '.join(wrong[:3]) or 'none'}); is it an official Recformer release?"
        )
    return state, {"name": "recformer_base", "kwargs": kwargs}
