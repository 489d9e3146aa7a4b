"""Folders in the layouts of the official HyenaDNA releases, written from `hyenadna_reference` models.

What LongSafari publishes on the Hugging Face hub (file names as listed there):
- `hyenadna-*-seqlen`: `config.json` (Lightning field names: backbone kwargs plus a `layer`
  dict; the first tiny-1k commit also says `model_type: hyenadna`) and `weights.ckpt`, a
  Lightning checkpoint pickling omegaconf hyper-parameters and optimizer state next to a
  `state_dict` whose keys start with `model.backbone.`;
- `hyenadna-*-seqlen-hf`: `config.json` (transformers field names, `model_type: hyenadna`)
  and `model.safetensors` (keys `hyena.backbone.*`, one name for the shared Sin frequency).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from tests.reference.hyenadna_reference import HFCausalLM, LightningWrapper, randomize_

# (d_model, n_layer, d_inner, l_max) of the releases used by the tests; the rest is shared by every release
TINY_1K = dict(d_model=128, n_layer=2, d_inner=512, l_max=1026)
SMALL_32K = dict(d_model=256, n_layer=4, d_inner=1024, l_max=32770)
RELEASED_FILTER = dict(filter_order=64, emb_dim=5, w=10)


def reference_model(
    kind: str,
    size: dict,
    seed: int = 0,
    checkpointed: bool = False,
    z_as_parameter: bool = False,
    shift: float = 0.05,
    normalized: bool = False,
    jitter: bool = True,
    filter_args: dict = RELEASED_FILTER,
):
    """The official architecture ("lightning" or "hf" module names) with random weights and jittered tables."""
    cls = LightningWrapper if kind == "lightning" else HFCausalLM
    model = cls(
        vocab_size=12,
        pad_vocab_size_multiple=8,
        checkpointed=checkpointed,
        shift=shift,
        num_inner_mlps=2,
        z_as_parameter=z_as_parameter,
        normalized=normalized,
        **size,
        **filter_args,
    )
    return randomize_(model, seed, jitter_buffers=jitter).eval()


def lightning_config(
    size: dict, checkpointed: bool = False, model_type: bool = False, filter_args: dict = RELEASED_FILTER, **layer
) -> dict:
    """A `-seqlen` config.json with the official Lightning field names (`model_type` as tiny-1k's first commit)."""
    config = {
        "d_model": size["d_model"],
        "n_layer": size["n_layer"],
        "d_inner": size["d_inner"],
        "vocab_size": 12,
        "resid_dropout": 0.0,
        "embed_dropout": 0.1,
        "fused_mlp": False,
        "fused_dropout_add_ln": True,
        "residual_in_fp32": True,
        "pad_vocab_size_multiple": 8,
        "return_hidden_state": True,
        "layer": {
            "_name_": "hyena",
            "emb_dim": filter_args["emb_dim"],
            "filter_order": filter_args["filter_order"],
            "local_order": 3,
            "l_max": size["l_max"],
            "modulate": True,
            "w": filter_args["w"],
            "lr": 6e-4,
            "wd": 0.0,
            "lr_pos_emb": 0.0,
            **layer,
        },
    }
    if checkpointed:
        config |= {"checkpoint_mixer": True, "checkpoint_mlp": True}
    return {"model_type": "hyenadna", **config} if model_type else config


def hf_config(size: dict, filter_args: dict = RELEASED_FILTER) -> dict:
    """A `-seqlen-hf` config.json with the transformers port's field names."""
    return {
        "activation_freq": filter_args["w"],
        "architectures": ["HyenaDNAForCausalLM"],
        "d_inner": size["d_inner"],
        "d_model": size["d_model"],
        "emb_dim": filter_args["emb_dim"],
        "embed_dropout": 0.1,
        "filter_order": filter_args["filter_order"],
        "hyena_dropout": 0.0,
        "hyena_filter_dropout": 0.0,
        "hyena_order": 2,
        "layer_norm_epsilon": 1e-5,
        "max_seq_len": size["l_max"],
        "model_type": "hyenadna",
        "n_layer": size["n_layer"],
        "num_inner_mlps": 2,
        "pad_token_id": 4,
        "pad_vocab_size_multiple": 8,
        "short_filter_order": 3,
        "tie_word_embeddings": False,
        "train_freq": True,
        "use_bias": True,
        "vocab_size": 12,
    }


def write_lightning(folder: Path, ref: torch.nn.Module, config: dict) -> Path:
    """`config.json` + `weights.ckpt` as Lightning writes it: state_dict, omegaconf hyper-parameters, optimizer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    ckpt = {
        "state_dict": ref.state_dict(),
        "hyper_parameters": OmegaConf.create({"model": config, "optimizer": {"lr": 6e-4}}),
        "epoch": 3,
        "global_step": 100,
        "pytorch-lightning_version": "1.8.6",
        "optimizer_states": [
            {"state": collections.defaultdict(dict), "param_groups": [{"lr": 6e-4, "params": [0, 1]}]}
        ],
    }
    torch.save(ckpt, folder / "weights.ckpt")
    return folder


def write_hf(
    folder: Path, ref: torch.nn.Module, config: dict, fmt: str = "safetensors", drop: tuple[str, ...] = ()
) -> Path:
    """`config.json` + `model.safetensors` (or `pytorch_model.bin`) as the `-hf` repos hold them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    state = {k: v.clone().contiguous() for k, v in ref.state_dict().items() if not k.endswith(drop)}
    if fmt == "safetensors":  # save_pretrained keeps one name of the shared Sin frequencies
        state = {k: v for k, v in state.items() if not k.endswith(("implicit_filter.3.freq", "implicit_filter.5.freq"))}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder
