"""Shared machinery of the layer benchmarks: timing, one process per case, caps, tables, the machine line.

- `time_calls`: median wall time and median process CPU time of repeated calls after a
  warm-up call. On a shared CPU the wall time also counts waiting for a core; the CPU
  time (with one thread per case) estimates the time on an idle core.
- `measure`: `time_calls` plus the peak memory of those calls above what was in use
  before them: the peak resident size (VmHWM, reset first) on CPU,
  `torch.cuda.max_memory_allocated` on CUDA.
- `run_isolated`: one case in a fresh process forked from a server that has already
  imported torch (and the modules named with `preload`), so a peak belongs to that case
  alone. A case past its time cap or over its memory cap is killed and comes back as
  `{"skipped": "skipped: ..."}`, as does one that raises `Skip`; `SkipLarger` then skips
  the larger sizes of that case without running them.
- `markdown_table`, `machine_description`, `replace_between_markers`: the report.

Nothing here asserts a time: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import platform
import queue
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError

RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
Row = dict[str, Any]
Section = tuple[str, list[Row]]  # (title, rows)
_PRELOAD = ["torch", __name__]


class Skip(Exception):
    """Raised inside a case to report it as skipped; the message is what the row shows."""


def pin_threads(threads: int | None) -> None:
    """Torch threads of this process; None keeps torch's default."""
    if threads:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- timing and memory


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, float]:
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_calls(
    fn: Callable[[], object],
    repeats: int,
    budget_s: float | None = None,
    cap_s: float | None = None,
    sync: Callable[[], None] = lambda: None,
) -> Row:
    """Median wall and CPU ms of `repeats` calls of `fn` after a warm-up call (whose time is `first_ms`).

    budget_s: fewer repeats (at least one) where the warm-up shows that they would not fit.
    cap_s: raise `Skip` when the warm-up call alone takes longer.
    """
    first, _ = _timed(fn, sync)
    if cap_s is not None and first > cap_s:
        raise Skip(f"skipped: {first:.0f} s > {cap_s:g} s")
    if budget_s is not None:
        repeats = max(1, min(repeats, int((budget_s - first) / max(first, 1e-6))))
    wall, cpu = zip(*(_timed(fn, sync) for _ in range(repeats)))
    return {
        "ms": 1e3 * statistics.median(wall),
        "cpu_ms": 1e3 * statistics.median(cpu),
        "first_ms": 1e3 * first,
        "repeats": repeats,
    }


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))


def process_peak_rss_bytes() -> int:
    """This process's peak resident size since it started (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_mb(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn()'s result and the peak resident MB while it ran, above the resident size before it (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current resident size
    before = _status_bytes("VmRSS")
    result = fn()
    return result, max(_status_bytes("VmHWM") - before, 0) / 2**20


def fix_mmap_threshold(nbytes: int = 65536) -> None:
    """glibc: serve every allocation above `nbytes` by mmap, returned to the OS on free.

    The resident size then follows the live tensors instead of the allocator's cache, but
    every large allocation page-faults: time such a process separately.
    """
    m_mmap_threshold = -3
    ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, nbytes)


def measure(fn: Callable[[], object], repeats: int, device: str | torch.device = "cpu", **timing) -> Row:
    """`time_calls(fn, repeats, **timing)` plus `peak_mb`, the peak memory of all those calls."""
    device = torch.device(device)
    if device.type != "cuda":
        result, peak = peak_rss_mb(lambda: time_calls(fn, repeats, **timing))
        return {**result, "peak_mb": peak}
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = time_calls(fn, repeats, sync=lambda: torch.cuda.synchronize(device), **timing)
    return {**result, "peak_mb": (torch.cuda.max_memory_allocated(device) - before) / 2**20}


# ---------------------------------------------------------------- one process per case


def preload(*modules: str) -> None:
    """Modules the case server imports before forking cases; effective only before the first case runs."""
    _PRELOAD.extend(m for m in modules if m not in _PRELOAD)


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _case_process(fn: Callable[..., Any], args: tuple, results: mp.Queue) -> None:
    try:
        results.put(fn(*args))
    except Skip as skip:
        results.put({"skipped": str(skip)})
    except Exception as err:  # a broken case becomes a row saying so; the other cases still run
        results.put({"skipped": f"failed: {type(err).__name__}: {err}"[:160]})


def run_isolated(fn: Callable[..., Any], *args, timeout_s: float = 60.0, mem_cap_gb: float = 8.0) -> Any:
    """fn(*args) computed in a fresh process, or {"skipped": why}.

    fn must be importable by name (a module-level function) and return something picklable.
    The process is killed past `timeout_s` or above `mem_cap_gb` resident.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    results = ctx.Queue()
    proc = ctx.Process(target=_case_process, args=(fn, args, results))
    proc.start()
    start, reason = time.monotonic(), None
    while proc.is_alive() and reason is None:
        proc.join(0.2)
        if time.monotonic() - start > timeout_s:
            reason = f"skipped: >{timeout_s:g} s"
        elif _resident_bytes(proc.pid) > mem_cap_gb * 2**30:
            reason = f"skipped: >{mem_cap_gb:g} GB"
    if reason:
        proc.kill()
        proc.join()
        return {"skipped": reason}
    try:
        return results.get(timeout=5)
    except queue.Empty:
        return {"skipped": f"failed (exit code {proc.exitcode})"}


