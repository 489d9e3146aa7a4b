"""Read the official HyenaDNA releases into `zoo.models.hyenadna.HyenaDNA`.

Nguyen et al., "HyenaDNA: Long-Range Genomic Foundation Models at Single
Nucleotide Resolution", NeurIPS 2023. Two layouts are published on the Hugging
Face hub (docs/hyenadna_conversion.md has the full key table and the traps):

- `LongSafari/hyenadna-*-seqlen`: `config.json` (backbone kwargs plus a `layer`
  dict) and `weights.ckpt`, a Lightning checkpoint whose `state_dict` keys start
  with `model.backbone.`; runs trained with gradient checkpointing have
  `.mixer.layer.` / `.mlp.layer.` in their keys.
- `LongSafari/hyenadna-*-seqlen-hf`: a transformers port, `config.json` with
  `model_type: hyenadna` and `model.safetensors` or `pytorch_model.bin`, keys
  starting with `hyena.backbone.`.

The filter window's shift follows the released inference code (0.05); the
training code used 0.0, set `filter_shift` in a layer config to override.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import typing
from pathlib import Path

import torch
from safetensors.torch import load_file

from zoo.convert import register_converter
from zoo.errors import ZooError
from zoo.layers.hyena import decay_rates, positional_features

log = logging.getLogger(__name__)

LIGHTNING_WEIGHTS, SAFETENSORS_WEIGHTS, BIN_WEIGHTS = "weights.ckpt", "model.safetensors", "pytorch_model.bin"
BACKBONE_PREFIXES = ("model.backbone.", "hyena.backbone.", "backbone.")
LM_HEAD_KEYS = ("model.lm_head.weight", "lm_head.weight")

# Official architecture switches this port does not implement: key -> the value it must have.
_UNSUPPORTED_LAYER = {
    "_name_": "hyena",
    "order": 2,
    "num_heads": 1,
    "inner_factor": 1,
    "num_blocks": 1,
    "outer_mixing": False,
    "post_order_ffn": False,
    "activation": "id",
    "bias": True,
    "linear_mixer": False,
    "bidirectional": False,
    "filter_cls": "hyena-filter",
}
_UNSUPPORTED_TOP = {"attn_layer_idx": None, "max_position_embeddings": 0, "identity_mlp": False}

# (official key after the backbone prefix, our key, reshape); `.layer.` wrappers are removed first.
_RULES: list[tuple[str, str | None, typing.Callable | None]] = [
    (r"embeddings\.word_embeddings\.weight", r"stem.proj.weight", None),
    (r"ln_f\.(weight|bias)", r"norm_f.\1", None),
    (r"layers\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"blocks.\1.\2.\3", None),
    (r"layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3", None),
    (r"layers\.(\d+)\.mixer\.(in_proj|out_proj|short_filter)\.(weight|bias)", r"blocks.\1.mixer.\2.\3", None),
    (r"layers\.(\d+)\.mixer\.filter_fn\.bias", r"blocks.\1.mixer.filter.bias", None),
    (
        r"layers\.(\d+)\.mixer\.filter_fn\.pos_emb\.(z|t)",
        r"blocks.\1.mixer.filter.\2",
        lambda x: x.reshape(x.shape[-2], x.shape[-1]),
    ),
    (r"layers\.(\d+)\.mixer\.filter_fn\.modulation\.deltas", r"blocks.\1.mixer.filter.deltas", lambda x: x.reshape(-1)),
    (
        r"layers\.(\d+)\.mixer\.filter_fn\.implicit_filter\.(\d*[02468])\.(weight|bias)",
        None,
        None,
    ),  # Linear 2j -> mlp.j
    (
        r"layers\.(\d+)\.mixer\.filter_fn\.implicit_filter\.(\d*[13579])\.freq",
        r"blocks.\1.mixer.filter.freq",
        lambda x: x.reshape(-1),
    ),
]


def _read_config(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None


def looks_like_official_hyenadna(folder: Path) -> bool:
    config = _read_config(folder)
    if not isinstance(config, dict):
        return False
    lightning = (
        isinstance(config.get("layer"), dict)
        and config["layer"].get("_name_") == "hyena"
        and (folder / LIGHTNING_WEIGHTS).exists()
    )
    hf = config.get("model_type") == "hyenadna" and any(
        (folder / n).exists() for n in (SAFETENSORS_WEIGHTS, BIN_WEIGHTS, LIGHTNING_WEIGHTS)
    )
    return lightning or hf


def zoo_kwargs(config: dict, where: str = "config.json") -> dict:
    """HyenaDNA factory kwargs from an official config.json (Lightning or `-hf` field names)."""
    try:
        return _zoo_kwargs(config, where)
    except KeyError as err:
        raise ZooError(f"{where}: required field {err} is missing; is this an official HyenaDNA config.json?") from None


def _zoo_kwargs(config: dict, where: str) -> dict:
    layer = config.get("layer")
    if isinstance(layer, dict):
        for table, source in ((_UNSUPPORTED_LAYER, layer), (_UNSUPPORTED_TOP, config)):
            for key, expected in table.items():
                if key in source and source[key] != expected:
                    raise ZooError(
                        f"{where}: {key}={source[key]!r} is not supported by the zoo's HyenaDNA (only {expected!r}); "
                        "this checkpoint is not a plain HyenaDNA release"
                    )
        d_model = config["d_model"]
        kwargs = dict(
            d_model=d_model,
            n_layer=config["n_layer"],
            d_inner=config.get("d_inner") or 4 * d_model,
            max_seq_len=layer["l_max"],
            vocab_size=config["vocab_size"],
            pad_vocab_size_multiple=config.get("pad_vocab_size_multiple", 1),
            emb_dim=layer.get("emb_dim", 3),
            filter_order=layer.get("filter_order", 64),
            num_inner_mlps=layer.get("num_inner_mlps", 2),
            activation_freq=float(layer.get("w", 1)),
            train_freq=layer.get("train_freq", True),
            filter_shift=float(layer.get("shift", 0.05)),
            modulate=layer.get("modulate", True),
            normalized=layer.get("normalized", False),
            short_filter_order=layer.get("short_filter_order", 3),
            layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
            embed_dropout=config.get("embed_dropout", 0.1),
            resid_dropout=config.get("resid_dropout", 0.0),
            hyena_dropout=layer.get("dropout", 0.0),
        )
        for ours, theirs in (
            ("fast_decay_pct", "fast_decay_pct"),
            ("slow_decay_pct", "slow_decay_pct"),
            ("decay_target", "target"),
        ):
            if theirs in layer:
                kwargs[ours] = float(layer[theirs])
        return kwargs
    if config.get("model_type") != "hyenadna":
        raise ZooError(
            f"{where}: neither a HyenaDNA Lightning config (no 'layer' dict) nor a '-hf' config (model_type != "
            "'hyenadna')"
        )
    if config.get("hyena_order", 2) != 2:
        raise ZooError(
            f"{where}: hyena_order={config['hyena_order']} is not supported (the official codes disagree on the "
            "filter layout beyond order 2)"
        )
    d_model = config["d_model"]
    return dict(
        d_model=d_model,
        n_layer=config["n_layer"],
        d_inner=config.get("d_inner") or 4 * d_model,
        max_seq_len=config.get("max_seq_len", 1024),
        vocab_size=config.get("vocab_size", 12),
        pad_vocab_size_multiple=config.get("pad_vocab_size_multiple", 8),
        emb_dim=config.get("emb_dim", 3),
        filter_order=config.get("filter_order", 64),
        num_inner_mlps=config.get("num_inner_mlps", 2),
        activation_freq=float(config.get("activation_freq", 1)),
        train_freq=config.get("train_freq", True),
        short_filter_order=config.get("short_filter_order", 3),
        layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
        embed_dropout=config.get("embed_dropout", 0.1),
        resid_dropout=0.0,
        hyena_dropout=config.get("hyena_dropout", 0.0),
    )


class _Opaque:
    """Stands in for the hyper-parameter containers (omegaconf) pickled next to the weights: kept inert, never read."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        self.state = state


