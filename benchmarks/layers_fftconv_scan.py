"""Speed and memory, side by side: FFT long convolution vs attention, and every scan method.

    python -m benchmarks.layers_fftconv_scan [--quick] [--threads N] [--device cuda]

(a) `fftconv` (Hyena/H3's long convolution, D channels, kernel as long as the
sequence) against `F.scaled_dot_product_attention` (one causal head of the same
width D, no projections: the cheapest attention of that width), forward +
backward, for L = 1k ... 64k. Attention past the time or memory cap is reported
as skipped rather than waited for.
(b) every `linear_scan` method, and the complex scan run as a real one
(`complex_scan_as_real`, eager and, in the full run, under torch.compile).

Each case runs in its own process, forked from a server that has already
imported torch, so its peak resident memory (ru_maxrss) above its resident size
when the case starts is that case's memory; on CUDA it is
torch.cuda.max_memory_allocated (the CUDA branch has not been run: no GPU was
available when this was written). Times are medians of forward+backward after a
warm-up, as wall-clock and as process CPU time (the latter is what to compare
on a busy shared CPU, with one thread per case, the default). Nothing asserts a
time: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import resource
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

from zoo.layers.fftconv import fftconv
from zoo.layers.scan import complex_scan_as_real, linear_scan

LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768, 65536]
SCAN_SIZES = [(32, 1024, 64), (1, 16384, 64), (4, 4096, 64)]  # (batch, length, complex states)
SCAN_VARIANTS = ["sequential", "loop", "chunked", "parallel", "as_real"]


# ---------------------------------------------------------------- inside the case's process


def _inputs_and_forward(spec: dict, device: torch.device):
    """The case's leaf tensors and a function computing its output from them."""
    gen = torch.Generator().manual_seed(0)
    batch, length, width = spec["batch"], spec["length"], spec["width"]
    if spec["kind"] == "fftconv":
        leaves = [torch.randn(batch, width, length, generator=gen), torch.randn(width, length, generator=gen) / length, torch.randn(width, generator=gen)]
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


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _run_case(spec: dict, budget_s: float, results) -> None:
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def fwd_bwd(leaves, forward, out_grad) -> tuple[float, float]:
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        torch.autograd.grad(forward(*leaves), leaves, out_grad)
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu

    def prepared(case: dict):
        leaves, forward = _inputs_and_forward(case, device)
        return leaves, forward, torch.randn_like(leaves[1] if case["kind"] == "scan" else leaves[0]).detach()

    fwd_bwd(*prepared({**spec, "batch": 1, "length": 64}))  # load lazily initialised libraries first
    case = prepared(spec)
    rss_before = _current_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        cuda_before = torch.cuda.memory_allocated(device)
    first, _ = fwd_bwd(*case)
    repeats = max(1, min(spec["repeats"], int((budget_s - first) / max(first, 1e-6))))
    wall, cpu = zip(*(fwd_bwd(*case) for _ in range(repeats)))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - cuda_before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    results.put({"ms": 1e3 * statistics.median(wall), "cpu_ms": 1e3 * statistics.median(cpu), "first_ms": 1e3 * first,
                 "peak_mb": max(peak, 0) / 2**20, "repeats": repeats})


# ---------------------------------------------------------------- orchestration


def _context() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def run_case(spec: dict, timeout_s: float = 60.0, mem_cap_gb: float = 8.0) -> dict:
    """Run one case in a fresh process; {'ms', 'peak_mb', ...} or {'skipped': reason}."""
    ctx = _context()
    results = ctx.Queue()
    proc = ctx.Process(target=_run_case, args=(spec, 0.6 * timeout_s, results))
    proc.start()
    start, reason = time.monotonic(), None
    while proc.is_alive() and reason is None:
        proc.join(0.2)
        try:
            with open(f"/proc/{proc.pid}/statm") as statm:
                rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            rss = 0
        if time.monotonic() - start > timeout_s:
            reason = f"skipped: >{timeout_s:g} s"
        elif rss > mem_cap_gb * 2**30:
            reason = f"skipped: >{mem_cap_gb:g} GB"
    if reason:
        proc.kill()
        proc.join()
        return {"skipped": reason}
    try:
        return results.get(timeout=5)
    except queue.Empty:
        return {"skipped": f"failed (exit code {proc.exitcode})"}


