"""The diagonal linear recurrence `h_t = a_t * h_{t-1} + b_t`, with episode resets.

Every recurrent layer of the zoo (S5, ConvS5, Mamba, xLSTM's parallel form)
reduces to this scan over real or complex states. `linear_scan` runs it with
one of several interchangeable methods, all tested against the plain loop:

- ``"sequential"``: the reference, a Python loop that autograd differentiates.
- ``"loop"``: the same loop without autograd; the backward pass is hand-written.
  The adjoint of a linear recurrence is the same recurrence run in reverse,
  ``dh_t = g_t + conj(a_{t+1}) dh_{t+1}``, ``db_t = dh_t``,
  ``da_t = dh_t conj(h_{t-1})`` (PyTorch's conjugate-Wirtinger convention), so
  only `a` and the outputs are kept for backward.
- ``"chunked"``: the sequence is cut into chunks of ~sqrt(L/3) steps. Pass 1
  runs every chunk at once from a zero state, keeping only each chunk's end
  state and total decay; a short loop carries the true state across chunks;
  pass 2 reruns every chunk from its incoming state straight into the output.
  ~4 sqrt(L/3) Python steps instead of L, for three times the arithmetic.
- ``"parallel"``: the log-depth odd-even associative scan (Blelloch 1990, "Prefix
  sums and their applications"; used for S5 by Smith et al., "Simplified State
  Space Layers for Sequence Modeling", ICLR 2023) in pure torch: the GPU path
  when Triton is missing.
- ``"triton"``: one fused Triton kernel (`zoo.layers.scan_triton`): tiles of
  steps scanned in parallel, the state carried between tiles in registers. The
  CUDA fast path; on CPU it runs only in Triton's interpreter, which is how it
  is tested against the reference here (no GPU was available to time it).

Resets follow Lu et al., "Structured State Space Models for In-Context
Reinforcement Learning", NeurIPS 2023: ``reset[:, t]`` restarts the state before
step t. Their associative operator carries an explicit reset flag
(`reset_operator`); folding the flag into the decay, ``a_t <- a_t (1 - d_t)``,
gives the same outputs and gradients with the plain operator and is what every
method uses. `associative_scan_with_resets` evaluates the explicit operator
(Hillis-Steele order) as an independent reference.

`method="auto"` takes ``$ZOO_SCAN_METHOD`` when set, else `scan_method_for`:
on CUDA "triton" when the package imports (it ships with PyTorch's CUDA
builds; should it fail to compile there, "auto" warns once and runs
"parallel"), else "parallel" (~2 log2 L kernel launches). On CPU "chunked", except "loop" when a step is wide (at least
`CPU_LOOP_MIN_WIDTH` real numbers, a complex one counting two) or the sequence
is short (the chunked kernel itself falls back to the loop below ~3 chunks).
The timings behind this rule: docs/layers.md, "Why `auto` picks this way".

`complex_scan_as_real` runs a complex scan as a real one (real and imaginary
parts as two channels, each step a 2x2 rotation-scale), optionally under
torch.compile, which cannot compile complex arithmetic. It is slower than the
complex kernels on CPU (same docs section) and is kept for compilers and
accelerators without complex support.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from zoo.errors import ZooError
from zoo.layers import scan_triton

SCAN_METHODS = ("auto", "sequential", "loop", "chunked", "parallel", "triton")
CPU_LOOP_MIN_WIDTH = 2048
Kernel = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def scan_method_for(device: torch.device | str, length: int, width: int | None = None) -> str:
    """The method "auto" picks on `device` for `length` steps of `width` real numbers each (if known)."""
    if torch.device(device).type == "cuda":
        return "triton" if scan_triton.available() else "parallel"
    if width is not None and width >= CPU_LOOP_MIN_WIDTH or length <= 3 * _chunk_size(length):
        return "loop"
    return "chunked"


# ---------------------------------------------------------------- kernels
# A kernel computes, without autograd, h_t = a_t h_{t-1} + b_t from h_{-1} = 0
# (so a_0 is never read) along dim 1. With reverse=True it computes the adjoint
# recurrence h_t = a_{t+1} h_{t+1} + b_t from h_L = 0 (a_0 is never read).


def _steps(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, h: torch.Tensor, reverse: bool, dim: int = 1) -> None:
    """out_t = a_t * h + b_t along `dim`, h carried from step to step (backwards if reverse)."""
    a_t, b_t, out_t = a.unbind(dim), b.unbind(dim), out.unbind(dim)
    for t in range(len(b_t) - 1, -1, -1) if reverse else range(len(b_t)):
        h = torch.addcmul(b_t[t], a_t[t], h, out=out_t[t])


def _loop_kernel(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    out = torch.empty(torch.broadcast_shapes(a.shape, b.shape), dtype=b.dtype, device=b.device)
    if reverse:  # step t reads a_{t+1}: views offset by one, no copy
        out[:, -1] = b[:, -1]
        _steps(a[:, 1:], b[:, :-1], out[:, :-1], out[:, -1], True)
    else:
        out[:, 0] = b[:, 0]
        _steps(a[:, 1:], b[:, 1:], out[:, 1:], out[:, 0], False)
    return out


def _reversed(kernel: Kernel) -> Kernel:
    """Run the adjoint recurrence with a forward kernel: flip time, shift `a` by one."""

    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernel(a.flip(1).roll(1, dims=1), b.flip(1), False).flip(1)

    return run


def _chunk_size(length: int) -> int:
    """A power of two near sqrt(L / 3), which minimises the 3 * chunk + L / chunk Python steps."""
    return 1 << max(2, round(math.log2(max(length, 1) / 3) / 2))


def _chunked_kernel(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    length = b.shape[1]
    chunk = _chunk_size(length)
    if length <= 2 * chunk:
        return _loop_kernel(a, b, reverse)
    out = torch.empty(torch.broadcast_shapes(a.shape, b.shape), dtype=b.dtype, device=b.device)
    if reverse:
        # Step L-1 reads no a; steps r..L-2 read a_{r+1..L-1} (views offset by one); then steps r-1..0.
        rest = (length - 1) % chunk
        out[:, -1] = b[:, -1]
        _chunked_block(a[:, rest + 1 :], b[:, rest:-1], out[:, rest:-1], chunk, True, out[:, -1])
        _steps(a[:, 1 : rest + 1], b[:, :rest], out[:, :rest], out[:, rest], True)
    else:
        whole = length - length % chunk
        _chunked_block(a[:, :whole], b[:, :whole], out[:, :whole], chunk, False, None)
        _steps(a[:, whole:], b[:, whole:], out[:, whole:], out[:, whole - 1], False)
    return out


def _chunked_block(a, b, out, chunk: int, reverse: bool, h_in: torch.Tensor | None) -> None:
    """Scan a block whose length is a multiple of `chunk` into `out`, from the state h_in (None: zero)."""
    num_chunks = b.shape[1] // chunk
    a_t = a.reshape(a.shape[0], num_chunks, chunk, *a.shape[2:]).unbind(2)
    b_t = b.reshape(b.shape[0], num_chunks, chunk, *b.shape[2:]).unbind(2)
    # Pass 1, all chunks at once: each chunk's end state from zero, and its total decay.
    local, decay = None, None
    for t in range(chunk - 1, -1, -1) if reverse else range(chunk):
        local = b_t[t] if local is None else torch.addcmul(b_t[t], a_t[t], local)
        decay = a_t[t] if decay is None else decay * a_t[t]
    # The true state at each chunk's end, carried across chunks from h_in.
    first = -1 if reverse else 0
    carry = torch.empty_like(local)
    carry[:, first] = local[:, first] if h_in is None else torch.addcmul(local[:, first], decay[:, first], h_in)
    if reverse:
        _steps(decay[:, :-1], local[:, :-1], carry[:, :-1], carry[:, -1], True)
    else:
        _steps(decay[:, 1:], local[:, 1:], carry[:, 1:], carry[:, 0], False)
    start = torch.zeros_like(carry[:, :1]) if h_in is None else h_in.unsqueeze(1)
    incoming = torch.cat((carry[:, 1:], start) if reverse else (start, carry[:, :-1]), 1)
    # Pass 2: every chunk again, from its true incoming state, straight into `out`.
    blocks = lambda x: x.reshape(x.shape[0], num_chunks, chunk, *x.shape[2:])
    _steps(blocks(a), blocks(b), out.view(out.shape[0], num_chunks, chunk, *out.shape[2:]), incoming, reverse, dim=2)


def _parallel_kernel(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    if reverse:
        return _reversed(_parallel_kernel)(a, b)
    length = b.shape[1]
    if length == 1:
        return b.clone()
    half = length // 2
    a_even, a_odd = a[:, 0 : 2 * half : 2], a[:, 1 : 2 * half : 2]
    b_even, b_odd = b[:, 0 : 2 * half : 2], b[:, 1 : 2 * half : 2]
    # Pairs (2i, 2i+1) composed into one step give the states at odd positions ...
    h_odd = _parallel_kernel(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))
    # ... and each even position is one step on from the odd one before it.
    h_even = b_even.clone()
    h_even[:, 1:] += a_even[:, 1:] * h_odd[:, :-1]
    h = torch.stack((h_even, h_odd), 2).flatten(1, 2)
    if length % 2:
        h = torch.cat((h, torch.addcmul(b[:, -1:], a[:, -1:], h_odd[:, -1:])), 1)
    return h


KERNELS: dict[str, Kernel] = {
    "loop": _loop_kernel,
    "chunked": _chunked_kernel,
    "parallel": _parallel_kernel,
    "triton": scan_triton.triton_kernel,
}
_triton_failed = False


def _triton_or_parallel(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """What "auto" runs on CUDA: the Triton kernel, or the torch scan if it ever fails to compile."""
    global _triton_failed
    if not _triton_failed:
        try:
            return scan_triton.triton_kernel(a, b, reverse)
        except Exception as err:  # a Triton/driver combination that can't build it: stay correct, warn once
            _triton_failed = True
            warnings.warn(
                f"linear_scan: the Triton kernel failed ({type(err).__name__}: {err}); using method='parallel'",
                stacklevel=2,
            )
    return _parallel_kernel(a, b, reverse)


class _AdjointScan(torch.autograd.Function):
    """A kernel's scan with the hand-written adjoint backward (see module docstring)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, kernel: Kernel) -> torch.Tensor:
        h = kernel(a, b, False)
        ctx.save_for_backward(a, h)
        ctx.kernel = kernel
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: torch.Tensor):
        a, h = ctx.saved_tensors
        grad_b = ctx.kernel(a.conj(), grad_h.to(h.dtype), True)
        grad_a = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.empty_like(grad_b)
            grad_a[:, :1] = 0
            torch.mul(grad_b[:, 1:], h[:, :-1].conj(), out=grad_a[:, 1:])
            if not a.is_complex() and grad_a.is_complex():
                grad_a = grad_a.real
            grad_a = grad_a.sum_to_size(a.shape)
        return grad_a, grad_b, None


