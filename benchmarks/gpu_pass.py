"""Every GPU check and benchmark of issue 25 in one call, each case in its own time budget.

    python -m benchmarks.gpu_pass --out DIR [--budget-s 480] [--quick] [--only SECTION ...] [--list]

Sections (docs/gpu.md says what each measures and its goal):
- checks: the CUDA correctness checks: pytest on the Triton scan cases (compiled), on
  tests/test_scan_triton.py and on the gpu-marked tests of the scan, fftconv, S5, Mamba and
  xLSTM test files (one row per test, from pytest's junit XML); then each layer on the device
  against the same layer on the CPU, values and gradients (fp32 and under bf16 autocast, with
  the tolerances in `TOLERANCE`).
- scan: `linear_scan` fwd+bwd, Triton vs torch "parallel" vs "chunked", with the effective
  memory bandwidth (bytes moved / time) against the card's peak (`PEAK_GB_S`).
- mamba: the Mamba block fwd+bwd with mamba-ssm's kernels (when they import), our pure-PyTorch
  chunked selective scan, and the selective scan through `linear_scan` (Triton on CUDA).
- s5: training step of popjaxrl's `s5_rl` core and of one S5 block vs GRU and LSTM (cuDNN).
- hyena: HyenaDNA vs a Transformer (SDPA) training step up to 1M tokens, peak memory beside.
- rl: full PPO iterations with the S5 and GRU policy cores at 1024 environments.

Every case runs in a process of its own (`benchmarks._harness.run_isolated`, or a pytest
subprocess) under its own time cap, and the whole pass under `--budget-s`: a case that fails,
hangs or runs out of memory becomes a row saying so and the pass goes on. `DIR/results.json`
(every case with its status ok / skipped / failed, the reason, its rows) and `DIR/results.md`
(one table per section) are rewritten after every case, so a pass cut short still leaves what it
measured. Without CUDA every CUDA case is `skipped: no CUDA`; `--quick` then runs the other cases
at tiny sizes on the CPU, which is how tests/test_gpu_pass.py tests this script. Exit status 0
whenever the files were written: failures are in them, not in the exit status.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from benchmarks import _harness as harness
from benchmarks import genomics, layers_fftconv_scan, layers_mamba, layers_s5, rl_speed
from zoo import create_model
from zoo.layers import mamba as mamba_layer
from zoo.layers.fftconv import fftconv
from zoo.layers.scan import linear_scan, scan_method_for
from zoo.layers.ssm import S5, S5Block
from zoo.layers.xlstm_mlstm import mLSTMLayer
from zoo.layers.xlstm_slstm import sLSTMLayer

REPO = Path(__file__).resolve().parents[1]
Row = harness.Row
SECTIONS = {  # key: (title, goal from issue 25)
    "checks": (
        "CUDA correctness: pytest, and each layer on the device against the CPU",
        "values and gradients equal the reference: fp32 to 1e-5, bf16 autocast to the stated tolerance",
    ),
    "scan": (
        "Scan fwd+bwd: Triton vs torch parallel vs chunked, effective bandwidth",
        "Triton within 3x of the bandwidth limit at the large shapes (peak / effective <= 3) and never "
        "slower than parallel (1 x 16384 x 64 was 1.34x slower on the H200)",
    ),
    "mamba": (
        "Mamba block fwd+bwd: mamba-ssm kernels vs pure PyTorch vs linear_scan (Triton) inside",
        "measure the pure-PyTorch path against the fused kernels at equal shapes (no numeric goal in the issue)",
    ),
    "s5": (
        "S5 vs GRU / LSTM (cuDNN) training step (forward, MSE, backward, Adam)",
        "S5 >= 3x faster than the RNNs (popjaxrl's paper: > 5x)",
    ),
    "hyena": (
        "HyenaDNA vs Transformer (SDPA), next-nucleotide training step, peak memory",
        "the paper's headline: up to 160x faster than attention at 1M tokens",
    ),
    "rl": (
        "RL: PPO iterations (rollout + update) with the S5 and GRU cores, popgym/RepeatPrevious",
        "no number in the issue: S5 against GRU inside the whole loop, on the GPU, at 1024 environments",
    ),
}
# Peak DRAM bandwidth in GB/s by device name (vendor data sheets); the first matching fragment wins.
PEAK_GB_S = [
    ("h200", 4800.0),
    ("h100 nvl", 3900.0),
    ("h100 pcie", 2000.0),
    ("h100", 3350.0),  # SXM5, HBM3: "NVIDIA H100 80GB HBM3"
    ("a100 80gb pcie", 1935.0),
    ("a100-sxm4-80gb", 2039.0),
    ("a100", 1555.0),  # the 40 GB cards, SXM4 and PCIe
]
TOLERANCE = {"fp32": 1e-5, "bf16": 5e-2}  # max |device - cpu| / max |cpu|, per tensor
SCAN_TENSOR_PASSES = 9  # fwd: read a, b, write h; bwd: read a, dh, write db; read db, h, write da
MIN_CASE_S = 5.0  # less than this left of the pass's budget: the remaining cases are skipped
# imported once by the case server, not in every case: PPOConfig's checks import zoo.training (Lightning)
harness.preload(
    "benchmarks.gpu_pass",
    "zoo.models",
    "zoo.training.validation",
    "domains.rl.policy_cores",
    "domains.rl.s5_policy",
    "domains.rl.rollout",
    "domains.rl.ppo",
)


@dataclass
class Case:
    section: str
    name: str
    run: Callable[[float], Any]  # given its time cap in seconds: a list of rows, or {"skipped": why}
    timeout_s: float
    labels: dict = field(default_factory=dict)  # the columns that name the case in its section's table
    check: bool = False  # a correctness check: running out of time is a failure, not a skip
    chain: str | None = None  # once a case of a chain ran out of time or memory, its later (larger) cases are skipped


@dataclass
class Plan:
    device: str
    quick: bool
    mem_cap_gb: float = field(init=False)

    def __post_init__(self) -> None:
        # host memory of a case process: a CUDA process holds a few GB of libraries resident
        self.mem_cap_gb = 48.0 if self.device == "cuda" else 6.0

    @property
    def threads(self) -> int | None:
        return 1 if self.device == "cpu" else None  # a shared CPU: one thread per case

    def isolated(self, fn: Callable[..., Any], **kwargs) -> Callable[[float], Any]:
        return lambda timeout_s: harness.run_isolated(
            _child, fn, kwargs, self.threads, timeout_s=timeout_s, mem_cap_gb=self.mem_cap_gb
        )


def _child(fn: Callable[..., Any], kwargs: dict, threads: int | None) -> Any:
    """Inside a case's process: out of GPU memory is a skip; another error a failure with its traceback."""
    harness.pin_threads(threads)
    try:
        return fn(**kwargs)
    except torch.OutOfMemoryError as err:
        raise harness.Skip(f"skipped: out of GPU memory ({str(err).splitlines()[0][:90]})") from None
    except harness.Skip:
        raise
    except Exception as err:  # the traceback goes to results.json: the device session has no time to reproduce it
        return {"skipped": f"failed: {type(err).__name__}: {err}"[:300], "traceback": traceback.format_exc()[-4000:]}


