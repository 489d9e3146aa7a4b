"""The `linear_scan` kernel in Triton: the fused fast path for CUDA.

One program owns a batch row and a block of state channels and walks the
sequence in tiles of `BLOCK_L` steps. Inside a tile the recurrence is a
parallel prefix scan (`tl.associative_scan`) with the first-order operator
``(a_l, b_l) . (a_r, b_r) = (a_r a_l, a_r b_l + b_r)`` (Blelloch 1990, "Prefix
sums and their applications"; the operator S5 scans with, Smith et al., ICLR
2023); between tiles the state is carried in registers. So `a`, `b` and the
states each cross memory once, where the pure-torch paths materialise
intermediates per level or per chunk. Complex states are scanned as (real,
imaginary) pairs, since Triton has no complex type.

It has the signature of the kernels in `zoo.layers.scan` (`kernel(a, b,
reverse)`, no autograd): forward ``h_t = a_t h_{t-1} + b_t`` from zero, and
with ``reverse=True`` the adjoint ``h_t = a_{t+1} h_{t+1} + b_t`` from zero,
which `_AdjointScan` uses for the backward pass.

With ``TRITON_INTERPRET=1`` set before the first call, Triton's interpreter
runs the same kernel on CPU tensors: that is how it is tested on machines
without a GPU (`tests/test_scan_triton.py`, against the sequential reference).
"""

from __future__ import annotations

import functools
import os

import torch

from zoo.errors import ZooError

BLOCK_L = 64  # steps per tile: one associative scan
BLOCK_N = 32  # state channels per program
# Triton's interpreter scans a tile element by element in Python (~1 s per 64 x 32 complex tile):
# small tiles keep CPU tests quick and exercise the carry between tiles more often.
INTERPRETER_BLOCKS = (16, 8)


def available() -> bool:
    """Whether the `triton` package imports (it ships with PyTorch's CUDA builds)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@functools.cache
def _kernel():
    """Import (and so decorate) the kernel on first use: TRITON_INTERPRET is read when `triton.jit` runs."""
    from zoo.layers import _scan_triton_kernel

    return _scan_triton_kernel.scan


def _flat_real(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(B, L, N) view (real numbers; complex as pairs) and its (batch, step, channel) strides in real elements."""
    x = x.reshape(x.shape[0], x.shape[1], -1)
    if x.is_complex():
        x = torch.view_as_real(x.resolve_conj())
        return x, (x.stride(0), x.stride(1), x.stride(2))
    return x, x.stride()


def triton_kernel(
    a: torch.Tensor, b: torch.Tensor, reverse: bool = False, blocks: tuple[int, int] | None = None
) -> torch.Tensor:
    """`linear_scan`'s kernel contract (see the module docstring) on CUDA, or on CPU under TRITON_INTERPRET=1.

    blocks: (steps per tile, channels per program), powers of two; default `(BLOCK_L, BLOCK_N)`,
    or `INTERPRETER_BLOCKS` in the interpreter.
    """
    if not available():
        raise ZooError(
            "scan method 'triton' needs the triton package (it comes with PyTorch's CUDA builds); use method='parallel'"
        )
    if b.device.type != "cuda" and not interpreting():
        raise ZooError(
            f"scan method 'triton' runs on CUDA tensors, got {b.device}; use method='auto' "
            "(or set TRITON_INTERPRET=1 to run the kernel in Triton's CPU interpreter, for testing)"
        )
    shape = torch.broadcast_shapes(a.shape, b.shape)
    if b.is_complex() and not a.is_complex():
        a = a.to(b.dtype)  # a real decay on a complex state: scan it as complex with zero imaginary part
    a, b = torch.broadcast_to(a, shape), torch.broadcast_to(b, shape)
    out = torch.empty(shape, dtype=b.dtype, device=b.device)
    (a_r, a_s), (b_r, b_s), (o_r, o_s) = _flat_real(a), _flat_real(b), _flat_real(out)
    batch, length, width = o_r.shape[:3]
    if length == 0 or batch == 0 or width == 0:
        return out
    tile_l, tile_n = blocks or (INTERPRETER_BLOCKS if interpreting() else (BLOCK_L, BLOCK_N))
    grid = (batch, -(-width // tile_n))
    _kernel()[grid](
        a_r,
        b_r,
        o_r,
        length,
        width,
        *a_s,
        *b_s,
        *o_s,
        COMPLEX=b.is_complex(),
        REVERSE=reverse,
        TILE_L=tile_l,
        TILE_N=tile_n,
    )
    return out