# ---------------------------------------------------------------- public API


def _prepare(a, b, reset, h0):
    """Check shapes, upcast half precision, broadcast `a` over time and fold resets into it."""
    if b.dim() < 2:
        raise ZooError(f"linear_scan: b must be (batch, length, *state), got shape {tuple(b.shape)}")
    if a.dim() < b.dim():
        a = a.reshape((1,) * (b.dim() - a.dim()) + tuple(a.shape))
    if a.dim() != b.dim() or any(sa not in (1, sb) for sa, sb in zip(a.shape, b.shape)):
        raise ZooError(
            f"linear_scan: a {tuple(a.shape)} does not broadcast to b {tuple(b.shape)}; give a as (B|1, L|1, *state)"
        )
    if b.dtype in (torch.float16, torch.bfloat16):
        b = b.float()
    elif b.dtype == torch.complex32:
        b = b.to(torch.complex64)
    if a.is_complex():
        a = a.to(torch.promote_types(b.dtype, torch.complex64))
        b = b.to(a.dtype)
    else:
        a = a.to(b.real.dtype if b.is_complex() else b.dtype)
    batch, length = b.shape[:2]
    a = a.expand(a.shape[0], length, *a.shape[2:])
    if reset is not None:
        if reset.shape != (batch, length):
            raise ZooError(f"linear_scan: reset must be (batch, length) = {(batch, length)}, got {tuple(reset.shape)}")
        keep = (~reset.bool()).to(a.real.dtype if a.is_complex() else a.dtype)
        a = a * keep.reshape(batch, length, *(1,) * (b.dim() - 2))
    if h0 is not None:
        if h0.shape != (batch, *b.shape[2:]):
            raise ZooError(f"linear_scan: h0 must be (batch, *state) = {(batch, *b.shape[2:])}, got {tuple(h0.shape)}")
        h0 = h0.to(b.dtype)
    return a, b, h0


