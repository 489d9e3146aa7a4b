"""Types and ranges of the settings every domain shares, checked before anything runs.

A bad value (`data.batch_size=0`, `trainer.max_epochs=abc`, `task.optimizer.lr=-1`) would
otherwise surface as a traceback from deep inside PyTorch or Lightning. Each rule names a
key (a dotted path; `*` matches one level), what it must be, and is applied only where the
composed config has that key, so a domain's own keys (horizons, env counts, rollout
lengths) are covered by listing them here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig

from zoo.errors import ZooError

# key pattern -> (kind, minimum, allow None). kind: int | number.
RULES: dict[str, tuple[str, float, bool]] = {
    "trainer.max_epochs": ("int", -1, True),
    "trainer.min_epochs": ("int", 0, True),
    "trainer.max_steps": ("int", -1, False),
    "trainer.accumulate_grad_batches": ("int", 1, False),
    "trainer.check_val_every_n_epoch": ("int", 1, True),
    "trainer.log_every_n_steps": ("int", 1, True),
    "trainer.devices": ("int", 1, False),
    "trainer.num_nodes": ("int", 1, False),
    "trainer.gradient_clip_val": ("number", 0, True),
    "threads": ("int", 1, True),
    "seed": ("int", 0, False),
    "data.batch_size": ("int", 1, False),
    "data.num_workers": ("int", 0, False),
    "data.max_tokens": ("int", 3, False),
    "data.max_length": ("int", 1, True),
    "data.seq_len": ("int", 1, False),
    "data.horizon": ("int", 1, False),
    "data.label_len": ("int", 0, False),
    "data.num_envs": ("int", 1, False),
    "data.rollout_steps": ("int", 1, False),
    "data.iterations_per_epoch": ("int", 1, False),
    "data.num_samples": ("int", 1, False),
    "data.clip_length": ("int", 2, False),
    "data.context": ("int", 1, False),
    "task.optimizer.lr": ("number", 0, False),
    "task.optimizer.weight_decay": ("number", 0, False),
    "task.eval_episodes": ("int", 1, False),
    "task.val_episodes": ("int", 1, False),
    "task.num_envs": ("int", 1, False),
    "task.rollout_steps": ("int", 1, False),
    "task.topk": ("int", 1, False),
}
_STRICTLY_POSITIVE = {"task.optimizer.lr"}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, DictConfig):
        for key in node:
            try:
                value = node[key]
            except Exception:  # `???` or an interpolation that cannot resolve here: not ours to judge
                continue
            yield from _leaves(value, f"{prefix}{key}.")
    elif not isinstance(node, ListConfig):
        yield prefix[:-1], node


def check_value(key: str, value: Any, kind: str, minimum: float, allow_none: bool) -> None:
    if value is None:
        if allow_none:
            return
        raise ZooError(f"{key}=null: give a value (see `--cfg job` for the default)")
    numeric = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric):
        what = "a whole number" if kind == "int" else "a number"
        raise ZooError(f"{key}={value!r}: must be {what} >= {minimum:g}")
    too_small = value <= minimum if key in _STRICTLY_POSITIVE else value < minimum
    if too_small:
        bound = f"> {minimum:g}" if key in _STRICTLY_POSITIVE else f">= {minimum:g}"
        raise ZooError(f"{key}={value!r}: must be {bound}")


def check_config(cfg: DictConfig) -> None:
    """Raise one ZooError line for the first shared setting out of type or range."""
    for key, value in _leaves(cfg):
        for pattern, (kind, minimum, allow_none) in RULES.items():
            if fnmatch.fnmatchcase(key, pattern):
                check_value(key, value, kind, minimum, allow_none)