def no_cuda(_timeout_s: float) -> dict:
    return {"skipped": "skipped: no CUDA"}


def peak_bandwidth_gb_s(device_name: str | None) -> float | None:
    name = (device_name or "").lower()
    return next((peak for fragment, peak in PEAK_GB_S if fragment in name), None)


# ---------------------------------------------------------------- checks: pytest


def pytest_case(args: list[str], timeout_s: float) -> list[Row] | dict:
    """pytest on `args` in a subprocess: one row per test from its junit XML (exit 5, nothing selected, is ok)."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        # a session of its own, so that a timeout also ends the pytest processes it started
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return {"skipped": f"skipped: >{timeout_s:g} s", "traceback": output[-4000:]}
        rows = _junit_rows(junit) if junit.is_file() else []
    if proc.returncode == 5:
        return [{"check": " ".join(args), "status": "ok", "reason": "no test selected"}]
    if proc.returncode != 0 and not any(row["status"] == "failed" for row in rows):
        tail = output.strip().splitlines()[-1:] or ["no output"]
        rows.append(
            {"check": " ".join(args), "status": "failed", "reason": f"pytest exit {proc.returncode}: {tail[0]}"}
        )
    if proc.returncode != 0:
        rows[-1]["_log"] = output[-4000:]  # results.json only: pytest's own report of the failures
    return rows


def _junit_rows(path: Path) -> list[Row]:
    rows = []
    for test in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in test:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                text = (child.get("message") or child.text or "").strip()
                message = text.splitlines()[0][:150] if text else ""
        rows.append(
            {
                "check": f"{test.get('classname', '')}::{test.get('name', '')}",
                "status": "failed" if outcome == "failed" else "ok",
                "reason": f"{outcome}: {message}" if message else outcome,
                "s": float(test.get("time") or 0.0),
            }
        )
    return rows


# ---------------------------------------------------------------- checks: device against CPU


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|, computed in float64 on the CPU."""
    got, want = got.detach().cpu(), want.detach().cpu()
    wide = torch.complex128 if got.is_complex() or want.is_complex() else torch.float64
    got, want = got.to(wide), want.to(wide)
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))


