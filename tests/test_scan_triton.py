"""The Triton scan kernel (`zoo.layers.scan_triton`): checked against the reference, refused off CUDA, and
the fallback of method "auto".

The value and gradient cases live in `tests/triton_scan_cases.py` and run in a subprocess: on a
machine without CUDA, in Triton's interpreter, which must be on before `triton` is first imported.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.test_scan import make_inputs
from zoo.errors import ZooError
from zoo.layers import scan as scan_module
from zoo.layers import scan_triton
from zoo.layers.scan import linear_scan

pytest.importorskip("triton")
REPO = Path(__file__).parent.parent


def run_cases(marker: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            marker,
            str(REPO / "tests" / "triton_scan_cases.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]


def test_kernel_matches_the_reference():
    run_cases("not slow")


@pytest.mark.slow
def test_kernel_matches_in_float64_at_the_gpu_tile_sizes():
    run_cases("slow")


def test_cpu_tensors_without_the_interpreter_are_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a, b, _, _ = make_inputs(8, torch.float32)
    with pytest.raises(ZooError, match="runs on CUDA tensors"):
        linear_scan(a, b, method="triton")


def test_auto_falls_back_to_the_torch_scan_when_the_kernel_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler for this GPU")

    monkeypatch.setattr(scan_triton, "triton_kernel", broken)
    monkeypatch.setattr(scan_module, "_triton_failed", False)
    a, b, _, reset = make_inputs(20, torch.complex64)
    a = scan_module._prepare(a, b, reset, None)[0]
    with pytest.warns(UserWarning, match="Triton kernel failed"):
        out = scan_module._triton_or_parallel(a, b)
    torch.testing.assert_close(out, scan_module._parallel_kernel(a, b), atol=0, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once; later calls go straight to the torch scan
        scan_module._triton_or_parallel(a, b)
