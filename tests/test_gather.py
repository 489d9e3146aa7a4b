"""Corpus-level metrics under DDP: every rank gets the union of the per-example outputs (two real gloo processes)."""

from __future__ import annotations

import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.training.gather import merge_across_ranks


def _rank(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        # rank 1's shard repeats clip c (a padded DistributedSampler shard) and rank 0 has one clip more
        shard = {0: {"a": "one", "b": "two", "c": "three"}, 1: {"d": "four", "c": "three"}}[rank]
        merged = merge_across_ranks(shard)
        with open(f"{out}.{rank}", "w") as handle:
            handle.write(repr(sorted(merged.items())))
    finally:
        dist.destroy_process_group()


def test_every_rank_scores_the_union_of_all_shards(tmp_path):
    out = str(tmp_path / "merged")
    mp.start_processes(_rank, args=(2, str(tmp_path / "store"), out), nprocs=2, start_method="spawn")
    expected = repr(sorted({"a": "one", "b": "two", "c": "three", "d": "four"}.items()))
    assert [(tmp_path / f"merged.{r}").read_text() for r in (0, 1)] == [expected, expected]


def test_one_process_gets_its_own_items_back():
    items = {"clip1": "a digit moves up"}
    assert merge_across_ranks(items) is items