def _verdict(check: str, mode: str, device: str, out_err: float, grad_err: float, tol: float, **extra) -> Row:
    ok = out_err <= tol and grad_err <= tol  # NaN compares False: a NaN fails
    return {
        "check": check,
        "dtype": mode,
        "device": device,
        **extra,
        "out err": out_err,
        "grad err": grad_err,
        "tol": tol,
        "status": "ok" if ok else "failed",
    }


def _scan_inputs(dtype: torch.dtype, batch: int, length: int, state: int):
    """Stable decays |a| in [0.5, 1), random b and h0, resets at a quarter of the steps (drawn on the CPU)."""
    gen = torch.Generator().manual_seed(0)
    a = 0.5 + 0.5 * torch.rand(batch, length, state, generator=gen)
    if dtype.is_complex:
        a = a * torch.exp(1j * 3 * torch.rand(a.shape, generator=gen))
    b = torch.randn(batch, length, state, generator=gen, dtype=torch.float32 if dtype == torch.bfloat16 else dtype)
    h0 = torch.randn(batch, state, generator=gen, dtype=b.dtype)
    reset = torch.rand(batch, length, generator=gen) < 0.25
    return a, b.to(dtype) if dtype == torch.bfloat16 else b, h0, reset


def _scan_grads(method: str, a, b, h0, reset, device: str):
    leaves = [x.detach().to(device).requires_grad_() for x in (a, b, h0)]
    h = linear_scan(*leaves[:2], reset.to(device), leaves[2], method)
    out_grad = torch.randn(h.shape, generator=torch.Generator().manual_seed(7), dtype=h.dtype).to(device)
    return h, torch.autograd.grad(h, leaves, out_grad)


def scan_parity(device: str, methods: list[str], length: int = 300, state: int = 40) -> list[Row]:
    """Each method on the device against "sequential" on the CPU; several Triton tiles in both directions."""
    rows = []
    for dtype, mode in ((torch.float32, "fp32"), (torch.complex64, "fp32"), (torch.bfloat16, "bf16")):
        a, b, h0, reset = _scan_inputs(dtype, 2, length, state)
        ref_b, ref_h0 = (b.float(), h0.float()) if dtype == torch.bfloat16 else (b, h0)  # same rounded values
        want, want_grads = _scan_grads("sequential", a, ref_b, ref_h0, reset, "cpu")
        for method in methods:
            got, got_grads = _scan_grads(method, a, b, h0, reset, device)
            width = 2 * state * (2 if b.is_complex() else 1)  # real numbers per step, as linear_scan counts
            picked = scan_method_for(device, length, width) if method == "auto" else method
            grad_err = max(rel_err(g, w) for g, w in zip(got_grads, want_grads))
            check = f"linear_scan {method}" + (f" (= {picked})" if method == "auto" else "")
            inputs = str(dtype).split(".")[1]
            rows.append(_verdict(check, mode, device, rel_err(got, want), grad_err, TOLERANCE[mode], inputs=inputs))
    return rows


def _layer(name: str) -> tuple[torch.nn.Module, tuple[int, int, int], dict]:
    """A small layer of each kind, its input shape and the keyword arguments of its forward."""
    reset = (torch.rand(2, 300, generator=torch.Generator().manual_seed(3)) < 0.05).tolist()
    if name == "S5":
        return S5(16, state_dim=32), (2, 300, 16), {"reset": reset}
    if name == "S5 block":
        return S5Block(16, state_dim=32), (2, 300, 16), {}
    if name == "Mamba (pure PyTorch)":
        return mamba_layer.Mamba(32, use_kernels=False), (2, 300, 32), {}
    if name == "mLSTM layer":
        return mLSTMLayer(32, num_heads=4), (2, 200, 32), {}
    if name == "sLSTM layer":
        return sLSTMLayer(32, num_heads=4), (2, 200, 32), {}
    raise ValueError(f"no layer {name!r}")


