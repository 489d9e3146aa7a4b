"""Per-example outputs of every process, for metrics that are not averages of batch values.

Corpus-level scores (CIDEr-D's document frequencies, BLEU's brevity penalty) cannot be averaged
across processes the way Lightning's `sync_dist` averages a loss: under DDP each rank sees only
its shard of the clips, so the scores must be computed once over the union of every rank's
outputs. `merge_across_ranks` gathers picklable dicts keyed by example id (gloo or NCCL) and
returns their union on every rank; with one process it returns its input unchanged.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def merge_across_ranks(items: dict[Any, Any]) -> dict[Any, Any]:
    """The union of `items` over every process of the default group (later ranks win on equal keys)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list[dict[Any, Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)  # DistributedSampler pads a shard by repeating clips: keys dedupe them
    merged: dict[Any, Any] = {}
    for part in parts:
        merged.update(part or {})
    return merged
