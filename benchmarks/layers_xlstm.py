"""Speed and memory of the xLSTM layers, side by side with the official `xlstm` package.

    python -m benchmarks.layers_xlstm [--quick] [--threads N]

(a) mLSTM layer, forward + backward: ours (`zoo.layers.xlstm_mlstm.mLSTMLayer`, chunkwise,
linear in L) against the package's `mLSTMLayer` (its parallel backend, quadratic in L),
same width and weights layout, L = 512 ... 4096 (8192 in the full run). The package is
stopped past a time or memory cap and reported as skipped.
(b) sLSTM layer, forward + backward: ours (sequential loop, hand-written backward) and,
in the full run and where it finishes within the cap, the package's CPU ("vanilla") backend.

Each case runs in its own process (forkserver), so its peak resident memory above the
resident size at the start of the case is that case's memory. Times are medians of
forward+backward after a warm-up. Nothing asserts a time: on a shared CPU the numbers are noisy.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time

import torch

WIDTH, HEADS, BATCH = 128, 4, 1


def _layer(kind: str, length: int) -> torch.nn.Module:
    if kind == "ours mLSTM":
        from zoo.layers.xlstm_mlstm import mLSTMLayer

        return mLSTMLayer(WIDTH, num_heads=HEADS)
    if kind == "ours sLSTM":
        from zoo.layers.xlstm_slstm import sLSTMLayer

        return sLSTMLayer(WIDTH, num_heads=HEADS)
    if kind == "xlstm mLSTM":
        from xlstm import mLSTMLayer, mLSTMLayerConfig

        return mLSTMLayer(mLSTMLayerConfig(embedding_dim=WIDTH, num_heads=HEADS, context_length=length))
    from xlstm import sLSTMLayer, sLSTMLayerConfig

    layer = sLSTMLayer(sLSTMLayerConfig(embedding_dim=WIDTH, num_heads=HEADS, backend="vanilla"))
    layer.reset_parameters()
    return layer


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _run_case(kind: str, length: int, threads: int | None, repeats: int, cap_s: float, results) -> None:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)

    def fwd_bwd(layer, x) -> float:
        start = time.perf_counter()
        layer(x).square().mean().backward()
        return time.perf_counter() - start

    fwd_bwd(_layer(kind, 64), torch.randn(BATCH, 64, WIDTH, requires_grad=True))  # load libraries first
    layer, x = _layer(kind, length), torch.randn(BATCH, length, WIDTH, requires_grad=True)
    before = _rss_bytes()
    times = [fwd_bwd(layer, x)]
    if times[0] > cap_s:
        results.put({"skipped": f"skipped: {times[0]:.0f} s > {cap_s:g} s"})
        return
    times += [fwd_bwd(layer, x) for _ in range(repeats - 1)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    results.put({"ms": 1e3 * statistics.median(times), "MB": max(peak, 0) / 2**20})


def run_case(kind: str, length: int, threads: int | None, repeats: int, cap_s: float, mem_cap_gb: float) -> dict:
    """Fwd+bwd of one layer at one length in a fresh process: {'ms', 'MB'} or {'skipped': why}.

    Skipped when one fwd+bwd takes longer than `cap_s` or the process outgrows `mem_cap_gb`.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "zoo.layers.xlstm_mlstm", "zoo.layers.xlstm_slstm", "xlstm"])  # import once
    results = ctx.Queue()
    proc = ctx.Process(target=_run_case, args=(kind, length, threads, repeats, cap_s, results))
    proc.start()
    timeout_s = 30.0 + cap_s * (repeats + 1)  # process start and warm-up, then the repeats
    start, reason = time.monotonic(), None
    while proc.is_alive() and reason is None:
        proc.join(0.1)
        try:
            with open(f"/proc/{proc.pid}/statm") as statm:
                rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            rss = 0
        if time.monotonic() - start > timeout_s:
            reason = f"skipped: >{cap_s:g} s"
        elif rss > mem_cap_gb * 2**30:
            reason = f"skipped: >{mem_cap_gb:g} GB"
    if reason:
        proc.kill()
        proc.join()
        return {"skipped": reason}
    if proc.exitcode != 0 or results.empty():
        return {"skipped": f"failed (exit code {proc.exitcode})"}
    return results.get()


def compare(ours: str, theirs: str | None, lengths: list[int], threads: int | None, repeats: int, cap_s: float,
            mem_cap_gb: float) -> list[dict]:
    """One row per length: our and (unless `theirs` is None) the package's fwd+bwd ms and peak MB, and the time ratio."""
    rows, capped = [], None if theirs else "not run"
    for length in lengths:
        mine = run_case(ours, length, threads, repeats, cap_s, mem_cap_gb)
        # a longer sequence than one that hit the cap would only hit it again
        other = {"skipped": capped} if capped else run_case(theirs, length, threads, repeats, cap_s, mem_cap_gb)
        capped = capped or other.get("skipped")
        rows.append({
            "L": length,
            f"{ours} ms": mine.get("ms", mine.get("skipped")),
            f"{ours} MB": mine.get("MB"),
            f"{theirs or 'package'} ms": other.get("ms", other.get("skipped")),
            f"{theirs or 'package'} MB": other.get("MB"),
            "package / ours time": other["ms"] / mine["ms"] if "ms" in other and "ms" in mine else None,
        })
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
    return "\n".join(lines + ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer lengths and repeats; under 2 minutes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per case, 0 for torch's default; 1 by default because on a shared CPU "
                             "multi-threaded timings mostly measure the neighbours' load")
    args = parser.parse_args(argv)
    threads = args.threads or None
    print(f"torch {torch.__version__}, CPU, {threads or torch.get_num_threads()} thread(s) of {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}; width {WIDTH}, {HEADS} heads, batch {BATCH}; fwd+bwd medians\n")
    if args.quick:
        setup = dict(threads=threads, repeats=1, cap_s=20.0, mem_cap_gb=6.0)
        m_rows = compare("ours mLSTM", "xlstm mLSTM", [512, 1024, 2048, 4096], **setup)
        s_rows = compare("ours sLSTM", None, [1024, 4096], **setup)
    else:
        setup = dict(threads=threads, repeats=3, cap_s=20.0, mem_cap_gb=6.0)
        m_rows = compare("ours mLSTM", "xlstm mLSTM", [512, 1024, 2048, 4096, 8192], **setup)
        s_rows = compare("ours sLSTM", "xlstm sLSTM", [1024, 4096], **setup)
    print("## mLSTM layer: ours (chunkwise) vs xlstm package (parallel)\n\n" + markdown_table(m_rows) + "\n")
    print("## sLSTM layer: ours (loop + hand-written backward) vs xlstm package (vanilla backend)\n\n"
          + markdown_table(s_rows))


if __name__ == "__main__":
    main()