class _FFTConv(torch.nn.Module):
    """fftconv with a learnable kernel and skip, so that it compares like the other layers."""

    def __init__(self, dim: int, length: int):
        super().__init__()
        self.k = torch.nn.Parameter(torch.randn(dim, length) / length)
        self.bias = torch.nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fftconv(x.transpose(1, 2), self.k, self.bias).transpose(1, 2)


def _run_layer(module: torch.nn.Module, x: torch.Tensor, kwargs: dict, bf16: bool):
    device = x.device.type
    x = x.clone().requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        out = module(x, **{k: torch.tensor(v, device=device) for k, v in kwargs.items()})
    out_grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(device)
    out.float().backward(out_grad)
    return out, [x.grad, *(p.grad for p in module.parameters())]


def layer_parity(device: str, layers: list[str]) -> list[Row]:
    """Each layer on the device (fp32, then under bf16 autocast) against the same weights in fp32 on the CPU.

    TF32 is off on the device, so fp32 means fp32; fftconv under autocast must still compute in fp32.
    """
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    rows = []
    for name in layers:
        torch.manual_seed(0)
        module, shape, kwargs = (_FFTConv(16, 1000), (2, 1000, 16), {}) if name == "fftconv" else _layer(name)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        want, want_grads = _run_layer(module, x, kwargs, bf16=False)
        for mode in ("fp32", "bf16"):
            twin = copy.deepcopy(module).to(device)
            twin.zero_grad(set_to_none=True)
            got, got_grads = _run_layer(twin, x.to(device), kwargs, bf16=mode == "bf16")
            grad_err = max(rel_err(g, w) for g, w in zip(got_grads, want_grads) if w is not None)
            tol = TOLERANCE["fp32" if name == "fftconv" else mode]  # fftconv computes in fp32 even under autocast
            out_dtype = str(got.dtype).split(".")[1]
            rows.append(_verdict(name, mode, device, rel_err(got, want), grad_err, tol, **{"out dtype": out_dtype}))
    return rows


# ---------------------------------------------------------------- benchmarks


def scan_bench(plan: Plan, shape: tuple[int, int, int], method: str, peak: float | None, timeout_s: float):
    """One `layers_fftconv_scan` scan case (complex64 states, its own process) with its bandwidth."""
    batch, length, states = shape
    spec = {"kind": "scan", "method": method, "complex": True, "batch": batch, "length": length, "width": states}
    spec.update(device=plan.device, threads=plan.threads, repeats=2 if plan.quick else 10)
    result = layers_fftconv_scan.run_case(spec, timeout_s, plan.mem_cap_gb)
    if "skipped" in result:
        return result
    gb_s = SCAN_TENSOR_PASSES * batch * length * states * 8 / (result["ms"] / 1e3) / 1e9  # complex64: 8 bytes
    return [
        {
            "B x L x S": "x".join(map(str, shape)),
            "method": method,
            "ms": result["ms"],
            "first call ms": result["first_ms"],
            "peak MB": result["peak_mb"],
            "GB/s": gb_s,
            "peak / effective": peak / gb_s if peak else None,
        }
    ]


def mamba_case(impl: str, length: int, d_model: int, batch: int, device: str, repeats: int) -> list[Row]:
    """One Mamba block fwd+bwd; impl: "mamba-ssm", "pure" (chunked selective scan) or "linear_scan"."""
    torch.manual_seed(0)
    block = mamba_layer.Mamba(d_model, use_kernels=impl == "mamba-ssm").to(device)
    hidden = torch.randn(batch, length, d_model, device=device, requires_grad=True)
    scan = layers_mamba.naive_selective_scan if impl == "linear_scan" else mamba_layer.selective_scan

    def run() -> None:
        with mock.patch.object(mamba_layer, "selective_scan", scan):
            block(hidden).square().mean().backward()

    row = harness.measure(run, repeats, device)
    return [{"impl": impl, "L": length, "d_model": d_model, "batch": batch, "ms": row["ms"], "peak MB": row["peak_mb"]}]


def mamba_ssm_missing() -> str | None:
    """Why mamba-ssm's kernels are unavailable here, or None."""
    if mamba_layer.has_mamba_kernels():
        return None
    for module in ("mamba_ssm", "causal_conv1d"):
        try:
            __import__(module)
        except Exception as err:  # an ImportError, or a built extension that does not load
            return f"skipped: {module} does not import ({type(err).__name__}: {str(err)[:80]})"
    return "skipped: mamba-ssm kernels unavailable"