class SkipLarger:
    """Runs one case at growing sizes; once it is skipped, larger sizes would only hit the cap again."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason  # set: every size is skipped with it

    def run(self, fn: Callable[..., Row], *args, **caps) -> Row:
        if self.reason:
            return {"skipped": self.reason}
        result = run_isolated(fn, *args, **caps)
        self.reason = result.get("skipped")
        return result


def value_or_reason(result: Row, key: str = "ms") -> Any:
    """The measured value, or why there is none."""
    return result.get(key, result.get("skipped"))


def ratio(numerator: Row, denominator: Row, key: str) -> float | None:
    """numerator[key] / denominator[key] where both were measured."""
    if isinstance(numerator.get(key), float) and isinstance(denominator.get(key), float) and denominator[key] > 0:
        return numerator[key] / denominator[key]
    return None


# ---------------------------------------------------------------- report


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "/")


def markdown_table(rows: list[Row]) -> str:
    """A Markdown table over the union of the rows' keys (first seen first); missing cells stay empty."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows])


def format_sections(sections: list[Section]) -> str:
    return "\n\n".join(f"### {title}\n\n{markdown_table(rows)}" for title, rows in sections if rows)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(threads: int | None) -> str:
    """CPU model, cores, torch version, threads per case and the load average now (one line)."""
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no GPU"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}; "
        f"{threads or torch.get_num_threads()} torch thread(s) per case; load average {os.getloadavg()[0]:.1f} at start"
    )


def _marker_line(text: str, marker: str) -> int:
    """Where `marker` stands alone on a line in `text` (-1 if nowhere): prose that quotes it is not a marker."""
    found = re.search(rf"^{re.escape(marker)}[ \t]*$", text, flags=re.MULTILINE)
    return found.start() if found else -1


def replace_between_markers(text: str, body: str, start: str = RESULTS_START, end: str = RESULTS_END) -> str:
    """`text` with what lies between the markers (each alone on its line) replaced by `body`; both appended if
    neither is there."""
    i, j = _marker_line(text, start), _marker_line(text, end)
    if i < 0 and j < 0:
        return f"{text.rstrip()}\n\n{start}\n{body.strip()}\n{end}\n".lstrip()
    if i < 0 or j < i:
        raise ZooError(
            f"results markers out of order or one missing: need {start!r} before {end!r}, each on its own line; "
            "restore the pair or delete both"
        )
    return f"{text[: i + len(start)]}\n{body.strip()}\n{text[j:]}"


def print_or_write(body: str, target: str) -> None:
    """Print the results; unless `target` is '-', also put them between the results markers of that file."""
    print(body)
    if target != "-":
        write_between_markers(Path(target), body)
        print(f"\nwritten between the results markers of {target}")


def write_between_markers(path: str | Path, body: str) -> None:
    """Replace the results in `path` (created if missing) and keep the prose around them; written atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(replace_between_markers(text, body))
    tmp.replace(path)
