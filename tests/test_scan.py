"""Every scan method against the sequential reference, in values and gradients, with resets."""

import pytest
import torch

from zoo.errors import ZooError
from zoo.layers import scan as scan_module
from zoo.layers.scan import (
    SCAN_METHODS,
    associative_scan_with_resets,
    complex_scan_as_real,
    linear_scan,
    scan_method_for,
)

FAST_METHODS = ["loop", "chunked", "parallel"]


def make_inputs(length, dtype, batch=2, state=3, broadcast_a=False, real_a=False, seed=0):
    """Stable decays |a| in [0.5, 1) and random inputs; a is (1, L, S) when broadcast."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    a = 0.5 + 0.5 * torch.rand(1 if broadcast_a else batch, length, state, generator=gen, dtype=real)
    if dtype.is_complex and not real_a:
        a = a * torch.exp(1j * 3 * torch.rand(a.shape, generator=gen, dtype=real))
    b = torch.randn(batch, length, state, generator=gen, dtype=dtype)
    h0 = torch.randn(batch, state, generator=gen, dtype=dtype)
    reset = torch.rand(batch, length, generator=gen) < 0.25
    return a, b, h0, reset


def grads(method, a, b, h0, reset, fn=linear_scan):
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    h0 = None if h0 is None else h0.clone().requires_grad_()
    h = fn(a, b, reset, h0, method) if fn is linear_scan else fn(a, b, reset, h0)
    # drawn on the CPU, then moved: the same output gradient whatever device the scan ran on
    out_grad = torch.randn(h.shape, generator=torch.Generator().manual_seed(7), dtype=h.dtype).to(h.device)
    inputs = [x for x in (a, b, h0) if x is not None]
    return h, torch.autograd.grad(h, inputs, out_grad)


CASES = [  # length, with reset, with h0, broadcast a
    (1, False, False, False),
    (1, True, True, False),
    (5, False, True, True),
    (37, True, False, False),
    (37, True, True, True),
    (70, False, False, False),
    (70, True, True, False),
]


@pytest.mark.parametrize("method", FAST_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("length,with_reset,with_h0,broadcast_a", CASES)
def test_forward_matches_sequential_fp32(method, dtype, length, with_reset, with_h0, broadcast_a):
    a, b, h0, reset = make_inputs(length, dtype, broadcast_a=broadcast_a)
    h0, reset = (h0 if with_h0 else None), (reset if with_reset else None)
    ref = linear_scan(a, b, reset, h0, "sequential")
    out = linear_scan(a, b, reset, h0, method)
    assert out.dtype == dtype and out.shape == b.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", FAST_METHODS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("length,with_reset,with_h0,broadcast_a", CASES)
def test_gradients_match_sequential(method, dtype, length, with_reset, with_h0, broadcast_a):
    a, b, h0, reset = make_inputs(length, dtype, broadcast_a=broadcast_a, seed=length)
    h0, reset = (h0 if with_h0 else None), (reset if with_reset else None)
    ref_h, ref_grads = grads("sequential", a, b, h0, reset)
    h, our_grads = grads(method, a, b, h0, reset)
    torch.testing.assert_close(h, ref_h, atol=1e-10, rtol=1e-10)
    for ours, ref in zip(our_grads, ref_grads):
        assert ours.shape == ref.shape and ours.dtype == ref.dtype
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("method", FAST_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_gradients_match_sequential_fp32(method, dtype):
    a, b, h0, reset = make_inputs(45, dtype, broadcast_a=True)
    ref_h, ref_grads = grads("sequential", a, b, h0, reset)
    _, our_grads = grads(method, a, b, h0, reset)
    for ours, ref in zip(our_grads, ref_grads):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_real_decay_with_complex_state(method):
    a, b, h0, reset = make_inputs(23, torch.complex128, real_a=True)
    assert not a.is_complex()
    ref_h, ref_grads = grads("sequential", a, b, h0, reset)
    h, our_grads = grads(method, a, b, h0, reset)
    torch.testing.assert_close(h, ref_h)
    assert not our_grads[0].is_complex()
    for ours, ref in zip(our_grads, ref_grads):
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_complex_decay_with_real_input(method):
    a, _, h0, reset = make_inputs(21, torch.complex128)
    b = torch.randn(2, 21, 3, dtype=torch.float64)
    ref_h, ref_grads = grads("sequential", a, b, h0, reset)
    h, our_grads = grads(method, a, b, h0, reset)
    assert h.dtype == torch.complex128 and our_grads[1].dtype == torch.float64
    torch.testing.assert_close(h, ref_h)
    for ours, ref in zip(our_grads, ref_grads):
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_time_invariant_and_low_rank_decay(method):
    """a as (B, 1, S) (constant in time) and as (S,) broadcast like numpy."""
    _, b, h0, reset = make_inputs(19, torch.float64)
    for a in (0.9 * torch.ones(2, 1, 3, dtype=torch.float64), torch.tensor([0.5, 0.8, 0.99], dtype=torch.float64)):
        expanded = torch.broadcast_to(a, b.shape).contiguous()
        ref_h, ref_grads = grads("sequential", expanded, b, h0, reset)
        h, our_grads = grads(method, a, b, h0, reset)
        torch.testing.assert_close(h, ref_h)
        assert our_grads[0].shape == a.shape
        torch.testing.assert_close(our_grads[0], ref_grads[0].sum_to_size(a.shape))


def test_sequential_is_the_recurrence():
    """The reference itself against the formula, written out step by step."""
    a, b, h0, reset = make_inputs(9, torch.complex128)
    h = linear_scan(a, b, reset, h0, "sequential")
    state = h0
    for t in range(9):
        state = a[:, t] * (~reset[:, t, None]) * state + b[:, t]
        torch.testing.assert_close(h[:, t], state)


@pytest.mark.parametrize("method", ["sequential"] + FAST_METHODS)
def test_reset_restarts_like_a_fresh_run(method):
    a, b, h0, _ = make_inputs(40, torch.complex64)
    reset = torch.zeros(2, 40, dtype=torch.bool)
    reset[0, 13] = reset[1, 29] = True
    h = linear_scan(a, b, reset, h0, method)
    for row, start in ((0, 13), (1, 29)):
        fresh = linear_scan(a[row : row + 1, start:], b[row : row + 1, start:], method=method)
        torch.testing.assert_close(h[row : row + 1, start:], fresh, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h[1:, :29], linear_scan(a[1:, :29], b[1:, :29], None, h0[1:], method))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("with_h0", [False, True])
def test_folded_reset_equals_explicit_reset_operator(dtype, with_h0):
    """Lu et al.'s operator with an explicit flag (no folding) gives the same outputs and gradients."""
    a, b, h0, reset = make_inputs(29, dtype, seed=3)
    reset[:, 0] = torch.tensor([True, False])
    h0 = h0 if with_h0 else None
    ref_h, ref_grads = grads(None, a, b, h0, reset, fn=associative_scan_with_resets)
    for method in ["sequential", "loop"]:
        h, our_grads = grads(method, a, b, h0, reset)
        torch.testing.assert_close(h, ref_h)
        for ours, ref in zip(our_grads, ref_grads):
            torch.testing.assert_close(ours, ref)