S5_MODELS = (
    "s5_rl (4 x 256)",
    "GRU (4 x 256)",
    "LSTM (4 x 256)",
    "S5 block (1 x 256)",
    "GRU (1 x 256)",
    "LSTM (1 x 256)",
)


def s5_case(model: str, length: int, batch: int, device: str, repeats: int) -> list[Row]:
    """One training step (layers_s5.train_step) of an S5 model or an RNN of width 256."""
    torch.manual_seed(0)
    kind, depth = model.split(" (")[0], int(model.split("(")[1][0])
    if kind == "s5_rl":
        net = create_model("s5_rl", in_features=256)
    elif kind == "S5 block":
        net = S5Block(256, 256)
    else:
        net = layers_s5._RNN(kind, 256, depth)  # torch.nn.GRU / LSTM: cuDNN on CUDA
    net = net.to(device)
    gen = torch.Generator().manual_seed(0)
    x, target = (torch.randn(batch, length, 256, generator=gen).to(device) for _ in range(2))
    row = harness.measure(layers_s5.train_step(net, x, target), repeats, device)
    params = sum(p.numel() for p in net.parameters())
    return [
        {"model": model, "L x B": f"{length} x {batch}", "params": params, "ms": row["ms"], "peak MB": row["peak_mb"]}
    ]


def hyena_case(family: str, length: int, device: str, cap_s: float, tokens_per_step: int | None) -> list[Row]:
    """`benchmarks.genomics.train_case` (one next-nucleotide training step) at `length` tokens."""
    if tokens_per_step:  # the --quick CPU run: a tiny batch (this process is the case's own)
        genomics.TOKENS_PER_STEP = tokens_per_step
    row = genomics.train_case(family, length, device, None, cap_s)
    label = {"hyenadna": "HyenaDNA", "transformer": "Transformer"}[family]
    return [
        {
            "model": label,
            "length": length,
            "batch": row["batch"],
            "ms": row["ms"],
            "tokens/s": row["tokens_per_s"],
            "peak MB": row["peak_mb"],
        }
    ]


def rl_case(core: str, envs: int, steps: int, device: str, repeats: int) -> list[Row]:
    """Full PPO iterations and rollouts on popgym/RepeatPrevious with one policy core (rl_speed's `--cores` rows)."""
    # the domain's models register through pyproject entry points; a checkout that is not pip-installed needs these
    import domains.rl.policy_cores
    import domains.rl.s5_policy  # noqa: F401

    t = rl_speed.core_timings(core, envs, steps, device, repeats)
    return [
        {
            "core": core,
            "envs x steps": f"{envs} x {steps}",
            "params": t["params"],
            "PPO iteration ms": 1e3 * t["iteration_wall"],
            "PPO steps/s": envs * steps / t["iteration_wall"],
            "rollout steps/s": envs * steps / t["rollout_wall"],
        }
    ]


def deliberate_failure() -> list[Row]:
    raise RuntimeError("deliberate failure (--inject-failure)")


# ---------------------------------------------------------------- the plan


