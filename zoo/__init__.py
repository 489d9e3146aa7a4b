"""longzoo core: long-sequence backbones, registry, hub and training machinery.

The core never imports `domains`; domains build on what is exported here.
Dependencies point down: training -> factory -> hub (file I/O) -> models -> layers;
the registry knows names only.
"""

from zoo.errors import ZooError
from zoo.factory import Weights, create_model, download, from_pretrained, open_weights
from zoo.pipeline import load_pipeline
from zoo.registry import list_models, list_pretrained, register_model
from zoo.version import __version__

__all__ = [
    "Weights",
    "ZooError",
    "__version__",
    "create_model",
    "download",
    "from_pretrained",
    "list_models",
    "list_pretrained",
    "load_pipeline",
    "open_weights",
    "register_model",
]
