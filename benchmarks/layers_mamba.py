"""Mamba block (Gu & Dao 2023) forward+backward time and peak memory, side by side.

CPU: our chunked selective scan (only chunk-start states kept) against the naive
one that materialises every state (B, L, d_inner, d_state) and lets autograd
keep them, at L = 1k, 4k, 16k. Wall time and process CPU time are both shown:
on a shared machine the CPU time is the steadier of the two. Each measurement
runs in a fresh process (`benchmarks._harness.run_isolated`): the times in one,
the peak memory in another, where a fixed glibc mmap threshold makes the
resident size follow the live tensors (it adds page faults, hence the separate
timing); the peak is that of one step after a warm-up step, above the resident
size before it.

GPU: mamba-ssm's fused kernels against our pure-PyTorch path, when CUDA and
mamba-ssm are present; otherwise a row says why it was skipped.

    python -m benchmarks.layers_mamba [--quick] [--d-model 64] [--batch 1] [--threads 1]
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch

from benchmarks import _harness as harness
from zoo.layers import mamba as mamba_layer
from zoo.layers.scan import linear_scan

IMPLS = ("chunked", "naive")
LENGTHS = (1024, 4096, 16384)
harness.preload(__name__, "zoo.layers.mamba")


def naive_selective_scan(u, delta, A, B, C, D=None, z=None, reset=None, **_):
    """Every state materialised; autograd keeps decay, drive and states for backward."""
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    decay = torch.exp(delta.unsqueeze(-1) * A)
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)
    y = torch.einsum("bldn,bln->bld", linear_scan(decay, drive, reset=reset), C) + u * D.float()
    return y * torch.nn.functional.silu(z.float())


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


def _time_case(impl: str, length: int, d_model: int, batch: int, repeats: int, threads: int | None) -> harness.Row:
    harness.pin_threads(threads)
    return harness.time_calls(_fwd_bwd(impl, length, d_model, batch), repeats)


def _peak_case(impl: str, length: int, d_model: int, batch: int, threads: int | None) -> harness.Row:
    harness.pin_threads(threads)
    harness.fix_mmap_threshold()
    run = _fwd_bwd(impl, length, d_model, batch)
    run()  # the warm-up's one-time allocations do not count
    _, peak = harness.peak_rss_mb(run)
    return {"peak_mb": peak}


def cpu_rows(
    lengths, d_model: int, batch: int, repeats: int, naive_max: int, threads: int | None = 1, timeout_s: float = 300.0
) -> list[harness.Row]:
    """One row per length: chunked and naive fwd+bwd ms, CPU ms and peak MB, and naive / chunked ratios."""
    rows = []
    for length in lengths:
        res = {}
        for impl in IMPLS:
            if impl == "naive" and length > naive_max:
                res[impl] = {"skipped": f"not run (L > {naive_max})"}
                continue
            timing = harness.run_isolated(
                _time_case, impl, length, d_model, batch, repeats, threads, timeout_s=timeout_s
            )
            if "skipped" not in timing:
                timing.update(
                    harness.run_isolated(_peak_case, impl, length, d_model, batch, threads, timeout_s=timeout_s)
                )
            res[impl] = timing
        chunked, naive = res["chunked"], res["naive"]
        rows.append(
            {
                "L": length,
                "d_model": d_model,
                "batch": batch,
                "chunked ms": harness.value_or_reason(chunked),
                "chunked cpu ms": chunked.get("cpu_ms"),
                "chunked MB": chunked.get("peak_mb"),
                "naive ms": harness.value_or_reason(naive),
                "naive cpu ms": naive.get("cpu_ms"),
                "naive MB": naive.get("peak_mb"),
                "naive / chunked cpu ms": harness.ratio(naive, chunked, "cpu_ms"),
                "naive / chunked MB": harness.ratio(naive, chunked, "peak_mb"),
            }
        )
    return rows


def gpu_rows(lengths, d_model: int, batch: int, repeats: int) -> list[harness.Row]:
    """mamba-ssm kernels vs the pure path on CUDA, or one row saying why not."""
    if not torch.cuda.is_available():
        return [{"impl": "mamba-ssm vs pure PyTorch", "result": "skipped: no CUDA"}]
    if not mamba_layer.has_mamba_kernels():
        return [
            {"impl": "mamba-ssm vs pure PyTorch", "result": "skipped: mamba-ssm / causal-conv1d kernels not installed"}
        ]
    rows = []
    for length in lengths:
        hidden = torch.randn(batch, length, d_model, device="cuda", requires_grad=True)
        res = {}
        for impl, use_kernels in (("mamba-ssm", True), ("pure", False)):
            torch.manual_seed(0)
            block = mamba_layer.Mamba(d_model, use_kernels=use_kernels).cuda()
            res[impl] = harness.measure(lambda: block(hidden).square().mean().backward(), repeats, "cuda")
        rows.append(
            {
                "device": torch.cuda.get_device_name(),
                "L": length,
                "d_model": d_model,
                "batch": batch,
                "mamba-ssm ms": res["mamba-ssm"]["ms"],
                "mamba-ssm MB": res["mamba-ssm"]["peak_mb"],
                "pure ms": res["pure"]["ms"],
                "pure MB": res["pure"]["peak_mb"],
                "pure / mamba-ssm ms": harness.ratio(res["pure"], res["mamba-ssm"], "ms"),
            }
        )
    return rows


def sections(quick: bool, d_model: int = 64, batch: int = 1, threads: int | None = 1) -> list[harness.Section]:
    """`quick`: one timed repeat, naive path up to 4k."""
    repeats = 1 if quick else 3
    cpu = cpu_rows(LENGTHS, d_model, batch, repeats, naive_max=4096 if quick else 16384, threads=threads)
    gpu = gpu_rows(LENGTHS, max(d_model, 256), max(batch, 4), 10)
    return [
        ("Mamba block fwd+bwd, CPU: chunked vs naive selective scan", cpu),
        ("Mamba block fwd+bwd, GPU: mamba-ssm kernels vs pure PyTorch", gpu),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed repeat, naive path up to 4k")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case, 0 for torch's default")
    args = parser.parse_args(argv)
    threads = args.threads or None
    print(harness.machine_description(threads) + "\n")
    print(harness.format_sections(sections(args.quick, args.d_model, args.batch, threads)))


if __name__ == "__main__":
    main()