def plan_cases(plan: Plan, device_name: str | None = None, inject_failure: bool = False) -> list[Case]:
    """Every case in run order: the quick correctness checks first, the pytest runs that repeat them last."""
    cuda, quick, iso, device = plan.device == "cuda", plan.quick, plan.isolated, plan.device
    runs_here = cuda or quick  # full sizes are GPU sizes: without CUDA, only --quick runs anything
    cuda_only = (lambda run: run) if cuda else (lambda run: no_cuda)
    cpu_ok = (lambda run: run) if runs_here else (lambda run: no_cuda)
    cases: list[Case] = []

    def add(section: str, name: str, run, timeout_s: float, labels: dict | None = None, **kw) -> None:
        cases.append(Case(section, name, run, timeout_s, labels or {"check": name}, **kw))

    # checks
    methods = ["loop", "chunked", "parallel", "auto"] + (["triton"] if cuda else [])
    add(
        "checks",
        "linear_scan methods vs sequential (CPU)",
        cpu_ok(iso(scan_parity, device=device, methods=methods)),
        90,
        check=True,
    )
    layers = ["fftconv", "S5", "S5 block", "Mamba (pure PyTorch)", "mLSTM layer", "sLSTM layer"]
    add(
        "checks",
        "layers vs the same layers on the CPU",
        cpu_ok(iso(layer_parity, device=device, layers=layers)),
        120,
        check=True,
    )
    triton_cases = partial(pytest_case, ["-m", "", "tests/triton_scan_cases.py"])
    add("checks", "pytest tests/triton_scan_cases.py (compiled kernel)", cuda_only(triton_cases), 180, check=True)
    if inject_failure:
        add("checks", "deliberate failure", iso(deliberate_failure), 30, check=True)

    # scan
    peak = peak_bandwidth_gb_s(device_name)
    shapes = [(2, 64, 8), (1, 256, 4)] if quick else [(32, 1024, 64), (4, 4096, 64), (1, 16384, 64), (1, 2**20, 16)]
    for shape in shapes:
        for method in ("triton", "parallel", "chunked"):
            run = partial(scan_bench, plan, shape, method, peak)
            name = "x".join(map(str, shape))
            labels = {"B x L x S": name, "method": method}
            add("scan", f"{method} {name}", cuda_only(run) if method == "triton" else cpu_ok(run), 45, labels)

    # mamba
    lengths, (d_model, batch), repeats = ([64], (32, 1), 1) if quick else ([1024, 4096, 16384], (256, 4), 5)
    missing = mamba_ssm_missing() if cuda else None
    for length in lengths:
        for impl in ("mamba-ssm", "pure", "linear_scan"):
            kwargs = dict(impl=impl, length=length, d_model=d_model, batch=batch, device=device, repeats=repeats)
            run = cpu_ok(iso(mamba_case, **kwargs))
            if impl == "mamba-ssm":
                run = partial(_static_skip, missing) if missing else cuda_only(run)
            add("mamba", f"{impl} L={length}", run, 60, {"impl": impl, "L": length}, chain=f"mamba {impl}")

    # s5
    for length in [64] if quick else [1024, 4096]:
        for model in S5_MODELS:
            kwargs = dict(model=model, length=length, batch=2 if quick else 8, device=device, repeats=2 if quick else 5)
            add("s5", f"{model} L={length}", cpu_ok(iso(s5_case, **kwargs)), 60, {"model": model, "L": length})

    # hyena
    for length in [128, 256] if quick else [1024, 32768, 160_000, 2**20]:
        for family in ("hyenadna", "transformer"):
            timeout = 90 if length >= 2**20 and family == "transformer" else 60
            # cap_s: a first step past it is skipped; train_case times its 3 steps within 3 x cap_s
            kwargs = dict(family=family, length=length, device=device, cap_s=timeout / 5)
            run = cpu_ok(iso(hyena_case, **kwargs, tokens_per_step=256 if quick else None))
            label = {"model": "HyenaDNA" if family == "hyenadna" else "Transformer", "length": length}
            add("hyena", f"{family} L={length}", run, timeout, label, chain=f"hyena {family}")

    # rl
    envs, steps, repeats = (8, 16, 1) if quick else (1024, 128, 2)
    for core in ("s5", "gru"):
        run = cpu_ok(iso(rl_case, core=core, envs=envs, steps=steps, device=device, repeats=repeats))
        add("rl", f"PPO {core}, {envs} envs", run, 120, {"core": core, "envs x steps": f"{envs} x {steps}"})

    # last, the pytest runs that repeat the checks above: tests/test_scan_triton.py runs the Triton cases
    # twice more (in subprocesses) besides its CPU tests
    args, name = ["-m", "", "tests/test_scan_triton.py"], "pytest tests/test_scan_triton.py"
    if quick and not cuda:  # the runner's own check here: one CPU test through pytest and its junit XML
        args, name = ["tests/test_scan_triton.py", "-k", "refused"], "pytest tests/test_scan_triton.py -k refused (CPU)"
    add("checks", name, cpu_ok(partial(pytest_case, args)), 240, check=True)
    gpu_tests = [f"tests/test_{name}.py" for name in ("scan", "fftconv", "ssm", "mamba", "xlstm")]
    name = "pytest -m gpu: scan, fftconv, S5, Mamba, xLSTM tests"
    add("checks", name, cuda_only(partial(pytest_case, ["-m", "gpu", *gpu_tests])), 120, check=True)
    return cases


def _static_skip(reason: str, _timeout_s: float) -> dict:
    return {"skipped": reason}


# ---------------------------------------------------------------- running and recording

