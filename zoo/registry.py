"""Model registry: names -> factory functions, plus pretrained tags.

Names follow `family_size[_ctx][.tag]` (timm's convention): the part before the
dot names an architecture, the tag names a set of weights for it, e.g.
`hyenadna_tiny_1k.hg38`. Every family registers a `test_<family>` variant small
enough (<= 100k parameters) for the registry-wide tests.

`create_model` records the base name and keyword arguments on the module
(`model.zoo_config`) so that `zoo.hub.save_pretrained` can write a `config.json`
that rebuilds exactly the same architecture.
"""

from __future__ import annotations

import difflib
import fnmatch
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError

_entrypoints: dict[str, Callable[..., Any]] = {}
_families: dict[str, str] = {}
_pretrained: dict[str, PretrainedTag] = {}


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


def _ensure_loaded() -> None:
    # Families register themselves on import; importing the package pulls them all in.
    if "zoo.models" not in sys.modules:
        import zoo.models  # noqa: F401


def unknown_name_error(name: str, candidates: list[str], what: str = "model") -> ZooError:
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ZooError(f"unknown {what} name {name!r}.{hint} Run `zoo list` to see every name.")


def is_model(name: str) -> bool:
    _ensure_loaded()
    return split_name(name)[0] in _entrypoints


def model_family(name: str) -> str:
    _ensure_loaded()
    base = split_name(name)[0]
    if base not in _families:
        raise unknown_name_error(base, sorted(_entrypoints))
    return _families[base]


def get_pretrained(name: str) -> PretrainedTag:
    _ensure_loaded()
    if name not in _pretrained:
        raise unknown_name_error(name, sorted(_pretrained), what="pretrained")
    return _pretrained[name]


def create_model(name: str, pretrained: bool = False, weights: str | None = None, **kwargs: Any):
    """Build a registered model.

    name: `arch` or `arch.tag`. With `pretrained=True` the tag's weights are
        loaded (a bare `arch` takes its first registered tag).
    weights: explicit weight source instead of the tag: a local folder, a
        `.ckpt`, `hf://org/repo[@rev]` or a registered `arch.tag`; what it records is not consulted,
        the architecture is `name` with `kwargs`.
    kwargs: passed to the factory (e.g. `num_classes`, `global_pool`, `vocab_size`).
    """
    _ensure_loaded()
    base, tag = split_name(name)
    if base not in _entrypoints:
        raise unknown_name_error(base, sorted(_entrypoints))
    if pretrained and weights is None:
        if not tag:
            tags = [n for n in _pretrained if split_name(n)[0] == base]
            if not tags:
                raise ZooError(
                    f"model {base!r} has no pretrained weights; use pretrained=False or weights=<path|hf://...>."
                )
            tag = split_name(tags[0])[1]
        spec = get_pretrained(f"{base}.{tag}")
        kwargs = {**spec.kwargs, **kwargs}
    model = _entrypoints[base](**kwargs)
    model.zoo_config = {"name": base, "kwargs": dict(kwargs)}
    if pretrained and weights is None:
        from zoo.hub import load_pretrained_weights

        load_pretrained_weights(model, spec.source, converter=spec.converter)
    elif weights is not None:
        from zoo.hub import load_pretrained_weights

        load_pretrained_weights(model, weights)
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
    """Family, parameter count and weight tags of one architecture (builds it)."""
    import torch

    base = split_name(name)[0]
    try:  # count parameters without allocating them (a 100M-parameter model is instant on "meta")
        with torch.device("meta"):
            model = create_model(base)
    except Exception:  # an initialiser that computes on real values (eigendecompositions, numpy)
        model = create_model(base)
    return {
        "name": base,
        "family": model_family(base),
        "params": sum(p.numel() for p in model.parameters()),
        "recurrent": bool(getattr(model, "recurrent", False)),
        "tags": [split_name(n)[1] for n in list_pretrained(f"{base}.*")],
    }
