"""Where an Informer training step's CPU time goes, and what that means for an ETTh1 epoch.

The workload is the allocator benchmark's (`benchmarks.studies.cpu_allocator.informer_training_step`:
`informer_base` at the official ETTh1 windows, batch 32, float32, forward + MSE + backward
+ Adam). One warm-up step, then `--steps` steps under `torch.profiler`; each operator's
self CPU time is put in one of a few groups:

- matrix products (`mm`, `addmm`, `bmm`): the projections, feed-forward layers and
  attention scores; the profiler's FLOP count gives their achieved GFLOP/s;
- dropout masks (`bernoulli_`): drawing a random mask per dropout call (p = 0.05);
- gathers and scatters (`index`, `gather`, `scatter`, ...): ProbSparse's per-query key
  samples and the top-query gather/scatter;
- convolutions: the circular value embedding and the distilling convolution;
- the rest (element-wise ops, norms, softmax, Adam, copies).

A second table times the largest dropout mask of each step alone (the decoder's
feed-forward activations, batch x decoder length x d_ff 2048) at 1 thread and at
`--threads`, beside an element-wise product of the same tensor: whether drawing the
mask uses the second core.

The last columns of the first table turn the matrix products into a lower bound: the train windows of the
12-month split (`8640 - seq_len - horizon + 1`, in batches of 32) times the step's
matrix-product seconds, i.e. the epoch time if everything else were free and validation
cost nothing; early stopping with patience 3 runs at least 4 epochs.

    python -m benchmarks.studies.informer_cpu_profile [--cells M168 M720 S720] [--threads 2] [--steps 1]

Run it with the allocator the training uses (`LD_PRELOAD=...libtcmalloc_minimal.so.4`,
see docs/performance.md); nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks._harness import machine_description, markdown_table, pin_threads
from benchmarks.studies.cpu_allocator import CELLS, informer_training_step

GROUPS = {
    "matrix products": {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm"},
    "dropout masks": {"aten::bernoulli_"},
    "gathers and scatters": {
        "aten::index",
        "aten::gather",
        "aten::scatter",
        "aten::scatter_add_",
        "aten::index_select",
        "aten::index_put_",
        "aten::_index_put_impl_",
    },
    "convolutions": {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution"},
}
#: the ETT split's training rows (12 months of 30 days, hourly), the minimum epochs under patience 3, the batch
TRAIN_ROWS, MIN_EPOCHS, BATCH = 12 * 30 * 24, 4, 32


def group_times(events) -> tuple[dict[str, float], float, float]:
    """Shares of the operators' self time per group, the total self seconds, and the matrix products' FLOPs.

    An operator's self time is its wall time on the calling thread (intra-op threads work
    inside it), so the shares are of the profiled operator time; "rest" is 1 - their sum.
    """
    total = sum(e.self_cpu_time_total for e in events)
    shares = {g: sum(e.self_cpu_time_total for e in events if e.key in names) / total for g, names in GROUPS.items()}
    flops = sum(e.flops for e in events if e.key in GROUPS["matrix products"])
    return shares, total / 1e6, flops


def profile_cell(cell: str, steps: int) -> dict:
    step = informer_training_step(cell)
    step()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
    shares, total_s, flops = group_times(prof.key_averages())
    matmul_s = shares["matrix products"] * total_s / steps
    _, seq_len, _, horizon, _ = CELLS[cell]
    train_steps = math.ceil((TRAIN_ROWS - seq_len - horizon + 1) / BATCH)
    return {
        "step_s": wall / steps,
        "shares": shares,
        "gflops": flops / steps / matmul_s / 1e9,
        "train_steps": train_steps,
        "matmul_epoch_min": matmul_s * train_steps / 60,
    }


def timed_ms(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1e3 * (time.perf_counter() - start) / repeats


def mask_row(cell: str, threads: int) -> dict:
    """The decoder feed-forward dropout mask (p = 0.05) and a multiply of that size, at 1 and `threads` threads."""
    _, _, label_len, horizon, _ = CELLS[cell]
    x = torch.empty(BATCH, label_len + horizon, 2048)
    found = {"cell (elements)": f"{cell} ({x.numel() / 1e6:.0f} M)"}
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        found[f"mask ms, {n} thread(s)"] = f"{timed_ms(lambda: torch.empty_like(x).bernoulli_(0.95)):.0f}"
        found[f"multiply ms, {n} thread(s)"] = f"{timed_ms(lambda: x * x):.0f}"
    torch.set_num_threads(threads)
    return found


def row(cell: str, found: dict) -> dict:
    _, seq_len, label_len, horizon, _ = CELLS[cell]
    shares = found["shares"]
    return {
        "cell (seq_len + decoder)": f"{cell} ({seq_len} + {label_len + horizon})",
        "s / step": f"{found['step_s']:.1f}",
        **{f"{g} %": f"{100 * s:.0f}" for g, s in shares.items()},
        "rest %": f"{100 * (1 - sum(shares.values())):.0f}",
        "matrix GFLOP/s": f"{found['gflops']:.0f}",
        "train steps / epoch": found["train_steps"],
        "matrix products alone, min / epoch": f"{found['matmul_epoch_min']:.0f}",
        f"their {MIN_EPOCHS} epochs, h": f"{MIN_EPOCHS * found['matmul_epoch_min'] / 60:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["M168", "M720", "S720"], choices=list(CELLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    pin_threads(args.threads)
    print(
        f"{machine_description(args.threads)}; Informer (informer_base) training step, batch 32, "
        f"{args.steps} profiled step(s) after a warm-up\n"
    )
    print(markdown_table([row(cell, profile_cell(cell, args.steps)) for cell in args.cells]))
    print("\n" + markdown_table([mask_row(cell, args.threads) for cell in args.cells]))


if __name__ == "__main__":
    main()
