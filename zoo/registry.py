"""Model registry: names -> factory functions, plus pretrained tags. Knows no files.

Names follow `family_size[_ctx][.tag]` (timm's convention): the part before the
dot names an architecture, the tag names a set of weights for it, e.g.
`hyenadna_tiny_1k.hg38`. Every family registers a `test_<family>` variant small
enough (<= 100k parameters) for the registry-wide tests.

Where the names come from: every module of `zoo.models`, then every module
declared in the `longzoo.models` entry-point group (a domain's own backbones,
e.g. the RL policy cores: `[project.entry-points."longzoo.models"]` in
pyproject.toml). Both are imported on the first lookup, so `zoo.list_models()`
is complete in an interpreter that imported only `zoo`.

`build_model` calls a factory and records its name and keyword arguments on the
module (`model.zoo_config`), which `zoo.hub.save_pretrained` writes to
`config.json`. Loading weights is `zoo.factory`'s business, one layer up.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from zoo.errors import ZooError

ENTRY_POINT_GROUP = "longzoo.models"

_entrypoints: dict[str, Callable[..., Any]] = {}
_families: dict[str, str] = {}
_pretrained: dict[str, PretrainedTag] = {}
_loaded = False


@dataclass(frozen=True)
class PretrainedTag:
    """Where the weights of `name.tag` live and how to read them.

    source: `hf://org/repo[@revision]` or a local folder.
    converter: name of a `zoo.convert` format when the files are not in the zoo's
        own layout (e.g. the official HyenaDNA release); None for zoo folders.
    """

    source: str
    description: str = ""
    converter: str | None = None
    kwargs: dict = field(default_factory=dict)


def register_model(fn: Callable[..., Any] | None = None, *, pretrained: dict[str, PretrainedTag] | None = None):
    """Decorator registering a model factory under its function name.

    `pretrained` maps tags to `PretrainedTag`s: `@register_model(pretrained={"hg38": ...})`.
    Annotate the factory's return type (`-> MyBackbone`): `model_class` reads it to learn
    a model's declared capabilities without building one.
    """

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        name = func.__name__
        if name in _entrypoints and _entrypoints[name] is not func:
            raise ValueError(
                f"model {name!r} is registered twice ({_entrypoints[name].__module__} and {func.__module__})"
            )
        _entrypoints[name] = func
        _families[name] = func.__module__.rsplit(".", 1)[-1]
        for tag, spec in (pretrained or {}).items():
            _pretrained[f"{name}.{tag}"] = spec
        return func

    return wrap(fn) if fn is not None else wrap


def register_pretrained(name: str, spec: PretrainedTag) -> None:
    """Declare weights for an already registered architecture (`name.tag`)."""
    base, tag = split_name(name)
    if not tag:
        raise ValueError(f"pretrained name {name!r} needs a tag: 'arch.tag'")
    _ensure_loaded()
    if base not in _entrypoints:
        raise ValueError(f"cannot add weights {name!r}: architecture {base!r} is not registered")
    _pretrained[name] = spec


def split_name(name: str) -> tuple[str, str]:
    """'hyenadna_tiny_1k.hg38' -> ('hyenadna_tiny_1k', 'hg38'); no tag -> ''."""
    base, _, tag = name.partition(".")
    return base, tag


def declared_modules() -> list[str]:
    """Modules that register models: the entry points of the `longzoo.models` group."""
    return sorted(ep.value for ep in entry_points(group=ENTRY_POINT_GROUP))


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: the imports below call register_model, which must not recurse here
    # Discovery by name, as for plugins: the families depend on the registry, not the reverse.
    for module in ["zoo.models", *declared_modules()]:
        importlib.import_module(module)


def unknown_name_error(name: str, candidates: list[str], what: str = "model") -> ZooError:
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ZooError(f"unknown {what} name {name!r}.{hint} Run `zoo list` to see every name.")


def _factory(name: str) -> Callable[..., Any]:
    _ensure_loaded()
    base = split_name(name)[0]
    if base not in _entrypoints:
        raise unknown_name_error(base, sorted(_entrypoints))
    return _entrypoints[base]


def is_model(name: str) -> bool:
    _ensure_loaded()
    return split_name(name)[0] in _entrypoints


def model_family(name: str) -> str:
    _factory(name)
    return _families[split_name(name)[0]]


def model_class(name: str) -> type:
    """The class a factory builds (its return annotation): capabilities are read from it, not from names."""
    factory = _factory(name)
    cls = typing.get_type_hints(factory).get("return")
    if not isinstance(cls, type):
        raise TypeError(
            f"factory {factory.__module__}.{factory.__name__} has no return annotation; add `-> ModelClass`"
        )
    return cls


def get_pretrained(name: str) -> PretrainedTag:
    _ensure_loaded()
    if name not in _pretrained:
        raise unknown_name_error(name, sorted(_pretrained), what="pretrained")
    return _pretrained[name]


def default_tag(base: str) -> str:
    """The first registered tag of an architecture (what `pretrained=True` on a bare name loads)."""
    tags = [split_name(n)[1] for n in list_pretrained(f"{base}.*")]
    if not tags:
        raise ZooError(f"model {base!r} has no pretrained weights; use pretrained=False or weights=<path|hf://...>.")
    return tags[0]


def build_model(name: str, **kwargs: Any):
    """A freshly initialised model (no weights), with `zoo_config` recording how it was built."""
    base = split_name(name)[0]
    model = _factory(base)(**kwargs)
    model.zoo_config = {"name": base, "kwargs": dict(kwargs)}
    return model


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted architecture names matching a glob; with `pretrained`, the `arch.tag` names."""
    _ensure_loaded()
    names = _pretrained if pretrained else _entrypoints
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted `arch.tag` names matching a glob."""
    return list_models(pattern, pretrained=True)


def describe(name: str) -> dict[str, Any]:
    """Family, parameter count, capabilities and weight tags of one architecture (builds it)."""
    import torch

    base = split_name(name)[0]
    try:  # count parameters without allocating them (a 100M-parameter model is instant on "meta")
        with torch.device("meta"):
            model = build_model(base)
    except Exception:  # an initialiser that computes on real values (eigendecompositions, numpy)
        model = build_model(base)
    return {
        "name": base,
        "family": model_family(base),
        "params": sum(p.numel() for p in model.parameters()),
        "recurrent": bool(getattr(model, "recurrent", False)),
        "tags": [split_name(n)[1] for n in list_pretrained(f"{base}.*")],
    }
