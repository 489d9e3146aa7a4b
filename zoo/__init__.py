"""longzoo core: long-sequence backbones, registry, hub and training machinery.

The core never imports `domains`; domains build on what is exported here.
"""

__version__ = "0.1.0"

from zoo.errors import ZooError
from zoo.registry import create_model, list_models, list_pretrained, register_model

__all__ = ["ZooError", "create_model", "list_models", "list_pretrained", "register_model", "__version__"]
