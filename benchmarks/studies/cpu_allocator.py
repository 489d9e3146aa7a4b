"""CPU training speed under three memory allocators: glibc's malloc, jemalloc, tcmalloc.

A training step of a large model allocates and frees tensors of hundreds of MB. glibc
serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and returns
it at free, so each step faults every page of its activations in again, and the kernel
zeroes them: system time. jemalloc and tcmalloc keep freed memory for reuse.

The workload is the Informer of the ETTh1 reproduction (`informer_base`, batch 32, 7
channels for M cells and 1 for S cells) at the paper's window lengths (the official
scripts' windows, `benchmarks.timeseries_ett.WINDOWS["ETTh1"]`), one training step being
forward, MSE, backward and Adam. Each (allocator, cell) runs in its own process started
with `LD_PRELOAD` (glibc: nothing preloaded), one warm-up step, then the mean of
`--steps` steps: wall seconds, user and system CPU seconds per step, and the process's
peak resident size (`ru_maxrss`, torch and the model included), to see whether keeping
freed blocks for reuse raises the peak.

    python -m benchmarks.studies.cpu_allocator [--threads 2] [--steps 2] [--cells M24 M336 M720 S24 S720]

Libraries are looked up under the usual Debian/Ubuntu paths (`apt install
libtcmalloc-minimal4 libjemalloc2`); a missing one is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks._harness import machine_description, pin_threads, process_peak_rss_bytes
from benchmarks.timeseries_ett import WINDOWS

#: cell name ("M24", "S720") -> (channels, seq_len, label_len, horizon, ProbSparse factor)
CELLS = {
    f"{features}{horizon}": (7 if features == "M" else 1, seq_len, label_len, horizon, factor)
    for features, windows in WINDOWS["ETTh1"].items()
    for horizon, (seq_len, label_len, factor) in windows.items()
}
LIBRARIES = {
    "glibc": None,
    "jemalloc": ["libjemalloc.so.2"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
}
LIBRARY_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]


def find_library(names: list[str]) -> str | None:
    return next((str(Path(d) / n) for n in names for d in LIBRARY_DIRS if (Path(d) / n).is_file()), None)


def informer_training_step(cell: str, full_decoder: bool = False) -> Callable[[], None]:
    """One training step (forward, MSE, backward, Adam) of `informer_base` at `cell`'s windows, batch 32.

    full_decoder: the official order, every decoder step through the last layer and then
    the last `pred_len` kept, instead of `Informer.forecast`'s trimmed last layer.
    """
    from zoo import create_model

    channels, seq_len, label_len, horizon, factor = CELLS[cell]
    torch.manual_seed(0)
    model = create_model(
        "informer_base",
        in_features=channels,
        num_classes=channels,
        label_len=label_len,
        pred_len=horizon,
        freq="h",
        factor=factor,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch, decoder = 32, label_len + horizon
    x, x_mark = torch.randn(batch, seq_len, channels), torch.rand(batch, seq_len, 4) - 0.5
    dec, dec_mark = torch.randn(batch, decoder, channels), torch.rand(batch, decoder, 4) - 0.5
    target = torch.randn(batch, horizon, channels)

    def forecast() -> torch.Tensor:
        if full_decoder:
            return model.forward_head(model.decode(dec, dec_mark, model.encode(x, x_mark)))[:, -horizon:]
        return model.forecast(x, x_mark, dec, dec_mark)

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(forecast(), target).backward()
        optimizer.step()

    return step


def step_seconds(cell: str, steps: int) -> dict:
    """Inside the child: time `steps` Informer training steps after one warm-up step."""
    step = informer_training_step(cell)
    step()
    wall, cpu = time.perf_counter(), os.times()
    for _ in range(steps):
        step()
    done = os.times()
    return {
        "s": (time.perf_counter() - wall) / steps,
        "user": (done.user - cpu.user) / steps,
        "sys": (done.system - cpu.system) / steps,
        "peak_gb": process_peak_rss_bytes() / 2**30,
    }


def run_case(allocator: str, cell: str, threads: int, steps: int) -> dict | str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("LD_PRELOAD", None)
    if LIBRARIES[allocator]:
        library = find_library(LIBRARIES[allocator])
        if library is None:
            return "not installed"
        env["LD_PRELOAD"] = library
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.studies.cpu_allocator",
        "--one",
        cell,
        "--threads",
        str(threads),
        "--steps",
        str(steps),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["M24", "M336", "M720", "S24", "S720"], choices=list(CELLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--one", choices=list(CELLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin_threads(args.threads)
    if args.one:
        print(json.dumps(step_seconds(args.one, args.steps)))
        return
    print(
        f"{machine_description(args.threads)}; Informer (informer_base) training step, batch 32, mean of "
        f"{args.steps} after a warm-up\n"
    )
    print(
        "| cell (seq_len + decoder) | "
        + " | ".join(f"{a} s/step (user + sys s), peak GB" for a in LIBRARIES)
        + " | glibc / tcmalloc |"
    )
    print("|---|" + "---|" * (len(LIBRARIES) + 1))
    for cell in args.cells:
        _, seq_len, label_len, horizon, _ = CELLS[cell]
        found = {a: run_case(a, cell, args.threads, args.steps) for a in LIBRARIES}
        text = {
            a: r if isinstance(r, str) else f"{r['s']:.1f} ({r['user']:.1f} + {r['sys']:.1f}), {r['peak_gb']:.1f}"
            for a, r in found.items()
        }
        both = [found[a] for a in ("glibc", "tcmalloc")]
        speedup = f"{both[0]['s'] / both[1]['s']:.1f}x" if all(isinstance(r, dict) for r in both) else "-"
        print(
            f"| {cell} ({seq_len} + {label_len + horizon}) | " + " | ".join(text.values()) + f" | {speedup} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