def _fold_initial_state(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """h0 enters as one extra step: b_0 <- b_0 + a_0 h0 (a_0 already carries a reset at t=0)."""
    if h0 is None:
        return b
    return torch.cat((torch.addcmul(b[:, :1], a[:, :1], h0.unsqueeze(1)), b[:, 1:]), 1)


def _sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    states = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, 1)


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    reset: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """All states of ``h_t = a_t (1 - reset_t) h_{t-1} + b_t`` with ``h_{-1} = h0`` (zeros if None).

    b: `(B, L, *S)`, real or complex; a: broadcastable to b (e.g. `(1, L, *S)`,
    `(B, 1, *S)`), real or complex; reset: `(B, L)` bool, True where an episode
    starts; h0: `(B, *S)`. Returns `(B, L, *S)` in b's dtype (complex if a is).
    Half precision is computed in float32. See the module docstring for methods.
    """
    if method not in SCAN_METHODS:
        raise ZooError(f"linear_scan: unknown method {method!r}; choose one of {SCAN_METHODS}")
    out_dtype = torch.promote_types(b.dtype, a.dtype) if a.is_complex() else b.dtype
    a, b, h0 = _prepare(a, b, reset, h0)
    kernels = KERNELS
    if method == "auto":
        width = b.shape[0] * math.prod(b.shape[2:]) * (2 if b.is_complex() else 1)
        method = os.environ.get("ZOO_SCAN_METHOD") or "auto"
        if method not in SCAN_METHODS:
            raise ZooError(f"ZOO_SCAN_METHOD={method!r} is not a scan method; set one of {SCAN_METHODS} or unset it")
        if method == "auto":
            method = scan_method_for(b.device, b.shape[1], width)
            kernels = {**KERNELS, "triton": _triton_or_parallel}  # a rule's choice may fall back; a request may not
    if b.shape[1] == 0:
        return b.to(out_dtype)
    if method == "sequential":
        h = _sequential(a, b, h0)
    else:
        h = _AdjointScan.apply(a, _fold_initial_state(a, b, h0), kernels[method])
    return h.to(out_dtype)


