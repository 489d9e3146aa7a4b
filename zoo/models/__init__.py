"""Backbone families, one module each. Every module here is imported so its
`@register_model` factories land in the registry: adding a family is adding a file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