CHAIN_STOPS = re.compile(r"^skipped: (>|\d|out of GPU memory)")  # ran out of time or memory: larger sizes would too


def run_cases(cases: list[Case], budget_s: float, on_record: Callable[[list[dict]], None]) -> list[dict]:
    """Run each case within the pass's budget; never stops on a failure. `on_record` sees the records so far."""
    deadline, stopped, records = time.monotonic() + budget_s, {}, []
    for case in cases:
        start = time.monotonic()
        if case.chain in stopped:
            result = {"skipped": f"skipped: not run, a smaller size was ({stopped[case.chain]})"}
        elif deadline - start < MIN_CASE_S:
            result = {"skipped": f"skipped: the pass's budget of {budget_s:g} s was spent"}
        else:
            try:
                result = case.run(min(case.timeout_s, deadline - start))
            except Exception as err:  # the runner's own side of a case broke: record it, go on
                result = {"skipped": f"failed: {type(err).__name__}: {err}"[:200]}
        record = _record(case, result, time.monotonic() - start)
        if case.chain and record["status"] == "skipped" and CHAIN_STOPS.match(record["reason"]):
            stopped[case.chain] = record["reason"]
        records.append(record)
        print(f"[{record['status']:>7}] {case.section}: {case.name} ({record['seconds']:.1f} s) {record['reason']}")
        if record["status"] == "failed" and record.get("traceback"):
            print("    " + "\n    ".join(record["traceback"].strip().splitlines()[-6:]))
        sys.stdout.flush()
        on_record(records)
    return records


def _record(case: Case, result: Any, seconds: float) -> dict:
    """status ok / skipped / failed and why, from a case's rows or its {"skipped": why}."""
    log = result.get("traceback") if isinstance(result, dict) else None
    if isinstance(result, dict) and "skipped" in result:
        reason, rows = str(result["skipped"]), []
        status = "failed" if reason.startswith("failed") else "skipped"
        if case.check and reason.startswith("skipped: >"):
            status = "failed"  # a check that did not finish checked nothing
    elif isinstance(result, list):
        rows = result
        failed = [row for row in rows if row.get("status") == "failed"]
        status = "failed" if failed else "ok"
        reason = f"{len(failed)} of {len(rows)} rows failed" if failed else ""
    else:
        status, reason, rows = "failed", f"failed: a case returned {type(result).__name__}", []
    return {
        "section": case.section,
        "name": case.name,
        "labels": case.labels,
        "status": status,
        "reason": reason,
        "seconds": round(seconds, 2),
        "rows": rows,
        **({"traceback": log} if log else {}),
    }


# ---------------------------------------------------------------- tables


def section_rows(section: str, records: list[dict]) -> list[Row]:
    """The section's table: every case's rows, or its labels with why it has none; ratios where both sides ran."""
    rows = []
    for record in records:
        if record["section"] != section:
            continue
        if record["rows"]:
            rows += [{k: v for k, v in row.items() if not k.startswith("_")} for row in record["rows"]]
        else:
            rows.append({**record["labels"], "status": record["status"], "reason": record["reason"]})
    derive = {"scan": _scan_ratios, "mamba": _mamba_ratios, "s5": _s5_ratios, "hyena": _hyena_ratios, "rl": _rl_ratios}
    if section in derive:
        derive[section](rows)
    return rows


def _ms(rows: list[Row], **match) -> float | None:
    found = [row.get("ms") for row in rows if all(row.get(k) == v for k, v in match.items())]
    return found[0] if found and isinstance(found[0], float) else None


def _put_ratio(row: Row, key: str, numerator: float | None, denominator: float | None) -> None:
    if isinstance(numerator, float) and isinstance(denominator, float) and denominator > 0:
        row[key] = numerator / denominator


def _scan_ratios(rows: list[Row]) -> None:
    for row in rows:
        _put_ratio(row, "ms / parallel", row.get("ms"), _ms(rows, method="parallel", **{"B x L x S": row["B x L x S"]}))


def _mamba_ratios(rows: list[Row]) -> None:
    for row in rows:
        _put_ratio(row, "ms / pure", row.get("ms"), _ms(rows, impl="pure", L=row["L"]))


def _s5_ratios(rows: list[Row]) -> None:
    for row in rows:
        s5 = "s5_rl (4 x 256)" if "(4 x" in row["model"] else "S5 block (1 x 256)"
        if row["model"] != s5:
            _put_ratio(row, "RNN / S5", row.get("ms"), _ms(rows, model=s5, **{"L x B": row.get("L x B")}))


