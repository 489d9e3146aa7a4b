"""`zoo.load_pipeline(source)`: a trained model with everything around it, for predictions in Python.

The pipeline is the task that trained the model, restored from what the source recorded
(an exported folder, an `hf://` address, a registered tag or a training `.ckpt`): its
backbone and head, its tokenizer, class names and target scaling, in eval mode. A task that
supports it has `predict(inputs)`, which returns the rows `zoo <domain> predict` writes
for the same inputs (tested per domain in tests/test_pipelines.py and tests/test_chem_train.py),
applying the data settings recorded with the model (lengths, windows, scaling, batch size):

- genomics `SequenceTask.predict(sequences, ids=None, labels=None)`;
- chem `PropertyTask.predict(smiles, ids=None, canonical=True)`;
- timeseries `ForecastTask.predict(data=None)`: a file, a DataFrame, or the training series;
- rl `PPOTask.predict(episodes=None, seed=None, greedy=True)`: the test's episodes from its seed;
- video `FramePredictionTask.predict(clips, ids=None, horizon=None, folder=None)` and
  `CaptionTask.predict(clips, ids=None, references=None)`;
- recsys `RecTask.predict(history, topk=10, new_items=None, exclude_history=True)`.

    pipeline = zoo.load_pipeline("runs/genomics/train/<run>/checkpoints/best.ckpt")
    rows = pipeline.predict(["ACGTTGCA...", "TTGACA..."])   # [{"id": "row1", "label": "", "pred": ...}, ...]
"""

from __future__ import annotations

import os
from typing import Any


def load_pipeline(source: str | os.PathLike) -> Any:
    """The trained task saved at `source`, in eval mode (see the module docstring)."""
    from zoo.factory import open_weights
    from zoo.training.loading import restore_task

    return restore_task(open_weights(source))
