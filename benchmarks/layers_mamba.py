"""Mamba block (Gu & Dao 2023) forward+backward time and peak memory, side by side.

CPU: our chunked selective scan (only chunk-start states kept) against the naive
one that materialises every state (B, L, d_inner, d_state) and lets autograd
keep them, at L = 1k, 4k, 16k. Wall time and process CPU time are both shown:
on a shared machine the CPU time is the steadier of the two. Peak memory is
measured in a fresh subprocess per configuration (VmHWM, reset after a warm-up
step, above the resident size before the measured step), so that the peak
belongs to that configuration alone.

GPU: mamba-ssm's fused kernels against our pure-PyTorch path, when CUDA and
mamba-ssm are present; otherwise the section says it was skipped.

    python -m benchmarks.layers_mamba [--quick] [--d-model 128] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from unittest import mock

import torch

from zoo.layers import mamba as mamba_layer
from zoo.layers.scan import linear_scan

IMPLS = ("chunked", "naive")


def naive_selective_scan(u, delta, A, B, C, D=None, z=None, reset=None, **_):
    """Every state materialised; autograd keeps decay, drive and states for backward."""
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    decay = torch.exp(delta.unsqueeze(-1) * A)
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)
    y = torch.einsum("bldn,bln->bld", linear_scan(decay, drive, reset=reset), C) + u * D.float()
    return y * torch.nn.functional.silu(z.float())


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _reset_peak_resident() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so the warm-up's one-time allocations do not count.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _fwd_bwd(impl: str, length: int, d_model: int, batch: int):
    """A closure running one forward+backward of a Mamba block with the chosen scan."""
    torch.manual_seed(0)
    block = mamba_layer.Mamba(d_model)
    hidden = torch.randn(batch, length, d_model, requires_grad=True)
    scan = naive_selective_scan if impl == "naive" else mamba_layer.selective_scan

    def run() -> None:
        with mock.patch.object(mamba_layer, "selective_scan", scan):
            block(hidden).square().mean().backward()
        block.zero_grad(set_to_none=True)
        hidden.grad = None

    return run


def time_cpu(impl: str, length: int, d_model: int, batch: int, repeats: int) -> dict:
    """Median wall and process-CPU time of fwd+bwd after one warm-up step."""
    run = _fwd_bwd(impl, length, d_model, batch)
    run()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"device": "cpu", "impl": impl, "L": length, "d_model": d_model, "batch": batch,
            "fwd+bwd ms": round(1000 * statistics.median(walls), 1), "cpu-time ms": round(1000 * statistics.median(cpus), 1)}


def peak_cpu_mb(impl: str, length: int, d_model: int, batch: int) -> float:
    """Peak resident memory of one fwd+bwd above the resident size before it, in a fresh subprocess.

    A fixed mmap threshold returns every large free to the OS at once, so RSS follows the
    live tensors (it also adds page faults to every allocation, hence the separate timing).
    """
    cmd = [sys.executable, "-m", "benchmarks.layers_mamba", "--peak", impl, str(length), str(d_model), str(batch)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.split()[-1])


def _peak_here(impl: str, length: int, d_model: int, batch: int) -> float:
    run = _fwd_bwd(impl, length, d_model, batch)
    run()  # the warm-up's one-time allocations do not count
    _reset_peak_resident()
    before = _status_bytes("VmRSS")
    run()
    return round(max(_status_bytes("VmHWM") - before, 0) / 2**20, 1)


def cpu_rows(lengths, d_model: int, batch: int, repeats: int, naive_max: int) -> list[dict]:
    rows = []
    for length in lengths:
        for impl in IMPLS:
            if impl == "naive" and length > naive_max:
                continue
            row = time_cpu(impl, length, d_model, batch, repeats)
            rows.append({**row, "peak MB": peak_cpu_mb(impl, length, d_model, batch)})
    return rows


def _cuda_time(fn, repeats: int) -> tuple[float, float]:
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeats, (torch.cuda.max_memory_allocated() - base) / 2**20


def gpu_rows(lengths, d_model: int, batch: int, repeats: int) -> list[dict] | str:
    """mamba-ssm kernels vs the pure path on CUDA, or the reason it was skipped."""
    if not torch.cuda.is_available():
        return "skipped: no CUDA"
    if not mamba_layer.has_mamba_kernels():
        return "skipped: CUDA present but mamba-ssm / causal-conv1d kernels are not installed"
    rows = []
    for length in lengths:
        hidden = torch.randn(batch, length, d_model, device="cuda", requires_grad=True)
        for impl, use_kernels in (("mamba-ssm", True), ("pure", False)):
            torch.manual_seed(0)
            block = mamba_layer.Mamba(d_model, use_kernels=use_kernels).cuda()
            ms, mb = _cuda_time(lambda: block(hidden).square().mean().backward(), repeats)
            rows.append({"device": torch.cuda.get_device_name(), "impl": impl, "L": length, "d_model": d_model,
                         "batch": batch, "fwd+bwd ms": round(ms, 2), "peak MB": round(mb, 1)})
    return rows


def to_markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed repeat, naive path up to 4k")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--peak", nargs=4, metavar=("IMPL", "L", "D_MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak:
        impl, *numbers = args.peak
        print(_peak_here(impl, *map(int, numbers)))
        return
    lengths = (1024, 4096, 16384)
    repeats = 1 if args.quick else 3
    print(f"## Mamba block fwd+bwd, CPU ({torch.get_num_threads()} threads), d_model={args.d_model}, batch={args.batch}\n")
    print(to_markdown(cpu_rows(lengths, args.d_model, args.batch, repeats, naive_max=4096 if args.quick else 16384)))
    print("\n## GPU: mamba-ssm kernels vs pure PyTorch\n")
    gpu = gpu_rows(lengths, max(args.d_model, 256), max(args.batch, 4), 10)
    print(gpu if isinstance(gpu, str) else to_markdown(gpu))


if __name__ == "__main__":
    main()