def _hyena_ratios(rows: list[Row]) -> None:
    """Transformer ms / HyenaDNA ms; a Transformer past its cap gives a lower bound from the cap's seconds."""
    for row in rows:
        if row["model"] != "Transformer":
            continue
        hyena = _ms(rows, model="HyenaDNA", length=row["length"])
        if "ms" in row:
            _put_ratio(row, "Transformer / HyenaDNA", row["ms"], hyena)
        elif hyena and (seconds := re.match(r"^skipped: >?([\d.]+) s", row.get("reason", ""))):
            row["Transformer / HyenaDNA"] = f">= {1e3 * float(seconds.group(1)) / hyena:.0f} (attention past its cap)"


def _rl_ratios(rows: list[Row]) -> None:
    gru = [row.get("PPO steps/s") for row in rows if row.get("core") == "gru"]
    for row in rows:
        if row.get("core") == "s5" and gru:
            _put_ratio(row, "S5 / GRU steps/s", row.get("PPO steps/s"), gru[0])


# ---------------------------------------------------------------- report


def report(header: dict, records: list[dict], sections: list[str]) -> tuple[dict, str]:
    """results.json's object and results.md's text."""
    counts = {status: sum(r["status"] == status for r in records) for status in ("ok", "skipped", "failed")}
    tables = [
        {"key": key, "title": SECTIONS[key][0], "goal": SECTIONS[key][1], "rows": section_rows(key, records)}
        for key in sections
    ]
    results = {**header, "counts": counts, "sections": tables, "cases": records}
    lines = [
        f"# GPU pass: {header['device'] or 'no CUDA'}",
        "",
        f"Command: `{header['command']}`; started {header['started']}, {header['duration_s']:.0f} s of a "
        f"{header['budget_s']:g} s budget. Machine: {header['machine']}. Peak memory bandwidth: "
        + (f"{header['peak_GB_s']:g} GB/s." if header["peak_GB_s"] else "unknown (not in PEAK_GB_S)."),
        "",
        f"Cases: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed. Failed: "
        + (
            "; ".join(f"{r['section']}: {r['name']} ({r['reason']})" for r in records if r["status"] == "failed")
            or "none"
        )
        + ".",
    ]
    for table in tables:
        lines += ["", f"## {table['title']}", "", f"Goal: {table['goal']}.", "", harness.markdown_table(table["rows"])]
    return results, "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for results.json and results.md")
    parser.add_argument(
        "--budget-s", type=float, default=480.0, help="seconds for the whole pass; cases left over are skipped"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (on a machine without CUDA: a self-test)")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only")
    parser.add_argument("--list", action="store_true", help="print the cases and their time caps, run nothing")
    parser.add_argument("--inject-failure", action="store_true", help=argparse.SUPPRESS)  # tests/test_gpu_pass.py
    args = parser.parse_args(argv)
    plan = Plan("cuda" if torch.cuda.is_available() else "cpu", args.quick)
    device_name = torch.cuda.get_device_name() if plan.device == "cuda" else None
    sections = args.only or list(SECTIONS)
    cases = [c for c in plan_cases(plan, device_name, args.inject_failure) if c.section in sections]
    if args.list:
        for case in cases:
            print(f"{case.section:>6}  {case.timeout_s:>4g} s  {case.name}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    header = {
        "command": " ".join(["python -m benchmarks.gpu_pass", *(sys.argv[1:] if argv is None else argv)]),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": harness.machine_description(plan.threads),
        "device": device_name,
        "peak_GB_s": peak_bandwidth_gb_s(device_name),
        "budget_s": args.budget_s,
    }

    def write(records: list[dict]) -> None:
        results, markdown = report({**header, "duration_s": time.monotonic() - start}, records, sections)
        _write(out / "results.json", json.dumps(results, indent=1, default=str) + "\n")
        _write(out / "results.md", markdown)

    print(header["machine"], flush=True)
    write(run_cases(cases, args.budget_s, write))
    print(f"\nwritten: {out / 'results.json'}, {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    # Case processes get the case functions as benchmarks.gpu_pass.*, not __main__.*; without a module spec
    # here they re-run this file by path, where re-running it by module name would warn in every case.
    sys.modules["__main__"].__spec__ = None
    from benchmarks import gpu_pass

    sys.exit(gpu_pass.main())
