"""Speed and memory, side by side: FFT long convolution vs attention, and every scan method.

    python -m benchmarks.layers_fftconv_scan [--quick] [--threads N] [--device cuda]

(a) `fftconv` (Hyena/H3's long convolution, D channels, kernel as long as the
sequence) against `F.scaled_dot_product_attention` (one causal head of the same
width D, no projections: the cheapest attention of that width), forward +
backward, for L = 1k ... 64k (to 1M on CUDA). Attention past the time or memory
cap is reported as skipped rather than waited for.
(b) every `linear_scan` method, and the complex scan run as a real one
(`complex_scan_as_real`, eager and, in the full CPU run, under torch.compile);
on CUDA also the fused Triton kernel (`method="triton"`).

Each case runs in its own process (`benchmarks._harness.run_isolated`), so its
peak memory is its own: resident size on CPU, torch.cuda.max_memory_allocated on
CUDA (the CUDA branch has not been run: no GPU was available when this was
written). Times are medians of forward+backward after a warm-up, as wall-clock
and as process CPU time (the latter is what to compare on a busy shared CPU,
with one thread per case, the default).
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F

from benchmarks import _harness as harness
from zoo.layers.fftconv import fftconv
from zoo.layers.scan import complex_scan_as_real, linear_scan

LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768, 65536]
CUDA_LENGTHS = [2**k for k in range(10, 21)]  # 1k ... 1M
SCAN_SIZES = [(32, 1024, 64), (1, 16384, 64), (4, 4096, 64)]  # (batch, length, complex states)
SCAN_VARIANTS = ["sequential", "loop", "chunked", "parallel", "as_real"]
harness.preload(__name__, "zoo.layers.fftconv", "zoo.layers.scan")


def _inputs_and_forward(spec: dict, device: torch.device):
    """The case's leaf tensors and a function computing its output from them."""
    gen = torch.Generator().manual_seed(0)
    batch, length, width = spec["batch"], spec["length"], spec["width"]
    if spec["kind"] == "fftconv":
        leaves = [
            torch.randn(batch, width, length, generator=gen),
            torch.randn(width, length, generator=gen) / length,
            torch.randn(width, generator=gen),
        ]
        forward = fftconv
    elif spec["kind"] == "attention":
        leaves = [torch.randn(batch, 1, length, width, generator=gen) for _ in range(3)]
        forward = partial(F.scaled_dot_product_attention, is_causal=True)
    else:
        decay = 0.5 + 0.5 * torch.rand(batch, length, width, generator=gen)
        a = torch.polar(decay, torch.rand(batch, length, width, generator=gen)) if spec["complex"] else decay
        b = torch.randn(batch, length, width, generator=gen, dtype=a.dtype)
        leaves = [a, b]
        if spec["method"] == "as_real":
            forward = partial(complex_scan_as_real, compile=spec.get("compile", False))
        else:
            forward = partial(linear_scan, method=spec["method"])
    leaves = [x.to(device).requires_grad_() for x in leaves]
    return leaves, forward


def _fwd_bwd(spec: dict, device: torch.device):
    leaves, forward = _inputs_and_forward(spec, device)
    out_grad = torch.randn_like(leaves[1] if spec["kind"] == "scan" else leaves[0]).detach()
    return lambda: torch.autograd.grad(forward(*leaves), leaves, out_grad)


def _case(spec: dict, budget_s: float) -> harness.Row:
    """Inside the case's process: warm up on a tiny size (lazy library loads), then measure."""
    device = torch.device(spec["device"])
    harness.pin_threads(spec.get("threads"))
    _fwd_bwd({**spec, "batch": 1, "length": 64}, device)()
    return harness.measure(_fwd_bwd(spec, device), spec["repeats"], device, budget_s=budget_s)


def run_case(
    spec: dict, timeout_s: float = 60.0, mem_cap_gb: float = 8.0, skip_larger: harness.SkipLarger | None = None
) -> harness.Row:
    """One case in a fresh process: {'ms', 'cpu_ms', 'first_ms', 'peak_mb', 'repeats'} or {'skipped': reason}."""
    run = skip_larger.run if skip_larger else harness.run_isolated
    return run(_case, spec, 0.6 * timeout_s, timeout_s=timeout_s, mem_cap_gb=mem_cap_gb)


