"""S5 (Smith et al., ICLR 2023) training-step time against torch.nn.LSTM / GRU, and S5 scan methods.

    python -m benchmarks.layers_s5 [--quick] [--threads N] [--section headline|layer|scan]

On a busy shared machine two OpenMP threads fight other processes for the cores
(torch's GRU step then takes minutes); `--threads 1` gives stable numbers there.

(a) One layer of the same width: an S5 block (state_dim = width, so width/2
complex states) against a one-layer LSTM and GRU, L = 1024, batch 8.
(b) The headline: popjaxrl's S5 policy core (`s5_rl`: 4 layers, d_model 256,
ssm_size 256, full GLU) against 4-layer GRU/LSTM of width 256, 1024 steps x 8
sequences, run several times to show the noise of a shared CPU.
(c) Every `linear_scan` method on the S5 shapes (8 x 1024 x 128 complex states),
with and without resets, plus `complex_scan_as_real` (the complex scan on
(real, imag) pairs), and the `s5_rl` step under each method.

A training step is forward + MSE loss + backward + Adam. Times are medians after
a warm-up step, in milliseconds: `ms` is wall time, `cpu ms` the process's CPU
time over all its threads (on a busy shared machine the wall time also counts
waiting for a core), `saved MB` the tensors autograd keeps for backward.
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from zoo import create_model
from zoo.layers.scan import complex_scan_as_real, linear_scan
from zoo.layers.ssm import S5Block

LENGTH, BATCH = 1024, 8


def median_ms(fn: Callable[[], object], repeats: int) -> dict:
    """Median wall time and median process CPU time (all threads) of `fn`, after a warm-up call.

    On a shared machine the wall time includes waiting for a core; the CPU time
    does not, so with one thread it estimates the time on an idle core.
    """
    fn()  # warm-up: allocator, lazy inits
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"ms": round(1000 * statistics.median(wall), 1), "cpu ms": round(1000 * statistics.median(cpu), 1)}


def saved_for_backward_mb(model: nn.Module, x: torch.Tensor) -> float:
    """Memory autograd keeps between forward and backward (distinct storages), in MB.

    Deterministic, unlike resident-memory peaks on a shared machine; it is the
    activation memory that grows with batch x length.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return round(sum(storages.values()) / 2**20, 1)


class _RNN(nn.Module):
    """torch.nn.LSTM / GRU returning only the output sequence."""

    def __init__(self, kind: str, width: int, depth: int):
        super().__init__()
        self.rnn = getattr(nn, kind)(width, width, num_layers=depth, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, bf16: bool = False) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = nn.functional.mse_loss(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _row(
    section: str, model_name: str, model: nn.Module, width: int, repeats: int, bf16: bool = False, **extra
) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, LENGTH, width, generator=gen)
    target = torch.randn(BATCH, LENGTH, width, generator=gen)
    times = median_ms(train_step(model, x, target, bf16), repeats)
    params = sum(p.numel() for p in model.parameters())
    memory = {} if bf16 else {"saved MB": saved_for_backward_mb(model, x)}
    return {
        "section": section,
        "model": model_name,
        "width": width,
        "L x B": f"{LENGTH} x {BATCH}",
        "params": params,
        **extra,
        **times,
        **memory,
    }


def layer_rows(widths: list[int], repeats: int) -> list[dict]:
    """(a) one layer: S5 block vs LSTM vs GRU at each width."""
    rows = []
    for width in widths:
        torch.manual_seed(0)
        rows.append(_row("layer", "S5 block", S5Block(width, width), width, repeats))
        for kind in ("LSTM", "GRU"):
            rows.append(_row("layer", kind, _RNN(kind, width, 1), width, repeats))
    return rows


def headline_rows(runs: int, repeats: int) -> list[dict]:
    """(b) s5_rl vs 4-layer GRU/LSTM of width 256, each measured `runs` times (interleaved)."""
    torch.manual_seed(0)
    models = {
        "s5_rl (4 x 256)": create_model("s5_rl", in_features=256),
        "GRU (4 x 256)": _RNN("GRU", 256, 4),
        "LSTM (4 x 256)": _RNN("LSTM", 256, 4),
    }
    rows = []
    for run in range(runs):
        for name, model in models.items():
            rows.append(_row("4 layers", name, model, 256, repeats, run=run + 1))
    # Not the headline: the same step with matrix products in bfloat16 (the scan stays complex64).
    rows.append(_row("4 layers", "s5_rl, bf16 autocast", models["s5_rl (4 x 256)"], 256, repeats, bf16=True, run=1))
    return rows


def scan_rows(repeats: int, methods: list[str]) -> list[dict]:
    """(c) each scan method on S5's shapes, forward + backward, then inside the s5_rl training step."""
    gen = torch.Generator().manual_seed(0)
    states = 128
    a = torch.polar(0.9 + 0.09 * torch.rand(states, generator=gen), torch.rand(states, generator=gen)).view(
        1, 1, states
    )
    b = torch.randn(BATCH, LENGTH, states, dtype=torch.complex64, generator=gen)
    grad = torch.randn_like(b)
    resets = torch.rand(BATCH, LENGTH, generator=gen) < 0.01
    rows = []
    for reset in (None, resets):
        for method in [*methods, "as_real"]:
            a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()

            def scan() -> None:
                h = (
                    complex_scan_as_real(a_, b_, reset=reset)
                    if method == "as_real"
                    else linear_scan(a_, b_, reset=reset, method=method)
                )
                torch.autograd.backward(h, grad)

            rows.append(
                {
                    "section": "scan fwd+bwd",
                    "model": "complex_scan_as_real" if method == "as_real" else method,
                    "width": f"{states} complex",
                    "L x B": f"{LENGTH} x {BATCH}",
                    "resets": reset is not None,
                    **median_ms(scan, repeats),
                }
            )
    for method in methods:
        torch.manual_seed(0)
        model = create_model("s5_rl", in_features=256, scan_method=method)
        rows.append(_row("s5_rl by scan", f"s5_rl scan={method}", model, 256, repeats))
    return rows


def to_markdown(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two widths, fewer repeats (< 2 min on 2 cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--section", choices=["all", "headline", "layer", "scan"], default="all")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else 5
    widths = [64, 256] if args.quick else [64, 128, 256, 512]
    methods = ["loop", "chunked"] if args.quick else ["loop", "chunked", "parallel"]
    print(f"CPU, {torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} at start\n")
    if args.section in ("all", "headline"):
        print("## (b) headline: 4 layers x 256, training step\n")
        print(to_markdown(headline_rows(runs=2 if args.quick else 3, repeats=repeats)))
    if args.section in ("all", "layer"):
        print("\n## (a) one layer, training step\n")
        print(to_markdown(layer_rows(widths, repeats)))
    if args.section in ("all", "scan"):
        print("\n## (c) scan methods on S5 shapes\n")
        print(to_markdown(scan_rows(repeats, methods)))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