def _plain_dict(*args) -> dict:
    return {}


# Names the official weights.ckpt pickles besides tensors (as the hub's pickle scan lists them).
_CKPT_GLOBALS = [
    (_Opaque, f"omegaconf.{name}")
    for name in (
        "dictconfig.DictConfig",
        "listconfig.ListConfig",
        "base.ContainerMetadata",
        "base.Metadata",
        "nodes.AnyNode",
    )
]
_CKPT_GLOBALS += [
    (_plain_dict, "collections.defaultdict"),
    (typing.Any, "typing.Any"),
    (int, "builtins.int"),
    (dict, "builtins.dict"),
    (list, "builtins.list"),
    (collections.OrderedDict, "collections.OrderedDict"),
]


def read_lightning_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of an official `weights.ckpt`, unpickled with weights_only=True and an allowlist
    that maps the omegaconf hyper-parameter objects to inert stand-ins (no code from the file runs)."""
    try:
        with torch.serialization.safe_globals(_CKPT_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ZooError(
            f"cannot read {path}: {str(err).splitlines()[0]}; is it a complete official HyenaDNA weights.ckpt?"
        ) from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ZooError(f"{path} holds no state_dict; expected an official HyenaDNA Lightning checkpoint")
    return state


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / SAFETENSORS_WEIGHTS).exists():
        return load_file(str(folder / SAFETENSORS_WEIGHTS))
    if (folder / BIN_WEIGHTS).exists():
        try:
            return torch.load(folder / BIN_WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ZooError(f"cannot read {folder / BIN_WEIGHTS}: {str(err).splitlines()[0]}") from None
    if (folder / LIGHTNING_WEIGHTS).exists():
        return read_lightning_checkpoint(folder / LIGHTNING_WEIGHTS)
    raise ZooError(
        f"{folder} has no {SAFETENSORS_WEIGHTS}, {BIN_WEIGHTS} or {LIGHTNING_WEIGHTS}; download the full HyenaDNA repo"
    )


def _map_key(key: str) -> tuple[str | None, typing.Callable | None]:
    key = key.replace(".mixer.layer.", ".mixer.").replace(".mlp.layer.", ".mlp.")  # gradient-checkpointing wrappers
    for pattern, target, reshape in _RULES:
        match = re.fullmatch(pattern, key)
        if match and target is None:  # implicit_filter Linear at Sequential index 2j
            layer, index, what = match.groups()
            return f"blocks.{layer}.mixer.filter.mlp.{int(index) // 2}.{what}", None
        if match:
            return match.expand(target), reshape
    return None, None


def _derived(key: str, kwargs: dict, where: str) -> torch.Tensor | None:
    """Tensors fixed by the config, which some releases leave out of the state dict."""
    name = key.rsplit(".", 1)[-1]
    if ".mixer.filter." not in key or name not in {"z", "t", "deltas", "freq"}:
        return None
    if name in {"z", "t"}:
        return positional_features(kwargs["max_seq_len"], kwargs["emb_dim"])[0 if name == "z" else 1]
    if name == "deltas":
        return decay_rates(
            kwargs["d_model"],
            kwargs.get("fast_decay_pct", 0.3),
            kwargs.get("slow_decay_pct", 1.5),
            kwargs.get("decay_target", 1e-2),
        )
    if kwargs.get("train_freq", True):  # the -hf port tolerates missing copies and keeps the initial value
        log.warning(
            "%s: no Sin frequencies for %s; using the initial value %s as the -hf port does",
            where,
            key,
            kwargs["activation_freq"],
        )
    return torch.full((kwargs["filter_order"],), float(kwargs["activation_freq"]))


def convert_state(official: dict[str, torch.Tensor], kwargs: dict, where: str) -> dict[str, torch.Tensor]:
    """Official keys -> zoo keys, checked against the architecture `kwargs` describe."""
    from zoo.models.hyenadna import HyenaDNA

    with torch.device("meta"):
        expected = HyenaDNA(**kwargs).state_dict()
    state: dict[str, torch.Tensor] = {}
    unmapped, ignored, mismatched = [], [], []
    lm_head = None
    for key, value in official.items():
        if key in LM_HEAD_KEYS:
            lm_head = (key, value)
            continue
        prefix = next((p for p in BACKBONE_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            (ignored if key.split(".", 1)[0] in {"encoder", "decoder", "task"} else unmapped).append(key)
            continue
        ours, reshape = _map_key(key[len(prefix) :])
        if ours is None or ours not in expected:
            unmapped.append(key)
            continue
        value = reshape(value) if reshape else value
        if ours.endswith(".freq") and ours in state and not torch.equal(state[ours], value):
            raise ZooError(
                f"{where}: the shared Sin frequencies differ between copies ({key}); the checkpoint is inconsistent"
            )
        if value.shape != expected[ours].shape:
            mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(expected[ours].shape)}")
        state[ours] = value
    missing = []
    for key in expected:
        if key not in state and not key.startswith("head."):
            derived = _derived(key, kwargs, where)
            if derived is None:
                missing.append(key)
            else:
                state[key] = derived
    problems = [
        f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})"
        for label, keys in (("unmapped", unmapped), ("missing (zoo names)", missing), ("wrong shape", mismatched))
        if keys
    ]
    if problems:
        raise ZooError(
            f"{where} does not match the HyenaDNA its config.json describes ({'; '.join(problems)}); "
            "check the config belongs to these weights (see docs/hyenadna_conversion.md)"
        )
    if ignored:
        log.warning(
            "%s: ignored %d keys outside the backbone (task wrapper): %s", where, len(ignored), ", ".join(ignored[:4])
        )
    if lm_head is not None and not torch.equal(lm_head[1], state["stem.proj.weight"]):
        log.warning(
            "%s: %s differs from the input embedding; the zoo ties the LM head to the embedding "
            "(as HyenaDNA was trained), so lm_logits uses the embedding",
            where,
            lm_head[0],
        )
    return state


def _architecture_name(kwargs: dict) -> str:
    """The registered release with these sizes; any HyenaDNA factory works otherwise, the kwargs are explicit."""
    from zoo.models.hyenadna import RELEASED_SIZES

    for name, size in RELEASED_SIZES.items():
        if all(kwargs[k] == v for k, v in size.items()):
            return name
    return "hyenadna_tiny_1k"


@register_converter("hyenadna", detect=looks_like_official_hyenadna)
def convert_hyenadna(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(zoo state dict, {'name', 'kwargs'}) from an official HyenaDNA folder."""
    folder = Path(folder)
    config = _read_config(folder)
    if not isinstance(config, dict):
        raise ZooError(
            f"{folder / 'config.json'} is missing or not JSON; the official HyenaDNA repos ship one next to the weights"
        )
    kwargs = zoo_kwargs(config, str(folder / "config.json"))
    state = convert_state(read_weights(folder), kwargs, str(folder))
    return state, {"name": _architecture_name(kwargs), "kwargs": kwargs}
