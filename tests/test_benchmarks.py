"""The benchmark harness's skip, cap, table and report logic on trivial cases (no timing is asserted)."""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

from benchmarks import _harness as harness
from zoo.errors import ZooError


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hold(mb: int, seconds: float) -> dict:
    """Touch `mb` MB and keep it for `seconds`."""
    block = b"x" * (mb * 2**20)
    time.sleep(seconds)
    return {"held": len(block) // 2**20}


def test_time_calls_warms_up_then_repeats_within_budget():
    calls = []
    result = harness.time_calls(lambda: calls.append(1), repeats=3)
    assert len(calls) == 4 and result["repeats"] == 3
    calls.clear()
    result = harness.time_calls(lambda: calls.append(1), repeats=5, budget_s=0.0)  # no budget left: one repeat
    assert len(calls) == 2 and result["repeats"] == 1
    assert result["cpu_ms"] >= 0 and result["ms"] >= 0


def test_a_case_slower_than_its_cap_is_skipped():
    with pytest.raises(harness.Skip, match=r"^skipped: .* > 0.001 s$"):
        harness.time_calls(lambda: time.sleep(0.05), repeats=3, cap_s=0.001)


def test_measure_sees_the_peak_of_a_large_allocation():
    result = harness.measure(lambda: torch.ones(16 * 2**20).sum(), repeats=1)  # 64 MB, freed after each call
    assert 50 < result["peak_mb"] < 1000


def test_isolated_cases_return_results_failures_and_caps():
    assert harness.run_isolated(max, 2, 3) == 3
    assert harness.run_isolated(math.sqrt, -1)["skipped"].startswith("failed: ValueError")
    assert harness.run_isolated(time.sleep, 30, timeout_s=0.5) == {"skipped": "skipped: >0.5 s"}
    base = harness.run_isolated(_resident_mb)
    cap_gb = (base + 200) / 1024
    assert harness.run_isolated(_hold, 8, 0.3, mem_cap_gb=cap_gb) == {"held": 8}
    assert harness.run_isolated(_hold, 500, 20, mem_cap_gb=cap_gb, timeout_s=15) == {
        "skipped": f"skipped: >{cap_gb:g} GB"
    }


def test_skip_larger_stops_running_after_the_first_skip():
    growing = harness.SkipLarger()
    assert growing.run(time.sleep, 30, timeout_s=0.5) == {"skipped": "skipped: >0.5 s"}
    assert growing.run(max, 1, 2) == {"skipped": "skipped: >0.5 s"}  # not run: max would give 2
    assert harness.SkipLarger("not run").run(max, 1, 2) == {"skipped": "not run"}


def test_rows_and_table():
    measured, skipped = {"ms": 10.0, "cpu_ms": 4.0}, {"skipped": "skipped: >8 GB"}
    assert harness.value_or_reason(measured) == 10.0 and harness.value_or_reason(skipped) == "skipped: >8 GB"
    assert harness.ratio({"ms": 30.0}, measured, "ms") == 3.0 and harness.ratio(skipped, measured, "ms") is None
    table = harness.markdown_table(
        [{"L": 1024, "ms": 123.4, "MB": 0.01234}, {"L": 2048, "ms": "skipped: >8 GB", "note": "a|b"}]
    )
    assert table.splitlines() == [
        "| L | ms | MB | note |",
        "|---|---|---|---|",
        "| 1024 | 123 | 0.0123 |  |",
        "| 2048 | skipped: >8 GB |  | a/b |",
    ]
    assert harness.format_sections([("Empty", []), ("One", [{"a": 1}])]) == "### One\n\n| a |\n|---|\n| 1 |"


def test_markers_replacement_keeps_the_prose_around(tmp_path):
    start, end = harness.RESULTS_START, harness.RESULTS_END
    doc = f"# Performance\n\nHow we measure.\n\n{start}\nold table\n{end}\n\n## After\n\nMore prose.\n"
    new = harness.replace_between_markers(doc, "new table\n")
    assert new == f"# Performance\n\nHow we measure.\n\n{start}\nnew table\n{end}\n\n## After\n\nMore prose.\n"
    assert harness.replace_between_markers(new, "newer") == new.replace("new table", "newer")
    assert harness.replace_between_markers("Prose.\n", "t") == f"Prose.\n\n{start}\nt\n{end}\n"
    with pytest.raises(ZooError, match="markers"):
        harness.replace_between_markers(f"{end}\n{start}\n", "t")
    quoted = f"Run it: the table goes between the `{start}` / `{end}` markers.\n\n{start}\nold\n{end}\n"
    assert harness.replace_between_markers(quoted, "new") == quoted.replace("\nold\n", "\nnew\n")
    path = tmp_path / "perf.md"
    harness.write_between_markers(path, "first")
    path.write_text("Intro.\n\n" + path.read_text() + "\nOutro.\n")
    harness.write_between_markers(path, "second")
    assert path.read_text() == f"Intro.\n\n{start}\nsecond\n{end}\n\nOutro.\n"


def test_machine_description_names_cpu_torch_and_load():
    line = harness.machine_description(1)
    assert f"{os.cpu_count()} cores" in line and torch.__version__ in line and "1 torch thread(s)" in line
    assert "load average" in line


def test_zoo_bench_layers_writes_all_suites_between_the_markers(tmp_path, monkeypatch):
    layers = pytest.importorskip("benchmarks.layers")
    from cli.main import main as zoo

    calls = []

    def fake(name):
        return lambda *args, **kw: calls.append((name, args)) or [(f"{name} table", [{"case": name, "ms": 1.0}])]

    for suite in (layers.layers_fftconv_scan, layers.layers_mamba, layers.layers_xlstm):
        monkeypatch.setattr(suite, "sections", fake(suite.__name__))
    monkeypatch.setattr(layers, "s5_sections", fake("s5"))
    out = tmp_path / "performance.md"
    out.write_text(f"Prose before.\n\n{harness.RESULTS_START}\nold\n{harness.RESULTS_END}\n\nProse after.\n")
    zoo(["bench", "layers", "--quick", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("Prose before.\n\n") and text.endswith("\n\nProse after.\n") and "old" not in text
    assert [name for name, _ in calls] == [
        "benchmarks.layers_fftconv_scan",
        "s5",
        "benchmarks.layers_mamba",
        "benchmarks.layers_xlstm",
    ]
    assert all(args[0] is True for _, args in calls)  # --quick reached every suite
    assert "### s5 table" in text and "python -m benchmarks.layers --quick" in text


def test_informer_profile_groups_operators_and_counts_matrix_flops():
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.studies.informer_cpu_profile import group_times

    a, b, x = torch.randn(256, 256), torch.randn(256, 256), torch.ones(1000)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(4):
            a @ b
        torch.nn.functional.dropout(x, 0.05, training=True)
    shares, total_s, flops = group_times(prof.key_averages())
    assert flops == 4 * 2 * 256**3
    assert shares["matrix products"] > 0 and shares["dropout masks"] > 0
    assert shares["gathers and scatters"] == shares["convolutions"] == 0
    assert 0 < sum(shares.values()) <= 1 + 1e-9 and total_s > 0


def test_video_speed_runs_a_subset_and_ratios_only_what_it_measured(tmp_path):
    from benchmarks import video_speed

    out = tmp_path / "video.md"
    args = ["--frames", "2", "--image-size", "16", "--models", "ConvS5", "ConvLSTM", "--parts", "model"]
    video_speed.main([*args, "--generate", "0", "--out", str(out)])
    report = out.read_text()
    assert "| ConvS5 | 2 | 918625 |" in report and "| ConvLSTM | 2 |" in report
    assert "ConvS5 speed-up vs ConvLSTM" in report
    assert "Transformer" not in report and "temporal model alone" not in report and "Generation" not in report