def test_half_precision_is_computed_in_fp32():
    a, b, _, reset = make_inputs(50, torch.float32)
    out = linear_scan(a.bfloat16(), b.bfloat16(), reset, method="loop")
    assert out.dtype == torch.bfloat16
    ref = linear_scan(a.bfloat16().float(), b.bfloat16().float(), reset, method="loop")
    torch.testing.assert_close(out, ref.bfloat16(), atol=0, rtol=0)


def test_complex_scan_as_real_matches():
    a, b, h0, reset = make_inputs(37, torch.complex128, broadcast_a=True)
    ref_h, ref_grads = grads("sequential", a, b, h0, reset)
    h, our_grads = grads(None, a, b, h0, reset, fn=complex_scan_as_real)
    torch.testing.assert_close(h, ref_h)
    for ours, ref in zip(our_grads, ref_grads):
        torch.testing.assert_close(ours, ref)


def test_complex_scan_as_real_falls_back_when_compile_fails(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(scan_module, "_compiled_step", None)
    a, b, h0, reset = make_inputs(40, torch.complex64)
    with pytest.warns(UserWarning, match="running eagerly"):
        h = complex_scan_as_real(a, b, reset, h0, compile=True)
    torch.testing.assert_close(h, linear_scan(a, b, reset, h0, "sequential"), atol=1e-5, rtol=1e-5)


def test_auto_method_rule_and_env_override(monkeypatch):
    assert set(FAST_METHODS + ["sequential", "auto", "triton"]) == set(SCAN_METHODS)
    on_cuda = "triton" if scan_module.scan_triton.available() else "parallel"
    assert scan_method_for("cuda", 100) == on_cuda and scan_method_for(torch.device("cuda", 0), 10**6) == on_cuda
    assert scan_method_for("cpu", 10) == "loop" and scan_method_for("cpu", 1024, width=4096) == "loop"
    assert scan_method_for("cpu", 1024) == "chunked" and scan_method_for("cpu", 10**6, width=128) == "chunked"
    a, b, _, _ = make_inputs(8, torch.float32)
    b.requires_grad_()
    monkeypatch.delenv("ZOO_SCAN_METHOD", raising=False)
    assert "AdjointScan" in type(linear_scan(a, b).grad_fn).__name__
    monkeypatch.setenv("ZOO_SCAN_METHOD", "sequential")
    assert "Stack" in type(linear_scan(a, b).grad_fn).__name__
    assert "AdjointScan" in type(linear_scan(a, b, method="parallel").grad_fn).__name__
    monkeypatch.setenv("ZOO_SCAN_METHOD", "fastest")
    with pytest.raises(ZooError, match="ZOO_SCAN_METHOD"):
        linear_scan(a, b)


def test_bad_arguments_raise_zoo_error():
    a, b, h0, reset = make_inputs(8, torch.float32)
    with pytest.raises(ZooError, match="unknown method"):
        linear_scan(a, b, method="magic")
    with pytest.raises(ZooError, match="reset"):
        linear_scan(a, b, reset[:, :4])
    with pytest.raises(ZooError, match="h0"):
        linear_scan(a, b, h0=h0[:1])
    with pytest.raises(ZooError, match="broadcast"):
        linear_scan(a[:, :5], b)


@pytest.mark.slow
def test_complex_scan_as_real_compiled_matches():
    """The torch.compile path itself (tens of seconds of compilation on a small CPU)."""
    a, b, h0, reset = make_inputs(40, torch.complex64)
    ref_h, ref_grads = grads("sequential", a, b, h0, reset)
    h, our_grads = grads(None, a, b, h0, reset, fn=lambda a, b, r, h0: complex_scan_as_real(a, b, r, h0, compile=True))
    torch.testing.assert_close(h, ref_h, atol=1e-5, rtol=1e-5)
    for ours, ref in zip(our_grads, ref_grads):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
