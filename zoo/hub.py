"""Finding, reading and writing model folders: pure I/O, no registry, no models.

A saved model is a folder that is also a valid Hugging Face model repo:

    config.json          {"format": "longzoo", "name": <registry name>, "kwargs": {...}, "zoo_version": ...,
                          "sha256": {file: digest}, optionally "task" and "data_contract"}
    model.safetensors    the backbone's state dict (tied tensors stored once)
    task.safetensors     optional: the rest of a task's state (RL heads, soft prompts)
    README.md            a model card (data, metrics, the command that made it)
    ...                  extra files a domain ships (tokenizer.json, classes.json)

`resolve` finds a source on disk: a local path, else the HF cache, else the
network (never with `HF_HUB_OFFLINE=1`). `zoo.factory` turns what is read here
into models; this module never builds one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save, save_file

from zoo.errors import ZooError

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TASK_STATE_NAME = "task.safetensors"
CARD_NAME = "README.md"
HF_PREFIX = "hf://"
FORMAT = "longzoo"


# ----------------------------------------------------------------------------- saving


def unique_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the second name of tied tensors (safetensors refuses shared storage)."""
    seen: set[tuple] = set()
    out = {}
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and ident in seen:
            continue
        seen.add(ident)
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
        "import zoo",
        "model = zoo.from_pretrained('<this folder or hf://org/repo>')   # the backbone, in eval mode",
        "pipeline = zoo.load_pipeline('<this folder or hf://org/repo>')  # with its preprocessing, when a task made it",
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


def _honour_umask(folder: Path) -> None:
    """mkdtemp makes 0700; the user's files get the modes their umask gives any new file."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_pretrained(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    card: dict[str, Any] | None = None,
    extra_files: dict[str, str | bytes] | None = None,
    task: dict[str, Any] | None = None,
    task_state: dict[str, torch.Tensor] | None = None,
    data_contract: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (built by `zoo.create_model`) as a zoo folder, atomically.

    card: optional model-card sections: title, data, metrics, command, notes.
    extra_files: more files to ship in the folder (e.g. a tokenizer's `tokenizer.json`).
    task, task_state, data_contract: what `zoo.load_pipeline` needs to rebuild the task that
        trained the model ({"target": "pkg.Class", "hparams": {...}}, its non-backbone tensors,
        and what its inputs must look like); written by `zoo <domain> export`.
    """
    zoo_config = getattr(model, "zoo_config", None)
    if not zoo_config:
        raise ZooError(
            "this model was not built by zoo.create_model, so its architecture can't be recorded; "
            "build it with create_model(name, ...)"
        )
    from zoo.version import __version__

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_file(unique_tensors(model.state_dict()), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if task_state:
            save_file(unique_tensors(task_state), str(tmp / TASK_STATE_NAME), metadata={"format": "pt"})
        config = {
            "format": FORMAT,
            "zoo_version": __version__,
            "name": zoo_config["name"],
            "kwargs": zoo_config["kwargs"],
            "head_name": getattr(model, "head_name", "head"),
            "sha256": {p.name: sha256_file(p) for p in sorted(tmp.glob("*.safetensors"))},
        }
        if task is not None:
            config["task"] = task
        if data_contract:
            config["data_contract"] = data_contract
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        params = sum(p.numel() for p in model.parameters())
        (tmp / CARD_NAME).write_text(model_card(zoo_config["name"], zoo_config["kwargs"], params, card))
        for name, content in (extra_files or {}).items():
            path = tmp / name
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        _honour_umask(tmp)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict as safetensors bytes (to ship as an extra file)."""
    return save(unique_tensors(state))


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload longzoo model",
) -> str:
    """Upload a saved zoo folder as `repo_id` (needs network and a token)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message)
    return str(info)


# ----------------------------------------------------------------------------- resolving


def parse_hf(source: str) -> tuple[str, str | None]:
    """'hf://org/repo@rev' -> ('org/repo', 'rev')."""
    repo, _, revision = source[len(HF_PREFIX) :].partition("@")
    if repo.count("/") != 1:
        raise ZooError(f"bad hub address {source!r}: write hf://<org>/<repo>[@<revision>]")
    return repo, revision or None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def resolve(source: str | os.PathLike) -> Path:
    """A local path for `source`: the path itself, or the HF snapshot folder (cache first)."""
    text = str(source)
    if not text.startswith(HF_PREFIX):
        path = Path(text).expanduser()
        if not path.exists():
            raise ZooError(
                f"weights not found: {text!r} is neither an existing file/folder, a registered weight tag "
                "(`zoo list --pretrained`) nor an hf://org/repo address"
            )
        if not os.access(path, os.R_OK):
            raise ZooError(f"weights {text!r} cannot be read (permission denied); fix its permissions")
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, revision = parse_hf(text)
    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        if offline():
            raise ZooError(
                f"{text} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids the network; "
                f"run `zoo download {text} --to DIR` on a connected machine and copy DIR here"
            ) from None
    try:
        return Path(snapshot_download(repo, revision=revision))
    except Exception as err:  # network, auth, missing repo: all user-fixable
        first = str(err).splitlines()[0] if str(err) else ""
        raise ZooError(
            f"could not download {text}: {type(err).__name__}: {first}; check the address and your network, "
            f"or on an air-gapped machine run `zoo download {text} --to DIR` elsewhere and use weights=DIR"
        ) from err


# ----------------------------------------------------------------------------- reading


def read_safetensors(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file; with `sha256`, the file must have that digest.

    Set ZOO_SKIP_HASH=1 to skip the check (it reads the whole file once more: minutes for huge models).
    """
    if sha256 and os.environ.get("ZOO_SKIP_HASH", "") not in ("1", "true") and sha256_file(path) != sha256:
        raise ZooError(
            f"{path} does not match the SHA-256 recorded in its config.json (damaged or altered); "
            "re-download or re-export it (ZOO_SKIP_HASH=1 skips this check)"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ZooError(f"corrupted or truncated weights file {path}: {err}; re-download or re-export it") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning `.ckpt`, loaded with weights_only=True (no arbitrary code)."""
    if not os.access(path, os.R_OK):
        raise ZooError(f"checkpoint {path} cannot be read (permission denied); fix its permissions")
    other = "use another checkpoint of the run (checkpoints/best.ckpt or last.ckpt)"
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        raise ZooError(f"checkpoint {path} is empty (0 bytes): its save did not finish; {other}")
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive, or a legacy pickle
        raise ZooError(
            f"{path} is not a PyTorch checkpoint (it starts with {head!r}); give a .ckpt written by `zoo ... train`"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the weights_only loader met a class it will not import
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        raise ZooError(
            f"{path} pickles Python objects ({found.group(1) if found else 'classes'}) that a safe load refuses; "
            "give a .ckpt written by `zoo ... train` or convert it to safetensors"
        ) from None
    except Exception as err:
        first = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(f"checkpoint {path} is truncated or damaged ({first[:100]}); {other}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ZooError(f"{path} is not a Lightning checkpoint (no state_dict); give a .ckpt written by `zoo ... train`")
    return ckpt


def read_config(folder: Path) -> dict[str, Any]:
    """A folder's config.json ({} when absent); a zoo folder's must name an architecture."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise ZooError(f"{path} is not valid JSON ({err}); re-download or re-export the model") from None
    if config.get("format") == FORMAT and "name" not in config:
        raise ZooError(f"{path} has no architecture name; re-export the model")
    return config
