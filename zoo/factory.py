"""Models from names and weights: `create_model`, `open_weights`, `from_pretrained`, `download`.

The layer between the registry (names -> factories) and the hub (files). A
weights source — a registered tag (`hyenadna_tiny_1k.hg38`), `hf://org/repo[@rev]`,
a folder, a `.ckpt` or a foreign release that `zoo.convert` reads — is resolved
once, by `open_weights`, into one `Weights` object that carries the architecture
it records, the backbone's state dict and everything saved beside it (the task
that trained it, its data contract such as a tokenizer, extra files). Tasks,
domain verbs and `load_pipeline` read from that object and never open the
source again.

Loading is strict, except for the declared classifier head (`model.head_name`),
which is re-initialised with a logged message when its size differs.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo import hub
from zoo.errors import ZooError
from zoo.registry import build_model, default_tag, get_pretrained, list_pretrained, split_name

log = logging.getLogger(__name__)

BACKBONE_PREFIX = "backbone."


@dataclass
class Weights:
    """A weights source, read once.

    source: what the user gave. path: the local file or folder it resolved to.
    state_dict: the backbone's tensors. architecture: {"name", "kwargs"} when the source records it.
    task: {"target": "pkg.Class", "hparams": {...}} of the task that trained it, when known.
    task_state: the task's other tensors (heads, prompts), keys relative to the task.
    data_contract: what the model's inputs must look like (a tokenizer, channels, an env).
    files: the other files saved beside the weights (name -> path), e.g. tokenizer.json.
    global_step: a training checkpoint's optimizer steps (None for other sources); a resume continues there.
    """

    source: str
    path: Path
    state_dict: dict[str, torch.Tensor]
    architecture: dict[str, Any] | None = None
    task: dict[str, Any] | None = None
    task_state: dict[str, torch.Tensor] = field(default_factory=dict)
    data_contract: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    global_step: int | None = None

    def text(self, name: str) -> str | None:
        return self.files[name].read_text() if name in self.files else None

    def json(self, name: str) -> Any:
        text = self.text(name)
        return None if text is None else json.loads(text)

    def task_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole task's state dict: the backbone under `backbone.` plus the rest."""
        return {**{BACKBONE_PREFIX + k: v for k, v in self.state_dict.items()}, **self.task_state}


def weights_location(source: str | os.PathLike, converter: str | None = None) -> tuple[str, str | None]:
    """(source, converter): a registered `arch.tag` that is not also a local path becomes its address."""
    text = str(source)
    if converter is None and "://" not in text and not Path(text).expanduser().exists():
        tags = list_pretrained()
        if text in tags:
            spec = get_pretrained(text)
            return spec.source, spec.converter
        close = difflib.get_close_matches(text, tags, n=3, cutoff=0.75)
        if close:  # most likely a mistyped tag; anything else gets the resolver's "not found" line
            raise ZooError(
                f"weights not found: {text!r} is no file, folder or registered weight tag; "
                f"did you mean {' or '.join(close)}? (`zoo list --pretrained` lists every tag)"
            )
    return text, converter