# ---------------------------------------------------------------- explicit reset operator (Lu et al. 2023)


def reset_operator(earlier: tuple, later: tuple) -> tuple:
    """Lu et al.'s associative operator on (a, b, reset) triples; `later` with a reset drops `earlier`."""
    a_i, b_i, r_i = earlier
    a_j, b_j, r_j = later
    r = r_j.reshape(r_j.shape + (1,) * (b_j.dim() - r_j.dim()))
    return (
        torch.where(r, a_j, a_j * a_i),
        torch.where(r, b_j, torch.addcmul(b_j, a_j, b_i)),
        r_i | r_j,
    )


def associative_scan_with_resets(a, b, reset=None, h0=None) -> torch.Tensor:
    """Reference: Hillis-Steele prefix scan with `reset_operator`, no folding.

    h0 enters as an extra first element (h -> h0), which a reset at t=0 drops.
    """
    batch, length = b.shape[:2]
    a = torch.broadcast_to(a, b.shape)
    reset = torch.zeros(batch, length, dtype=torch.bool, device=b.device) if reset is None else reset.bool()
    if h0 is not None:
        a = torch.cat((torch.zeros_like(a[:, :1]), a), 1)
        b = torch.cat((h0.unsqueeze(1).to(b.dtype), b), 1)
        reset = torch.cat((torch.ones_like(reset[:, :1]), reset), 1)
    elems = (a, b, reset)
    step = 1
    while step < elems[1].shape[1]:
        combined = reset_operator(tuple(x[:, :-step] for x in elems), tuple(x[:, step:] for x in elems))
        elems = tuple(torch.cat((x[:, :step], c), 1) for x, c in zip(elems, combined))
        step *= 2
    h = elems[1]
    return h if h0 is None else h[:, 1:]


