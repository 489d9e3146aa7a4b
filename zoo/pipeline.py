"""`zoo.load_pipeline(source)`: a trained model with everything around it, for predictions in Python.

The pipeline is the task that trained the model, restored from what the source recorded
(an exported folder, an `hf://` address, a registered tag or a training `.ckpt`): its
backbone and head, its tokenizer, class names and target scaling, in eval mode. A task that
supports it has `predict(inputs)`, which returns the rows `zoo <domain> predict` writes
for the same inputs (tested per domain).
"""

from __future__ import annotations

import os
from typing import Any


def load_pipeline(source: str | os.PathLike) -> Any:
    """The trained task saved at `source`, in eval mode (see the module docstring)."""
    from zoo.factory import open_weights
    from zoo.training.loading import restore_task

    return restore_task(open_weights(source))
