"""Saving and loading models as Hugging Face model repositories.

A saved model is a folder that is also a valid HF model repo:

    config.json          {"format": "longzoo", "name": <registry name>, "kwargs": {...}, "zoo_version": ...}
    model.safetensors    the state dict (tied tensors stored once)
    README.md            a model card (data, metrics, the command that made it)

Sources, in resolution order (DESIGN.md): a local folder or `.ckpt` file; a
registered weight tag (`hyenadna_tiny_1k.hg38`), which names its own source; then
`hf://org/repo[@revision]` through huggingface_hub, looking in the HF cache
first and going to the network only when the cache misses and
`HF_HUB_OFFLINE` is not set. Folders in a foreign layout (an official paper
release) go through `zoo.convert`.

Loading is strict, except for the declared classifier head (`model.head_name`),
which is re-initialised with a logged message when its size differs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo.errors import ZooError

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HF_PREFIX = "hf://"


# ----------------------------------------------------------------------------- saving


def _unique_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the second name of tied tensors (safetensors refuses shared storage)."""
    seen: dict[tuple, str] = {}
    out = {}
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and ident in seen:
            continue
        seen[ident] = key
        out[key] = tensor.detach().contiguous().cpu()
    return out


def model_card(name: str, kwargs: dict, params: int, card: dict[str, Any] | None) -> str:
    card = card or {}
    lines = [
        "---",
        "library_name: longzoo",
        "tags: [longzoo, long-sequence, " + name.split("_")[0] + "]",
        "---",
        f"# {card.get('title', name)}",
        "",
        f"A `longzoo` model: architecture `{name}`, {params:,} parameters.",
        "",
        "```python",
        "from zoo.hub import from_pretrained",
        "model = from_pretrained('<this folder or hf://org/repo>')",
        "```",
        "",
        "## Architecture arguments",
        "",
        "```json",
        json.dumps(kwargs, indent=2, sort_keys=True),
        "```",
    ]
    for section in ("data", "metrics", "command", "notes"):
        if card.get(section) is not None:
            value = card[section]
            body = json.dumps(value, indent=2, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
            fence = section in ("metrics", "command")
            lines += ["", f"## {section.capitalize()}", ""] + (["```", body, "```"] if fence else [body])
    return "\n".join(lines) + "\n"


def _replace_folder(tmp: Path, folder: Path) -> None:
    """Swap a finished temporary folder into place so readers never see half a model."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def save_pretrained(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    card: dict[str, Any] | None = None,
    extra_files: dict[str, str | bytes] | None = None,
) -> Path:
    """Write `model` (built by `create_model`) as a zoo folder, atomically.

    card: optional model-card sections: title, data, metrics, command, notes.
    extra_files: more files to ship in the folder (e.g. a tokenizer's `tokenizer.json`).
    """
    zoo_config = getattr(model, "zoo_config", None)
    if not zoo_config:
        raise ZooError(
            "this model was not built by zoo.create_model, so its architecture can't be recorded; build it with create_model(name, ...)"
        )
    from zoo import __version__

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        config = {
            "format": "longzoo",
            "zoo_version": __version__,
            "name": zoo_config["name"],
            "kwargs": zoo_config["kwargs"],
            "head_name": getattr(model, "head_name", "head"),
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(_unique_tensors(model.state_dict()), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        params = sum(p.numel() for p in model.parameters())
        (tmp / CARD_NAME).write_text(model_card(zoo_config["name"], zoo_config["kwargs"], params, card))
        for name, content in (extra_files or {}).items():
            path = tmp / name
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def push_to_hub(
    model: torch.nn.Module,
    repo_id: str,
    card: dict | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload longzoo model",
) -> str:
    """Save to a temporary folder and upload it as `repo_id` (needs network and a token)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model", card=card)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message)
    return str(info)


# ----------------------------------------------------------------------------- resolving


def parse_hf(source: str) -> tuple[str, str | None]:
    """'hf://org/repo@rev' -> ('org/repo', 'rev')."""
    repo, _, revision = source[len(HF_PREFIX) :].partition("@")
    if repo.count("/") != 1:
        raise ZooError(f"bad hub address {source!r}: write hf://<org>/<repo>[@<revision>]")
    return repo, revision or None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def resolve(source: str | os.PathLike) -> Path:
    """A local path for `source`: the path itself, or the HF snapshot folder (cache first)."""
    text = str(source)
    if not text.startswith(HF_PREFIX):
        path = Path(text).expanduser()
        if not path.exists():
            raise ZooError(
                f"weights not found: {text!r} is neither an existing file/folder nor an hf://org/repo address"
            )
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, revision = parse_hf(text)
    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        if _offline():
            raise ZooError(
                f"{text} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids the network; "
                f"run `zoo download {text} --to DIR` on a connected machine and copy DIR here"
            ) from None
    try:
        return Path(snapshot_download(repo, revision=revision))
    except Exception as err:  # network, auth, missing repo: all user-fixable
        raise ZooError(f"could not download {text}: {type(err).__name__}: {str(err).splitlines()[0]}") from err


# ----------------------------------------------------------------------------- reading


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ZooError(f"corrupted or truncated weights file {path}: {err}; re-download or re-export it") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning `.ckpt`, loaded with weights_only=True (no arbitrary code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ZooError(
            f"cannot read checkpoint {path}: {str(err).splitlines()[0]}; is it a complete Lightning .ckpt?"
        ) from None


def _backbone_state_from_ckpt(ckpt: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    prefix = "backbone."
    state = {k[len(prefix) :]: v for k, v in ckpt.get("state_dict", {}).items() if k.startswith(prefix)}
    if not state:
        raise ZooError(f"checkpoint {path} has no 'backbone.' weights; was it written by a longzoo task?")
    return state


def weights_source(source: str | os.PathLike, converter: str | None = None) -> tuple[str, str | None]:
    """(source, converter): a registered `arch.tag` that is not also a local path becomes its hub address."""
    text = str(source)
    if converter is None and "://" not in text and not Path(text).exists():
        from zoo.registry import get_pretrained, list_pretrained

        if text in list_pretrained():
            spec = get_pretrained(text)
            return spec.source, spec.converter
    return text, converter


def read_source(
    source: str | os.PathLike, converter: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state_dict, architecture) from any source; architecture is {"name", "kwargs"} when the source records it."""
    source, converter = weights_source(source, converter)
    path = resolve(source)
    if path.is_file():
        if path.suffix == ".safetensors":
            return _read_safetensors(path), None
        ckpt = read_checkpoint(path)
        hp = ckpt.get("hyper_parameters", {})
        arch = {"name": hp["model"], "kwargs": dict(hp.get("model_kwargs") or {})} if "model" in hp else None
        return _backbone_state_from_ckpt(ckpt, path), arch
    config_path = path / CONFIG_NAME
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    if config.get("format") == "longzoo" and converter is None:
        weights = path / WEIGHTS_NAME
        if not weights.exists():
            raise ZooError(f"{path} has a longzoo config.json but no {WEIGHTS_NAME}; the folder is incomplete")
        return _read_safetensors(weights), {"name": config["name"], "kwargs": config.get("kwargs", {})}
    from zoo.convert import detect_format, get_converter

    fmt = converter or detect_format(path)
    if fmt is None:
        raise ZooError(
            f"{path} is not a longzoo model folder (no config.json with format 'longzoo') and matches no known checkpoint format"
        )
    state, arch = get_converter(fmt)(path)
    return state, arch


# ----------------------------------------------------------------------------- loading


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
    missing_head = [k for k in missing if k.startswith(head)]
    if missing_head:
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
            f"weights from {source} do not fit {type(model).__name__} ({'; '.join(parts)}); check the model name and kwargs match the checkpoint"
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=False)


def load_pretrained_weights(model: torch.nn.Module, source: str | os.PathLike, converter: str | None = None) -> None:
    state, _ = read_source(source, converter)
    load_state_into(model, state, str(source))


def architecture_for(
    name: str, kwargs: dict[str, Any], weights: str | os.PathLike | None, keep: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any], dict[str, torch.Tensor] | None]:
    """(model name, kwargs, state dict or None) to build for `weights`: the architecture they record, if any.

    Weights that say what they are (a zoo folder, a training `.ckpt`, a converted release) are built
    as recorded whatever `name` says, except the `keep` kwargs (a task's head: `num_classes`, ...),
    which come from `kwargs`. Bare weights (no record) must fit `name` with `kwargs`.
    """
    if not weights:
        return name, kwargs, None
    state, arch = read_source(weights)
    if arch is None:
        return name, kwargs, state
    built = {
        **{k: v for k, v in arch["kwargs"].items() if k not in keep},
        **{k: kwargs[k] for k in keep if k in kwargs},
    }
    asked = {k: v for k, v in kwargs.items() if k not in keep}
    if arch["name"] != name or any(built.get(k) != v for k, v in asked.items()):
        log.info(
            "weights %s hold %s(%s): building that, not %s(%s)",
            weights,
            arch["name"],
            ", ".join(f"{k}={v}" for k, v in sorted(built.items()) if k not in keep),
            name,
            ", ".join(f"{k}={v}" for k, v in sorted(asked.items())),
        )
    return arch["name"], built, state


def from_pretrained(source: str | os.PathLike, converter: str | None = None, **overrides: Any) -> torch.nn.Module:
    """Build and load a model from a folder, `.ckpt` or `hf://` address.

    overrides: kwargs changed from the saved ones, e.g. `num_classes=3` for a new head.
    """
    from zoo.registry import create_model

    state, arch = read_source(source, converter)
    if arch is None:
        raise ZooError(
            f"{source} does not say which architecture it holds; use create_model(name, weights={str(source)!r})"
        )
    model = create_model(arch["name"], **{**arch["kwargs"], **overrides})
    load_state_into(model, state, str(source))
    return model


def download(name_or_source: str, to: str | os.PathLike) -> Path:
    """Fetch weights (a registered `arch.tag` or `hf://` address) and write a zoo folder at `to`.

    The result loads with `HF_HUB_OFFLINE=1` on an air-gapped machine: `weights=<to>`.
    """
    from zoo.registry import create_model, get_pretrained, split_name

    if name_or_source.startswith(HF_PREFIX) or Path(name_or_source).exists():
        model = from_pretrained(name_or_source)
        origin = name_or_source
    else:
        spec = get_pretrained(name_or_source)
        model = create_model(name_or_source, pretrained=True)
        model.zoo_config["name"] = split_name(name_or_source)[0]
        origin = spec.source
    return save_pretrained(model, to, card={"notes": f"Converted from {origin} by `zoo download`."})
