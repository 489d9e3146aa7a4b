"""benchmarks/gpu_pass.py, the one-call GPU pass: run here on the CPU (its CUDA cases skipped), with a
deliberately failing case, and its runner's bookkeeping on stand-in cases. No time is asserted."""

from __future__ import annotations

import json
import re

import pytest
import torch

from benchmarks import gpu_pass

NO_CUDA = not torch.cuda.is_available()


def sections_of(markdown: str) -> dict[str, str]:
    """'## title' -> the text under it."""
    parts = re.split(r"^## ", markdown, flags=re.M)[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


def test_quick_pass_records_every_case_and_goes_on_after_a_failure(tmp_path):
    assert gpu_pass.main(["--out", str(tmp_path), "--quick", "--inject-failure"]) == 0

    results = json.loads((tmp_path / "results.json").read_text())
    plan = gpu_pass.Plan("cuda" if torch.cuda.is_available() else "cpu", quick=True)
    planned = [(c.section, c.name) for c in gpu_pass.plan_cases(plan, None, inject_failure=True)]
    recorded = [(c["section"], c["name"]) for c in results["cases"]]
    assert recorded == planned
    for case in results["cases"]:
        assert case["status"] in ("ok", "skipped", "failed")
        assert (case["status"] == "ok") == (case["reason"] == ""), case
    by_name = {c["name"]: c for c in results["cases"]}
    failed = [c["name"] for c in results["cases"] if c["status"] == "failed"]
    assert failed == ["deliberate failure"], failed
    assert "RuntimeError: deliberate failure" in by_name["deliberate failure"]["reason"]
    # the cases after the failure still ran, in every section
    after = results["cases"][recorded.index(("checks", "deliberate failure")) + 1 :]
    assert {c["section"] for c in after if c["status"] == "ok"} == {"scan", "mamba", "s5", "hyena", "rl", "checks"}
    if NO_CUDA:
        skipped = {c["reason"] for c in results["cases"] if c["status"] == "skipped"}
        assert skipped == {"skipped: no CUDA"}
        assert by_name["triton 2x64x8"]["status"] == by_name["mamba-ssm L=64"]["status"] == "skipped"
        # pytest ran through its junit XML: one row per test
        (pytest_row,) = by_name["pytest tests/test_scan_triton.py -k refused (CPU)"]["rows"]
        assert pytest_row["check"].endswith("::test_cpu_tensors_without_the_interpreter_are_refused")
        assert pytest_row["status"] == "ok" and pytest_row["reason"] == "passed"
    parity = by_name["layers vs the same layers on the CPU"]["rows"]
    assert {row["check"] for row in parity} == {
        "fftconv",
        "S5",
        "S5 block",
        "Mamba (pure PyTorch)",
        "mLSTM layer",
        "sLSTM layer",
    }
    assert all(row["out err"] <= row["tol"] and row["grad err"] <= row["tol"] for row in parity)

    markdown = (tmp_path / "results.md").read_text()
    tables = sections_of(markdown)
    assert list(tables) == [title for title, _goal in gpu_pass.SECTIONS.values()]
    for title, body in tables.items():
        assert len(re.findall(r"^\|(---\|)+$", body, flags=re.M)) == 1, title
    assert "Failed: checks: deliberate failure" in markdown
    assert [s["key"] for s in results["sections"]] == list(gpu_pass.SECTIONS)


@pytest.mark.skipif(not NO_CUDA, reason="the full plan runs on CUDA")
def test_without_cuda_the_full_pass_skips_every_case(tmp_path):
    assert gpu_pass.main(["--out", str(tmp_path), "--only", "scan", "hyena"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["cases"]) == 12 + 8
    assert {(c["status"], c["reason"]) for c in results["cases"]} == {("skipped", "skipped: no CUDA")}
    assert [s["key"] for s in results["sections"]] == ["scan", "hyena"]


def _case(name: str, result, chain: str | None = None, check: bool = False) -> gpu_pass.Case:
    def run(_timeout_s: float):
        if isinstance(result, Exception):
            raise result
        return result

    return gpu_pass.Case("hyena", name, run, 10.0, {"model": "HyenaDNA", "length": 1}, check=check, chain=chain)


def test_runner_statuses_chains_and_budget():
    seen = []
    cases = [
        _case("rows", [{"ms": 1.0}]),
        _case("a failed row", [{"ms": 1.0}, {"status": "failed"}]),
        _case("too slow", {"skipped": "skipped: >10 s"}, chain="big"),
        _case("larger", [{"ms": 1.0}], chain="big"),
        _case("check too slow", {"skipped": "skipped: >10 s"}, check=True),
        _case("runner broke", RuntimeError("boom")),
        _case("no cuda", {"skipped": "skipped: no CUDA"}, chain="other"),
        _case("after no cuda", [{"ms": 2.0}], chain="other"),
    ]
    records = gpu_pass.run_cases(cases, budget_s=60, on_record=lambda records: seen.append(len(records)))
    status = {r["name"]: (r["status"], r["reason"]) for r in records}
    assert status["rows"] == ("ok", "")
    assert status["a failed row"] == ("failed", "1 of 2 rows failed")
    assert status["too slow"] == ("skipped", "skipped: >10 s")
    assert status["larger"] == ("skipped", "skipped: not run, a smaller size was (skipped: >10 s)")
    assert status["check too slow"][0] == "failed"
    assert status["runner broke"] == ("failed", "failed: RuntimeError: boom")
    assert status["after no cuda"] == ("ok", "")  # only running out of time or memory stops a chain
    assert seen == list(range(1, len(cases) + 1))  # the files are rewritten after every case

    spent = gpu_pass.run_cases(cases[:2], budget_s=1, on_record=lambda records: None)
    assert [r["reason"] for r in spent] == ["skipped: the pass's budget of 1 s was spent"] * 2


def _record(section: str, labels: dict, rows: list | None = None, reason: str = "") -> dict:
    status = "ok" if rows else "skipped"
    return {"section": section, "name": "", "labels": labels, "status": status, "reason": reason, "rows": rows or []}


def test_tables_put_ratios_and_lower_bounds_beside_the_rows():
    hyena = [
        _record("hyena", {}, [{"model": "HyenaDNA", "length": 1024, "ms": 10.0}]),
        _record("hyena", {}, [{"model": "Transformer", "length": 1024, "ms": 25.0}]),
        _record("hyena", {}, [{"model": "HyenaDNA", "length": 2**20, "ms": 500.0}]),
        _record("hyena", {"model": "Transformer", "length": 2**20}, reason="skipped: 75 s > 18 s"),
    ]
    rows = gpu_pass.section_rows("hyena", hyena)
    assert rows[1]["Transformer / HyenaDNA"] == 2.5
    assert rows[3]["Transformer / HyenaDNA"].startswith(">= 150 ")
    assert rows[3]["reason"] == "skipped: 75 s > 18 s"

    scan = [
        _record("scan", {}, [{"B x L x S": "1x8x2", "method": m, "ms": ms}])
        for m, ms in (("triton", 2.0), ("parallel", 4.0))
    ]
    assert gpu_pass.section_rows("scan", scan)[0]["ms / parallel"] == 0.5
    s5 = [
        _record("s5", {}, [{"model": m, "L x B": "64 x 2", "ms": ms}])
        for m, ms in (("s5_rl (4 x 256)", 2.0), ("GRU (4 x 256)", 7.0), ("GRU (1 x 256)", 3.0))
    ]
    rows = gpu_pass.section_rows("s5", s5)
    assert rows[1]["RNN / S5"] == 3.5 and "RNN / S5" not in rows[2]  # no one-layer S5 row to compare with


def test_peak_bandwidth_by_device_name():
    assert gpu_pass.peak_bandwidth_gb_s("NVIDIA H200") == 4800
    assert gpu_pass.peak_bandwidth_gb_s("NVIDIA H100 80GB HBM3") == 3350
    assert gpu_pass.peak_bandwidth_gb_s("NVIDIA H100 PCIe") == 2000
    assert gpu_pass.peak_bandwidth_gb_s("NVIDIA A100-SXM4-80GB") == 2039
    assert gpu_pass.peak_bandwidth_gb_s("NVIDIA A100-SXM4-40GB") == 1555
    assert gpu_pass.peak_bandwidth_gb_s("Tesla T4") is None
    assert gpu_pass.peak_bandwidth_gb_s(None) is None


def test_junit_rows(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.t" name="test_ok" time="0.5"/>'
        '<testcase classname="tests.t" name="test_bad" time="0.1"><failure message="assert 1 == 2">trace</failure>'
        "</testcase>"
        '<testcase classname="tests.t" name="test_skip" time="0"><skipped message="needs CUDA"/></testcase>'
        '<testcase classname="tests.t" name="test_err" time="0"><error message="">ImportError: x\nmore</error>'
        "</testcase></testsuite></testsuites>"
    )
    rows = gpu_pass._junit_rows(junit)
    assert [(r["check"], r["status"], r["reason"]) for r in rows] == [
        ("tests.t::test_ok", "ok", "passed"),
        ("tests.t::test_bad", "failed", "failed: assert 1 == 2"),
        ("tests.t::test_skip", "ok", "skipped: needs CUDA"),
        ("tests.t::test_err", "failed", "failed: ImportError: x"),
    ]