def _from_checkpoint(source: str, path: Path) -> Weights:
    ckpt = hub.read_checkpoint(path)
    state = ckpt["state_dict"]
    backbone = {k[len(BACKBONE_PREFIX) :]: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
    if not backbone:
        raise ZooError(f"checkpoint {path} has no 'backbone.' weights; was it written by a longzoo task?")
    hp = dict(ckpt.get("hyper_parameters") or {})
    zoo_meta = ckpt.get("zoo") or {}
    arch = {"name": hp["model"], "kwargs": dict(hp.get("model_kwargs") or {})} if "model" in hp else None
    task = {"target": zoo_meta["task"], "hparams": hp, "data": zoo_meta.get("data")} if "task" in zoo_meta else None
    rest = {k: v for k, v in state.items() if not k.startswith(BACKBONE_PREFIX)}
    contract = dict(zoo_meta.get("data_contract") or {})
    return Weights(source, path, backbone, arch, task, rest, contract, global_step=ckpt.get("global_step"))


def _from_zoo_folder(source: str, path: Path, config: dict[str, Any]) -> Weights:
    weights = path / hub.WEIGHTS_NAME
    if not weights.exists():
        raise ZooError(f"{path} has a longzoo config.json but no {hub.WEIGHTS_NAME}; the folder is incomplete")
    digests = config.get("sha256") or {}
    state = hub.read_safetensors(weights, digests.get(hub.WEIGHTS_NAME))
    task_file = path / hub.TASK_STATE_NAME
    task_state = hub.read_safetensors(task_file, digests.get(hub.TASK_STATE_NAME)) if task_file.is_file() else {}
    known = {hub.CONFIG_NAME, hub.WEIGHTS_NAME, hub.TASK_STATE_NAME, hub.CARD_NAME}
    files = {p.name: p for p in sorted(path.iterdir()) if p.is_file() and p.name not in known}
    arch = {"name": config["name"], "kwargs": config.get("kwargs", {})}
    contract = dict(config.get("data_contract") or {})
    return Weights(source, path, state, arch, config.get("task"), task_state, contract, files)


def _converted(source: str, path: Path, converter: str | None) -> Weights:
    from zoo.convert import detect_format, get_converter

    fmt = converter or detect_format(path)
    if fmt is None:
        raise ZooError(
            f"{path} is not a longzoo model (no config.json with format 'longzoo', not a .ckpt) and matches "
            "no known checkpoint format; give a folder from `zoo <domain> export` or a training .ckpt"
        )
    state, arch = get_converter(fmt)(path)
    return Weights(source, path, state, arch)


def open_weights(source: str | os.PathLike | Weights, converter: str | None = None) -> Weights:
    """Resolve and read a weights source once (see the module docstring)."""
    if isinstance(source, Weights):
        return source
    location, converter = weights_location(source, converter)
    path = hub.resolve(location)
    if path.is_file():
        if path.suffix == ".safetensors":
            return Weights(str(source), path, hub.read_safetensors(path))
        if path.suffix == ".ckpt":
            return _from_checkpoint(str(source), path)
        return _converted(str(source), path, converter)
    config = hub.read_config(path)
    if config.get("format") == hub.FORMAT and converter is None:
        return _from_zoo_folder(str(source), path, config)
    return _converted(str(source), path, converter)


# ----------------------------------------------------------------------------- building


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load, except the declared classifier head, which is re-initialised when sizes differ."""
    head = getattr(model, "head_name", "head") + "."
    own = model.state_dict()
    state = dict(state)
    for key in [k for k in state if k.startswith(head)]:
        if key not in own or own[key].shape != state[key].shape:
            log.warning(
                "classifier head of %s does not fit this model (%s %s vs %s): re-initialised; fine-tune it.",
                source,
                key,
                tuple(state[key].shape),
                tuple(own[key].shape) if key in own else "none",
            )
            for k in [k for k in state if k.startswith(head)]:
                state.pop(k)
            break
    # Tied tensors were saved once; a missing key that shares storage with a loaded one is fine.
    pointers = {own[k].untyped_storage().data_ptr(): k for k in state if k in own}
    missing = [k for k in own if k not in state and own[k].untyped_storage().data_ptr() not in pointers]
    if any(k.startswith(head) for k in missing):
        log.warning("%s has no classifier head for this model: %s re-initialised.", source, head.rstrip("."))
    missing = [k for k in missing if not k.startswith(head)]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})")
        raise ZooError(
            f"weights from {source} do not fit {type(model).__name__} ({'; '.join(parts)}); "
            "check the model name and kwargs match the checkpoint"
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=False)


def create_model(name: str, pretrained: bool = False, weights: str | os.PathLike | Weights | None = None, **kwargs):
    """Build a registered model.

    name: `arch` or `arch.tag`. With `pretrained=True` the tag's weights are loaded (a bare
        `arch` takes its first registered tag) and the tag's kwargs are the defaults.
    weights: an explicit source instead of the tag (anything `open_weights` takes); what it
        records is not consulted: the architecture is `name` with `kwargs`.
    kwargs: passed to the factory (e.g. `num_classes`, `global_pool`, `vocab_size`).
    """
    base, tag = split_name(name)
    if pretrained and weights is None:
        spec = get_pretrained(f"{base}.{tag or default_tag(base)}")
        kwargs = {**spec.kwargs, **kwargs}
        weights = open_weights(spec.source, spec.converter)
    model = build_model(base, **kwargs)
    if weights is not None:
        opened = open_weights(weights)
        load_state_into(model, opened.state_dict, opened.source)
    return model


def architecture_for(
    name: str, kwargs: dict[str, Any], weights: Weights | None, keep: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any]]:
    """(model name, kwargs) to build for `weights`: the architecture they record, if any.

    Weights that say what they are (a zoo folder, a training `.ckpt`, a converted release) are built
    as recorded whatever `name` says, except the `keep` kwargs (a task's head: `num_classes`, ...),
    which come from `kwargs`. Bare weights (no record) must fit `name` with `kwargs`.
    """
    if weights is None or weights.architecture is None:
        return name, kwargs
    arch = weights.architecture
    built = {k: v for k, v in arch["kwargs"].items() if k not in keep} | {k: kwargs[k] for k in keep if k in kwargs}
    asked = {k: v for k, v in kwargs.items() if k not in keep}
    if arch["name"] != name or any(built.get(k) != v for k, v in asked.items()):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(built.items()) if k not in keep)
        log.info(
            "weights %s hold %s(%s): building that, not %s(%s)",
            weights.source,
            arch["name"],
            shown,
            name,
            ", ".join(f"{k}={v}" for k, v in sorted(asked.items())),
        )
    return arch["name"], built


def from_pretrained(source: str | os.PathLike | Weights, converter: str | None = None, **overrides: Any):
    """The backbone saved in a folder, `.ckpt`, `hf://` address or tag, in eval mode.

    overrides: kwargs changed from the saved ones, e.g. `num_classes=3` for a new head.
    For the whole pipeline (tokenizer, scaling, class names) use `zoo.load_pipeline`.
    """
    opened = open_weights(source, converter)
    if opened.architecture is None:
        raise ZooError(
            f"{opened.source} does not say which architecture it holds; "
            f"use create_model(name, weights={opened.source!r})"
        )
    model = build_model(opened.architecture["name"], **{**opened.architecture["kwargs"], **overrides})
    load_state_into(model, opened.state_dict, opened.source)
    return model.eval()


def language_model_kwargs(name: str, model_kwargs: dict[str, Any], vocab_size: int | None = None) -> dict[str, Any]:
    """`model_kwargs` for `name` as a next-token model, unpooled.

    A family with its own `lm_logits` gets no classifier (`num_classes=0`); any other
    predicts tokens through a classifier as wide as the vocabulary (`model_kwargs["vocab_size"]`,
    else `vocab_size`).
    """
    from zoo.registry import model_class

    own_head = callable(getattr(model_class(name), "lm_logits", None))
    return {
        **model_kwargs,
        "num_classes": 0 if own_head else model_kwargs.get("vocab_size", vocab_size),
        "global_pool": "",
    }


def push_to_hub(model: torch.nn.Module, repo_id: str, card: dict | None = None, **kwargs: Any) -> str:
    """Save to a temporary folder and upload it as `repo_id` (needs network and a token)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = hub.save_pretrained(model, Path(tmp) / "model", card=card)
        return hub.push_to_hub(folder, repo_id, **kwargs)


def download(name_or_source: str, to: str | os.PathLike) -> Path:
    """Fetch weights (a registered `arch.tag` or `hf://` address) and write a zoo folder at `to`.

    The result loads with `HF_HUB_OFFLINE=1` on an air-gapped machine: `weights=<to>`.
    """
    if name_or_source.startswith(hub.HF_PREFIX) or Path(name_or_source).exists():
        model, origin = from_pretrained(name_or_source), name_or_source
    else:
        base, tag = split_name(name_or_source)
        spec = get_pretrained(f"{base}.{tag or default_tag(base)}")
        model, origin = create_model(name_or_source, pretrained=True), spec.source
    return hub.save_pretrained(model, to, card={"notes": f"Converted from {origin} by `zoo download`."})
