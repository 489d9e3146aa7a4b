"""ProbSparse vs full self-attention: time and peak memory from L=96 to 8192 (Informer, Zhou et al. 2021).

One attention layer (projections included) of Informer's size, d_model=512, 8 heads,
batch 1, encoder (bidirectional) self-attention, factor c=5, forward in eval mode:
- `probsparse`: zoo.layers.probsparse.ProbSparseAttention (u = c ceil(ln L) active queries),
- `canonical`: softmax(QK^T / sqrt(d)) V with the L x L scores materialised, as Informer's
  FullAttention and the paper's "canonical self-attention",
- `sdpa`: PyTorch's fused scaled_dot_product_attention (flash / memory-efficient kernels).
Each (method, L) runs in a fresh subprocess; memory is the growth of the process's peak RSS
over the forward passes on CPU (coarse: allocator-dependent, meaningful above a few MB;
`torch.cuda.max_memory_allocated` growth on GPU). Times are medians of 3 runs after a warm-up.

    python -m benchmarks.timeseries_probsparse [--quick] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import torch
from torch import nn

from benchmarks._harness import process_peak_rss_bytes
from zoo.layers.probsparse import (
    AttentionLayer,
    FullAttention,
    ProbSparseAttention,
    active_count,
)

LENGTHS = [96, 256, 512, 1024, 2048, 4096, 8192]
QUICK_LENGTHS = [96, 256, 512, 1024, 2048]


class CanonicalAttention(nn.Module):
    """The materialised softmax attention of the paper's comparison."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return scores.softmax(-1) @ v


def build(method: str) -> nn.Module:
    inner = {
        "probsparse": lambda: ProbSparseAttention(factor=5),
        "canonical": CanonicalAttention,
        "sdpa": FullAttention,
    }[method]()
    return AttentionLayer(inner, d_model=512, n_heads=8).eval()


def measure(method: str, length: int, device: str) -> dict:
    """One (method, L) point, run inside its own process."""
    torch.manual_seed(0)
    layer = build(method).to(device)
    x = torch.randn(1, length, 512, device=device)
    times = []
    with torch.no_grad():
        # The baseline is taken before the first forward: later calls reuse the pages it touched.
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = process_peak_rss_bytes()
        layer(x, x, x)  # warm-up
        for _ in range(3):
            start = time.perf_counter()
            layer(x, x, x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() if device == "cuda" else process_peak_rss_bytes()
    return {"method": method, "L": length, "ms": 1000 * sorted(times)[1], "peak_mb": max(peak - before, 0) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"lengths {QUICK_LENGTHS} only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "L"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.device)))
        return
    rows = {}
    for length in QUICK_LENGTHS if args.quick else LENGTHS:
        for method in ("probsparse", "canonical", "sdpa"):
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.timeseries_probsparse",
                "--threads",
                str(args.threads),
                "--device",
                args.device,
                "--one",
                method,
                str(length),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            rows[method, length] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
            print(
                method,
                length,
                rows[method, length] or done.stderr.strip().splitlines()[-1],
                file=sys.stderr,
                flush=True,
            )
    print(f"device: {args.device}, threads: {args.threads}, d_model 512, 8 heads, batch 1, factor 5, forward (eval)\n")
    print(
        "| L | u = 5 ceil(ln L) | ProbSparse ms | canonical ms | SDPA ms | ProbSparse MB | canonical MB | SDPA "
        "MB | canonical / ProbSparse time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for length in QUICK_LENGTHS if args.quick else LENGTHS:
        p, c, s = (rows[m, length] for m in ("probsparse", "canonical", "sdpa"))
        cell = lambda r, key: f"{r[key]:.1f}" if r else "failed"
        ratio = f"{c['ms'] / p['ms']:.1f}x" if p and c else "-"
        print(
            f"| {length} | {active_count(5, length)} | {cell(p, 'ms')} | {cell(c, 'ms')} | {cell(s, 'ms')} | "
            f"{cell(p, 'peak_mb')} | {cell(c, 'peak_mb')} | {cell(s, 'peak_mb')} | {ratio} |"
        )


if __name__ == "__main__":
    main()