def bench_fftconv_vs_attention(lengths=LENGTHS, width: int = 64, batch: int = 1, device: str = "cpu", threads: int | None = None,
                               repeats: int = 5, timeout_s: float = 60.0, mem_cap_gb: float = 8.0,
                               attention_max_length: int | None = None) -> list[dict]:
    """One row per length: fwd+bwd wall and CPU ms and peak MB of fftconv and of causal SDPA, and the time ratio."""
    rows, attention_capped = [], None
    key, label = ("cpu_ms", "cpu ms") if device == "cpu" else ("ms", "ms")  # CPU time is robust to the neighbours' load
    for length in lengths:
        spec = {"batch": batch, "length": length, "width": width, "device": device, "threads": threads, "repeats": repeats}
        conv = run_case({**spec, "kind": "fftconv"}, timeout_s, mem_cap_gb)
        if attention_capped:  # a longer sequence than one that hit the cap: do not wait again
            attn = {"skipped": attention_capped}
        elif attention_max_length and length > attention_max_length:
            attn = {"skipped": f"not run (L > {attention_max_length})"}
        else:
            attn = run_case({**spec, "kind": "attention"}, timeout_s, mem_cap_gb)
            attention_capped = attn.get("skipped")
        rows.append({
            "L": length,
            "fftconv ms": conv.get("ms", conv.get("skipped")),
            "fftconv cpu ms": conv.get("cpu_ms"),
            "fftconv MB": conv.get("peak_mb"),
            "attention ms": attn.get("ms", attn.get("skipped")),
            "attention cpu ms": attn.get("cpu_ms"),
            "attention MB": attn.get("peak_mb"),
            f"attention / fftconv ({label})": attn[key] / conv[key] if key in attn and key in conv else None,
        })
    return rows


def bench_scans(sizes=SCAN_SIZES, variants=SCAN_VARIANTS, device: str = "cpu", threads: int | None = None, repeats: int = 5,
                timeout_s: float = 60.0, mem_cap_gb: float = 8.0, compile_real: bool = False) -> list[dict]:
    """One row per (size, variant), complex64 states: fwd+bwd wall and CPU ms, peak MB, time relative to "loop"."""
    rows = []
    variants = list(variants) + (["as_real+compile"] if compile_real else [])
    for batch, length, states in sizes:
        size_rows = []
        for variant in variants:
            compiled = variant.endswith("+compile")
            spec = {"kind": "scan", "method": variant.split("+")[0], "compile": compiled, "complex": True, "batch": batch,
                    "length": length, "width": states, "device": device, "threads": threads, "repeats": repeats}
            res = run_case(spec, timeout_s * (4 if compiled else 1), mem_cap_gb)
            size_rows.append({"B x L x S": f"{batch}x{length}x{states}", "method": variant,
                              "ms": res.get("ms", res.get("skipped")), "cpu ms": res.get("cpu_ms"),
                              "first call ms": res.get("first_ms"), "peak MB": res.get("peak_mb")})
        key = "cpu ms" if device == "cpu" else "ms"
        loop_ms = next((r[key] for r in size_rows if r["method"] == "loop"), None)
        for row in size_rows:
            both = isinstance(row[key], float) and isinstance(loop_ms, float)
            row[f"{key} / loop"] = row[key] / loop_ms if both else None
        rows += size_rows
    return rows


def markdown_table(rows: list[dict]) -> str:
    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3g}" if value < 100 else f"{value:.0f}"
        return str(value)

    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats; finishes in under 2 minutes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per case; 0 for torch's default. Default 1: on a shared CPU, "
                             "multi-threaded timings mostly measure the neighbours' load")
    args = parser.parse_args(argv)
    common = {"device": args.device, "threads": args.threads or None}
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {args.device}, {threads} thread(s) of {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; fwd+bwd medians (wall and process CPU time); shared machine, noisy\n")
    if args.quick:
        conv_rows = bench_fftconv_vs_attention([1024, 4096, 16384], repeats=2, timeout_s=20, attention_max_length=4096, **common)
        scan_rows = bench_scans([(32, 1024, 64)], repeats=2, timeout_s=20, **common)
    else:
        conv_rows = bench_fftconv_vs_attention(timeout_s=150, **common)
        scan_rows = bench_scans(compile_real=args.device == "cpu", **common)
    print("## fftconv vs attention (width 64, batch 1, causal)\n\n" + markdown_table(conv_rows) + "\n")
    print("## linear_scan methods (complex64 states)\n\n" + markdown_table(scan_rows))


if __name__ == "__main__":
    main()
