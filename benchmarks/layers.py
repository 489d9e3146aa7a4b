"""Every layer benchmark side by side in one run, written into docs/performance.md.

    python -m benchmarks.layers [--quick] [--out docs/performance.md] [--threads 1] [--device cpu]
    zoo bench layers --quick

In order: FFT long convolution vs SDPA attention and the scan methods
(`benchmarks.layers_fftconv_scan`), S5 vs LSTM/GRU training steps and S5's scans
(`benchmarks.layers_s5`), the Mamba block (`benchmarks.layers_mamba`), and the xLSTM
layers vs the `xlstm` package (`benchmarks.layers_xlstm`). The tables, under a line
describing the machine, replace what lies between `<!-- results:start -->` and
`<!-- results:end -->` in the output file, so the prose around them stays.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import torch

from benchmarks import _harness as harness
from benchmarks import layers_fftconv_scan, layers_mamba, layers_s5, layers_xlstm

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
harness.preload(__name__, layers_s5.__name__, "zoo.models")


def _s5_rows(part: str, quick: bool, threads: int | None) -> list[harness.Row]:
    """One part of the S5 suite, which times in the calling process: run it in a case process of its own."""
    harness.pin_threads(threads)
    repeats = 2 if quick else 5
    if part == "headline":
        return layers_s5.headline_rows(runs=2 if quick else 3, repeats=repeats)
    if part == "layer":
        return layers_s5.layer_rows([64, 256] if quick else [64, 128, 256, 512], repeats)
    return layers_s5.scan_rows(repeats, ["loop", "chunked"] if quick else ["loop", "chunked", "parallel"])


def s5_sections(quick: bool, threads: int | None) -> list[harness.Section]:
    titles = {
        "headline": "S5 training step, 4 layers x 256 (popjaxrl's s5_rl) vs GRU/LSTM, 1024 steps x 8 sequences",
        "layer": "S5 block vs LSTM/GRU, one layer, training step, L = 1024, batch 8",
        "scan": "Scan methods on S5's shapes (8 x 1024 x 128 complex), fwd+bwd, and inside the s5_rl step",
    }
    sections = []
    for part, title in titles.items():
        rows = harness.run_isolated(_s5_rows, part, quick, threads, timeout_s=300.0 if quick else 1800.0)
        sections.append((title, [{"model": "S5 suite", "result": rows["skipped"]}] if isinstance(rows, dict) else rows))
    return sections


def results_markdown(quick: bool, device: str, threads: int | None) -> str:
    """Run every suite; the machine line, the tables and the run's duration, as Markdown."""
    start, header = time.monotonic(), harness.machine_description(threads)
    sections = (
        layers_fftconv_scan.sections(quick, device, threads)
        + s5_sections(quick, threads)
        + layers_mamba.sections(quick, threads=threads)
        + layers_xlstm.sections(quick, threads)
    )
    command = "python -m benchmarks.layers" + (" --quick" if quick else "")
    return (
        f"Measured {datetime.date.today().isoformat()} with `{command}` on: {header}. "
        f"Run took {(time.monotonic() - start) / 60:.1f} min; load average {os.getloadavg()[0]:.1f} at the end. "
        "ms = wall time, cpu ms = process CPU time (median after warm-up), MB = peak memory above the case's "
        "start.\n\n" + harness.format_sections(sections)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (a few minutes on 2 cores)")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="Markdown file to write the results into; '-' only prints"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per case, 0 for torch's default; 1 by default because on a shared CPU "
        "multi-threaded timings mostly measure the neighbours' load",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="device of the fftconv/attention and scan suite (to 1M tokens on CUDA in the full run)",
    )
    args = parser.parse_args(argv)
    body = results_markdown(args.quick, args.device, args.threads or None)
    print(body)
    if args.out != "-":
        harness.write_between_markers(args.out, body)
        print(f"\nwritten between the results markers of {args.out}")


if __name__ == "__main__":
    main()
