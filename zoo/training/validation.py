"""Types and ranges of the settings every domain shares, checked before anything runs.

A bad value (`data.batch_size=0`, `trainer.max_epochs=abc`, `task.optimizer.lr=-1`) would
otherwise surface as a traceback from deep inside PyTorch or Lightning. Each rule names a
key (a dotted path; `*` matches one level), what it must be, and is applied only where the
composed config has that key, so a domain's own keys (horizons, env counts, rollout
lengths, PPO settings) are covered by listing them here.

Two checks span more than one key:

- `AT_MOST_PRODUCT`: a count that may not exceed the product of other settings (PPO's
  minibatches per update and the samples of one rollout, `num_envs x rollout_steps`).
- A data config that needs the user's file declares `requires_path: <the line to show>` (e.g.
  `configs/data/ett.yaml`: `path: null`, `requires_path: data=ett needs data.path=<ETTh1.csv|...>`);
  without `data.path` the command stops with that line instead of reading the domain's default data.
  (`path: ???` cannot do it where the group extends a default with a path: OmegaConf keeps a value
  under MISSING when merging.)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any, NamedTuple

from omegaconf import DictConfig, ListConfig, OmegaConf

from zoo.errors import ZooError


class Rule(NamedTuple):
    """kind: int | number; the value must be >= minimum (> with `above`) and <= maximum when given."""

    kind: str
    minimum: float
    allow_none: bool = False
    maximum: float | None = None
    above: bool = False


RULES: dict[str, Rule] = {
    "trainer.max_epochs": Rule("int", -1, True),
    "trainer.min_epochs": Rule("int", 0, True),
    "trainer.max_steps": Rule("int", -1),
    "trainer.accumulate_grad_batches": Rule("int", 1),
    "trainer.check_val_every_n_epoch": Rule("int", 1, True),
    "trainer.log_every_n_steps": Rule("int", 1, True),
    "trainer.devices": Rule("int", 1),
    "trainer.num_nodes": Rule("int", 1),
    "trainer.gradient_clip_val": Rule("number", 0, True),
    "threads": Rule("int", 1, True),
    "seed": Rule("int", 0),
    "data.batch_size": Rule("int", 1),
    "data.num_workers": Rule("int", 0),
    "data.max_tokens": Rule("int", 3),
    "data.max_length": Rule("int", 1, True),
    "data.seq_len": Rule("int", 1),
    "data.horizon": Rule("int", 1),
    "data.label_len": Rule("int", 0),
    "data.num_envs": Rule("int", 1),
    "data.rollout_steps": Rule("int", 1),
    "data.iterations_per_epoch": Rule("int", 1),
    "data.num_samples": Rule("int", 1),
    "data.clip_length": Rule("int", 2),
    "data.context": Rule("int", 1),
    "data.max_fill_fraction": Rule("number", 0, False, 1),
    "task.optimizer.lr": Rule("number", 0, above=True),
    "task.optimizer.weight_decay": Rule("number", 0),
    "task.eval_episodes": Rule("int", 1),
    "task.val_episodes": Rule("int", 1),
    "task.num_envs": Rule("int", 1),
    "task.rollout_steps": Rule("int", 1),
    "task.topk": Rule("int", 1),
    # PPO (domains/rl/ppo.py): a discount and GAE's lambda weigh future rewards, so they lie in [0, 1]
    "task.ppo.num_minibatches": Rule("int", 1),
    "task.ppo.update_epochs": Rule("int", 1),
    "task.ppo.gamma": Rule("number", 0, False, 1),
    "task.ppo.gae_lambda": Rule("number", 0, False, 1),
    "task.ppo.clip_eps": Rule("number", 0, above=True),
    "task.ppo.vf_coef": Rule("number", 0),
    "task.ppo.max_grad_norm": Rule("number", 0, True),
}

# key -> (keys whose product bounds it, what that product is, how to fix a value above it)
AT_MOST_PRODUCT: dict[str, tuple[tuple[str, ...], str, str]] = {
    "task.ppo.num_minibatches": (
        ("data.num_envs", "data.rollout_steps"),
        "samples in one rollout",
        "lower task.ppo.num_minibatches or raise data.num_envs / data.rollout_steps",
    ),
}


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


def describe(rule: Rule) -> str:
    """The allowed range in words: `>= 1`, `> 0`, `in [0, 1]`."""
    if rule.maximum is not None:
        return f"in {'(' if rule.above else '['}{rule.minimum:g}, {rule.maximum:g}]"
    return f"{'>' if rule.above else '>='} {rule.minimum:g}"


def check_value(key: str, value: Any, rule: Rule) -> None:
    if value is None:
        if rule.allow_none:
            return
        raise ZooError(f"{key}=null: give a value (see `--cfg job` for the default)")
    numeric = (int,) if rule.kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric):
        what = "a whole number" if rule.kind == "int" else "a number"
        raise ZooError(f"{key}={value!r}: must be {what} {describe(rule)}")
    too_small = value <= rule.minimum if rule.above else value < rule.minimum
    too_large = rule.maximum is not None and value > rule.maximum
    if too_small or too_large:
        raise ZooError(f"{key}={value!r}: must be {describe(rule)}")


def check_products(cfg: DictConfig) -> None:
    for key, (factors, what, fix) in AT_MOST_PRODUCT.items():
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        numbers = [OmegaConf.select(cfg, f, throw_on_missing=False) for f in factors]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (value, *numbers)):
            continue  # absent here (another domain) or refused by RULES already
        bound = 1
        for number in numbers:
            bound *= number
        if value > bound:
            terms = " x ".join(f"{f}={n}" for f, n in zip(factors, numbers))
            raise ZooError(f"{key}={value}: more than the {bound} {what} ({terms}); {fix}")


def check_required_path(cfg: DictConfig) -> None:
    data = cfg.get("data") if isinstance(cfg, DictConfig) else None
    if not isinstance(data, DictConfig):
        return
    message = data.get("requires_path")
    path = OmegaConf.select(data, "path", throw_on_missing=False, default=None)
    if message and (path is None or str(path).strip() in ("", "???")):
        raise ZooError(str(message))


def check_config(cfg: DictConfig) -> None:
    """Raise one ZooError line for the first shared setting out of type or range."""
    for key, value in _leaves(cfg):
        for pattern, rule in RULES.items():
            if fnmatch.fnmatchcase(key, pattern):
                check_value(key, value, rule)
    check_products(cfg)
    check_required_path(cfg)
