"""Speed and memory of the xLSTM layers, side by side with the official `xlstm` package.

    python -m benchmarks.layers_xlstm [--quick] [--threads N]

(a) mLSTM layer, forward + backward: ours (`zoo.layers.xlstm_mlstm.mLSTMLayer`, chunkwise,
linear in L) against the package's `mLSTMLayer` (its parallel backend, quadratic in L),
same width and weights layout, L = 512 ... 4096 (8192 in the full run). The package is
stopped past a time or memory cap and reported as skipped.
(b) sLSTM layer, forward + backward: ours (sequential loop, hand-written backward) and,
in the full run and where it finishes within the cap, the package's CPU ("vanilla") backend.

Each case runs in its own process (`benchmarks._harness.run_isolated`), so its peak
resident memory above the resident size at the start of the measured calls is that
case's memory. Times are medians of forward+backward after a warm-up call.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks import _harness as harness

WIDTH, HEADS, BATCH = 128, 4, 1
harness.preload(__name__, "zoo.layers.xlstm_mlstm", "zoo.layers.xlstm_slstm", "xlstm")


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


def _fwd_bwd(kind: str, length: int):
    layer, x = _layer(kind, length), torch.randn(BATCH, length, WIDTH, requires_grad=True)
    return lambda: layer(x).square().mean().backward()


def _case(kind: str, length: int, threads: int | None, repeats: int, cap_s: float) -> harness.Row:
    """Inside the case's process: warm up on 64 steps (library loads), then measure; `Skip` if one call > cap_s."""
    harness.pin_threads(threads)
    torch.manual_seed(0)
    _fwd_bwd(kind, 64)()
    return harness.measure(_fwd_bwd(kind, length), repeats, cap_s=cap_s)


def compare(
    ours: str,
    theirs: str | None,
    lengths: list[int],
    threads: int | None,
    repeats: int,
    cap_s: float,
    mem_cap_gb: float,
) -> list[harness.Row]:
    """One row per length: our and (unless `theirs` is None) the package's fwd+bwd ms and peak MB, and the time ratio.

    A case is skipped when one fwd+bwd takes longer than `cap_s` or its process outgrows `mem_cap_gb`.
    """
    caps = {"timeout_s": 30.0 + cap_s * (repeats + 1), "mem_cap_gb": mem_cap_gb}  # start and warm-up, then the calls
    rows, package = [], harness.SkipLarger(None if theirs else "not run")
    for length in lengths:
        mine = harness.run_isolated(_case, ours, length, threads, repeats, cap_s, **caps)
        other = package.run(_case, theirs, length, threads, repeats, cap_s, **caps)
        rows.append(
            {
                "L": length,
                f"{ours} ms": harness.value_or_reason(mine),
                f"{ours} cpu ms": mine.get("cpu_ms"),
                f"{ours} MB": mine.get("peak_mb"),
                f"{theirs or 'package'} ms": harness.value_or_reason(other),
                f"{theirs or 'package'} cpu ms": other.get("cpu_ms"),
                f"{theirs or 'package'} MB": other.get("peak_mb"),
                "package / ours cpu ms": harness.ratio(other, mine, "cpu_ms"),
            }
        )
    return rows


def sections(quick: bool, threads: int | None = 1) -> list[harness.Section]:
    """`quick`: one timed call per case, mLSTM to 4k, our sLSTM only."""
    setup = dict(threads=threads, repeats=1 if quick else 3, cap_s=20.0, mem_cap_gb=6.0)
    m_lengths = [512, 1024, 2048, 4096] + ([] if quick else [8192])
    return [
        (
            "mLSTM layer fwd+bwd: ours (chunkwise) vs xlstm package (parallel)",
            compare("ours mLSTM", "xlstm mLSTM", m_lengths, **setup),
        ),
        (
            "sLSTM layer fwd+bwd: ours (loop + hand-written backward) vs xlstm package (vanilla backend)",
            compare("ours sLSTM", None if quick else "xlstm sLSTM", [1024, 4096], **setup),
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer lengths and repeats")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per case, 0 for torch's default; 1 by default because on a shared CPU "
        "multi-threaded timings mostly measure the neighbours' load",
    )
    args = parser.parse_args(argv)
    threads = args.threads or None
    print(harness.machine_description(threads) + f"; width {WIDTH}, {HEADS} heads, batch {BATCH}\n")
    print(harness.format_sections(sections(args.quick, threads)))


if __name__ == "__main__":
    main()
