"""Pre-trained weights for the genomics tasks, and the architecture that comes with them.

`weights` may be a registry tag (`hyenadna_tiny_1k.hg38`), an `hf://org/repo[@rev]` address
(the Hugging Face cache first; `HF_HUB_OFFLINE=1` never touches the network), a folder
(a zoo export or an official HyenaDNA release) or a training `.ckpt`. When the weights
record their architecture (a zoo `config.json`, a checkpoint's hyper-parameters, an official
HyenaDNA `config.json` read by `zoo.convert.hyenadna`), the backbone is built as recorded,
whatever `model=` says: `zoo genomics finetune weights=hf://LongSafari/hyenadna-tiny-1k-seqlen`
fine-tunes the released tiny-1k architecture even though the default `model=hyenadna` is a
narrower one. Only the task's head (`num_classes`, `global_pool`) replaces what was saved.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from zoo.hub import read_source
from zoo.registry import get_pretrained, list_pretrained

log = logging.getLogger(__name__)

HEAD_KEYS = ("num_classes", "global_pool")  # set by the task, never taken from the weights


def weights_source(weights: str) -> tuple[str, str | None]:
    """(source, converter): a registry tag resolves to its hub address; anything else is itself."""
    if weights in list_pretrained() and not Path(weights).exists():
        spec = get_pretrained(weights)
        return spec.source, spec.converter
    return weights, None


def architecture_from_weights(model: str, model_kwargs: dict[str, Any], weights: str | None
                              ) -> tuple[str, dict[str, Any], dict[str, torch.Tensor] | None]:
    """(model name, kwargs, state dict or None): what to build and load for `weights`."""
    if not weights:
        return model, model_kwargs, None
    source, converter = weights_source(str(weights))
    state, arch = read_source(source, converter)
    if arch is None:  # bare weights: the configured architecture must fit them
        return model, model_kwargs, state
    head = {k: model_kwargs[k] for k in HEAD_KEYS if k in model_kwargs}
    kwargs = {**{k: v for k, v in arch["kwargs"].items() if k not in HEAD_KEYS}, **head}
    configured = {k: v for k, v in model_kwargs.items() if k not in HEAD_KEYS and k != "vocab_size"}
    if arch["name"] != model or any(kwargs.get(k) != v for k, v in configured.items()):
        log.info("weights %s hold %s(%s): building that architecture, not model=%s with model.kwargs %s", weights,
                 arch["name"], ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()) if k not in HEAD_KEYS), model, configured)
    return arch["name"], kwargs, state
