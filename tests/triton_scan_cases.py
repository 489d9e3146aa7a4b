"""Cases for the Triton scan kernel against the sequential reference, values and gradients.

Run by `tests/test_scan_triton.py` in a subprocess. Without CUDA the kernel runs in
Triton's CPU interpreter, which must be switched on (TRITON_INTERPRET=1) before
`triton` is first imported: hence a process of its own. With CUDA it runs compiled.
"""

import os

import pytest
import torch

from tests.test_scan import grads, make_inputs
from zoo.layers import scan as scan_module
from zoo.layers import scan_triton
from zoo.layers.scan import linear_scan

pytest.importorskip("triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip(
        "without CUDA these cases need TRITON_INTERPRET=1 from the start of the process", allow_module_level=True
    )


def on_device(*tensors):
    return [None if t is None else t.to(DEVICE) for t in tensors]


@pytest.mark.parametrize("dtype,real_a", [(torch.float32, False), (torch.complex64, False), (torch.complex64, True)])
@pytest.mark.parametrize(
    "length,with_reset,with_h0,broadcast_a", [(1, True, True, False), (37, True, True, True), (40, False, False, False)]
)
def test_values_and_gradients_match_sequential(dtype, real_a, length, with_reset, with_h0, broadcast_a):
    a, b, h0, reset = on_device(*make_inputs(length, dtype, state=11, broadcast_a=broadcast_a, real_a=real_a))
    h0, reset = (h0 if with_h0 else None), (reset if with_reset else None)
    ref, ref_grads = grads("sequential", a, b, h0, reset)
    out, out_grads = grads("triton", a, b, h0, reset)
    assert out.dtype == ref.dtype and out.shape == b.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(out_grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_float64_at_the_gpu_tile_sizes(dtype):
    """The default (GPU) tiles, 64 steps x 32 channels, several tiles in both directions, to 1e-10."""
    a, b, h0, reset = on_device(*make_inputs(150, dtype, batch=2, state=40))
    ref = linear_scan(a, b, reset, h0, "sequential")
    blocks = (scan_triton.BLOCK_L, scan_triton.BLOCK_N)
    a_f, b_f, _ = scan_module._prepare(a, b, reset, h0)
    out = scan_triton.triton_kernel(a_f, scan_module._fold_initial_state(a_f, b_f, h0), blocks=blocks)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    adjoint = scan_triton.triton_kernel(a_f.conj(), b_f, reverse=True, blocks=blocks)
    torch.testing.assert_close(
        adjoint, scan_module._loop_kernel(a_f.conj().resolve_conj(), b_f, True), atol=1e-10, rtol=1e-10
    )
