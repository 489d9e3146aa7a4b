"""Converters for foreign checkpoint formats, one module per format.

A converter reads a folder in someone else's layout (the official release of a
paper's weights) and returns `(state_dict, architecture)`: a state dict in the
zoo's key layout and `{"name": <registered model name>, "kwargs": {...}}`, the
factory call that rebuilds the matching architecture.
`zoo.hub` calls `detect_format` on folders that have no zoo `config.json`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import torch

Converter = Callable[[Path], tuple[dict[str, torch.Tensor], dict]]  # (state_dict, {'name', 'kwargs'})
_converters: dict[str, tuple[Callable[[Path], bool], Converter]] = {}


def register_converter(name: str, detect: Callable[[Path], bool]):
    """Decorator: `@register_converter("hyenadna", detect=looks_like_official_hyenadna)`."""

    def wrap(fn: Converter) -> Converter:
        _converters[name] = (detect, fn)
        return fn

    return wrap


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_converter(name: str) -> Converter:
    _load_all()
    if name not in _converters:
        from zoo.errors import ZooError

        raise ZooError(f"unknown checkpoint format {name!r}; known formats: {', '.join(sorted(_converters)) or 'none'}")
    return _converters[name][1]


def detect_format(folder: Path) -> str | None:
    """Name of the first converter whose `detect` accepts the folder, else None."""
    _load_all()
    for name, (detect, _) in _converters.items():
        if detect(folder):
            return name
    return None