def bench_fftconv_vs_attention(
    lengths=LENGTHS,
    width: int = 64,
    batch: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    repeats: int = 5,
    timeout_s: float = 60.0,
    mem_cap_gb: float = 8.0,
    attention_max_length: int | None = None,
) -> list[harness.Row]:
    """One row per length: fwd+bwd wall and CPU ms and peak MB of fftconv and of causal SDPA, and the time ratio."""
    rows, attention = [], harness.SkipLarger()
    key, label = ("cpu_ms", "cpu ms") if device == "cpu" else ("ms", "ms")  # CPU time is robust to the neighbours' load
    for length in lengths:
        spec = {
            "batch": batch,
            "length": length,
            "width": width,
            "device": device,
            "threads": threads,
            "repeats": repeats,
        }
        conv = run_case({**spec, "kind": "fftconv"}, timeout_s, mem_cap_gb)
        if attention_max_length and length > attention_max_length:
            attn = {"skipped": f"not run (L > {attention_max_length})"}
        else:
            attn = run_case({**spec, "kind": "attention"}, timeout_s, mem_cap_gb, attention)
        rows.append(
            {
                "L": length,
                "fftconv ms": harness.value_or_reason(conv),
                "fftconv cpu ms": conv.get("cpu_ms"),
                "fftconv MB": conv.get("peak_mb"),
                "attention ms": harness.value_or_reason(attn),
                "attention cpu ms": attn.get("cpu_ms"),
                "attention MB": attn.get("peak_mb"),
                f"attention / fftconv ({label})": harness.ratio(attn, conv, key),
            }
        )
    return rows


def bench_scans(
    sizes=SCAN_SIZES,
    variants=SCAN_VARIANTS,
    device: str = "cpu",
    threads: int | None = None,
    repeats: int = 5,
    timeout_s: float = 60.0,
    mem_cap_gb: float = 8.0,
    compile_real: bool = False,
) -> list[harness.Row]:
    """One row per (size, variant), complex64 states: fwd+bwd wall and CPU ms, peak MB, time relative to "loop"."""
    rows = []
    variants = list(variants) + (["as_real+compile"] if compile_real else []) + (["triton"] if device == "cuda" else [])
    key = "cpu_ms" if device == "cpu" else "ms"
    for batch, length, states in sizes:
        results = {}
        for variant in variants:
            compiled = variant.endswith("+compile")
            spec = {
                "kind": "scan",
                "method": variant.split("+")[0],
                "compile": compiled,
                "complex": True,
                "batch": batch,
                "length": length,
                "width": states,
                "device": device,
                "threads": threads,
                "repeats": repeats,
            }
            results[variant] = run_case(spec, timeout_s * (4 if compiled else 1), mem_cap_gb)
        for variant, res in results.items():
            rows.append(
                {
                    "B x L x S": f"{batch}x{length}x{states}",
                    "method": variant,
                    "ms": harness.value_or_reason(res),
                    "cpu ms": res.get("cpu_ms"),
                    "first call ms": res.get("first_ms"),
                    "peak MB": res.get("peak_mb"),
                    f"{key.replace('_', ' ')} / loop": harness.ratio(res, results.get("loop", {}), key),
                }
            )
    return rows


def sections(quick: bool, device: str = "cpu", threads: int | None = 1) -> list[harness.Section]:
    """The two tables; `quick` keeps to three lengths and one scan size (attention up to 16k)."""
    common = {"device": device, "threads": threads}
    if quick:
        conv_rows = bench_fftconv_vs_attention([1024, 4096, 16384], repeats=2, timeout_s=30, **common)
        scan_rows = bench_scans([(32, 1024, 64)], repeats=2, timeout_s=20, **common)
    else:
        lengths = CUDA_LENGTHS if device == "cuda" else LENGTHS
        conv_rows = bench_fftconv_vs_attention(lengths, timeout_s=150, **common)
        scan_rows = bench_scans(compile_real=device == "cpu", **common)
    return [
        ("fftconv vs attention (width 64, batch 1, causal), fwd+bwd", conv_rows),
        ("linear_scan methods (complex64 states), fwd+bwd", scan_rows),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per case; 0 for torch's default. Default 1: on a shared CPU, "
        "multi-threaded timings mostly measure the neighbours' load",
    )
    args = parser.parse_args(argv)
    threads = args.threads or None
    print(harness.machine_description(threads) + "\n")
    print(harness.format_sections(sections(args.quick, args.device, threads)))


if __name__ == "__main__":
    main()
