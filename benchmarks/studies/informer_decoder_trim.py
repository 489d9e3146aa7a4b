"""What trimming Informer's last decoder layer to the forecast steps saves in a training step.

The official Informer runs every decoder step (`label_len` known + `pred_len` to forecast)
through the whole decoder and then keeps the last `pred_len` outputs. After the last
layer's self-attention every operation is per position (cross-attention queries,
feed-forward, norms, projection), so `Informer.forecast` drops the known steps there;
tests/test_informer.py checks that forecasts and gradients are unchanged.

The workload is the allocator benchmark's (`benchmarks.studies.cpu_allocator.informer_training_step`:
`informer_base` at the official ETTh1 windows, batch 32, float32, forward + MSE + backward
+ Adam), once in the official order (`full`) and once trimmed, each (cell, variant) in
its own process: floating-point operations of one step (`torch.utils.flop_counter`,
matrix products and attention; exact, whatever the machine's load), then the median wall
time of `--steps` steps after a warm-up, and the process's peak resident size
(`ru_maxrss`: torch and the model included, the same in both variants, so the
difference is the activations).

    python -m benchmarks.studies.informer_decoder_trim [--cells M24 M168 M720 S336 S720] [--threads 2] [--steps 2]

Run it with the allocator the training uses (`LD_PRELOAD=...libtcmalloc_minimal.so.4`,
docs/performance.md); nothing here asserts a time.
"""

from __future__ import annotations

import argparse

from torch.utils.flop_counter import FlopCounterMode

from benchmarks._harness import (
    machine_description,
    markdown_table,
    pin_threads,
    preload,
    process_peak_rss_bytes,
    ratio,
    run_isolated,
    time_calls,
)
from benchmarks.studies.cpu_allocator import CELLS, informer_training_step

VARIANTS = {"full": True, "trimmed": False}  # name -> full_decoder


def run_case(cell: str, full_decoder: bool, threads: int, steps: int) -> dict:
    """Inside a fresh process: one counted step, `time_calls` (a warm-up, then `steps`), the process's peak."""
    pin_threads(threads)
    step = informer_training_step(cell, full_decoder)
    with FlopCounterMode(display=False) as counter:
        step()
    timing = time_calls(step, steps)
    return {"gflop": counter.get_total_flops() / 1e9, **timing, "peak_gb": process_peak_rss_bytes() / 2**30}


def row(cell: str, found: dict[str, dict]) -> dict:
    _, seq_len, label_len, horizon, _ = CELLS[cell]
    full, trimmed = found["full"], found["trimmed"]
    out = {"cell (seq_len + label_len + pred_len)": f"{cell} ({seq_len} + {label_len} + {horizon})"}
    for key, name, short, scale in (
        ("gflop", "GFLOP / step", "GFLOP", 1),
        ("ms", "s / step", "time", 1e-3),
        ("peak_gb", "peak GB", "peak", 1),
    ):
        for variant in VARIANTS:
            value = found[variant].get(key)
            out[f"{variant} {name}"] = (
                f"{value * scale:.3g}" if isinstance(value, float) else found[variant].get("skipped")
            )
        kept = ratio(trimmed, full, key)
        out[f"trimmed / full {short}"] = f"{kept:.2f}" if kept is not None else ""
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["M24", "M168", "M720", "S336", "S720"], choices=list(CELLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    preload("zoo.models.informer", "benchmarks.studies.cpu_allocator")
    print(
        f"{machine_description(args.threads)}; Informer (informer_base) training step, batch 32, "
        f"median of {args.steps} step(s) after a warm-up, each case in its own process\n"
    )
    rows = []
    for cell in args.cells:
        found = {
            name: run_isolated(run_case, cell, full, args.threads, args.steps, timeout_s=900, mem_cap_gb=16)
            for name, full in VARIANTS.items()
        }
        rows.append(row(cell, found))
        print(markdown_table(rows[-1:]) if len(rows) == 1 else markdown_table(rows[-1:]).splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