# ---------------------------------------------------------------- complex scan in real arithmetic


def _real_pair_step(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Steps over a block: (..., 2) real pairs, h <- [[ar, -ai], [ai, ar]] h + b, for each t in dim 1."""
    out = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        (a_re, a_im), (h_re, h_im) = a_t.unbind(-1), h.unbind(-1)
        h = torch.stack((a_re * h_re - a_im * h_im, a_re * h_im + a_im * h_re), -1) + b_t
        out.append(h)
    return torch.stack(out, 1)


_compiled_step: Callable | None = None


def _real_pair_kernel(
    a: torch.Tensor, b: torch.Tensor, reverse: bool = False, compile: bool = False, block: int = 32
) -> torch.Tensor:
    if reverse:
        return _reversed(lambda a, b, _: _real_pair_kernel(a, b, False, compile, block))(a, b)
    global _compiled_step
    step = _real_pair_step
    if compile:
        if _compiled_step is None:
            _compiled_step = torch.compile(_real_pair_step, dynamic=False)
        step = _compiled_step
    a2, b2 = torch.view_as_real(a.resolve_conj()), torch.view_as_real(b.resolve_conj())
    a2 = torch.broadcast_to(a2, b2.shape)
    out = torch.empty_like(b2)
    h = torch.zeros_like(b2[:, 0])
    for start in range(0, b2.shape[1], block):
        stop = min(start + block, b2.shape[1])
        try:
            out[:, start:stop] = step(a2[:, start:stop], b2[:, start:stop], h)
        except Exception as err:  # a missing compiler or an unsupported op: run eagerly
            if step is _real_pair_step:
                raise
            warnings.warn(
                f"complex_scan_as_real: torch.compile failed ({type(err).__name__}); running eagerly", stacklevel=2
            )
            _compiled_step = step = _real_pair_step
            out[:, start:stop] = step(a2[:, start:stop], b2[:, start:stop], h)
        h = out[:, stop - 1]
    return torch.view_as_complex(out)


def complex_scan_as_real(a, b, reset=None, h0=None, compile: bool = False) -> torch.Tensor:
    """`linear_scan` for complex a, b, computed on (real, imag) channel pairs.

    Same semantics and gradients as `linear_scan`; with `compile=True` each block
    of 32 steps goes through torch.compile (falling back to eager if that fails).
    """
    if not (a.is_complex() and b.is_complex()):
        raise ZooError("complex_scan_as_real: a and b must both be complex; use linear_scan for real scans")
    a, b, h0 = _prepare(a, b, reset, h0)
    kernel = lambda a_, b_, reverse: _real_pair_kernel(a_, b_, reverse, compile)
    return _AdjointScan.apply(a, _fold_initial_state(a, b, h0), kernel)
