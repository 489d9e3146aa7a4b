"""Triton source of `zoo.layers.scan_triton` (imported on first use; see there)."""

import triton
import triton.language as tl


@triton.jit
def first_order(a_l, b_l, a_r, b_r):
    return a_r * a_l, a_r * b_l + b_r


@triton.jit
def first_order_complex(ar_l, ai_l, br_l, bi_l, ar_r, ai_r, br_r, bi_r):
    return (
        ar_r * ar_l - ai_r * ai_l,
        ar_r * ai_l + ai_r * ar_l,
        ar_r * br_l - ai_r * bi_l + br_r,
        ar_r * bi_l + ai_r * br_l + bi_r,
    )


@triton.jit
def scan(
    a_ptr,
    b_ptr,
    out_ptr,
    length,
    width,
    a_sb,
    a_sl,
    a_sn,
    b_sb,
    b_sl,
    b_sn,
    o_sb,
    o_sl,
    o_sn,
    COMPLEX: tl.constexpr,
    REVERSE: tl.constexpr,
    TILE_L: tl.constexpr,
    TILE_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # offsets in int64: L x stride passes 2^31 at a million steps
    cols = tl.program_id(1) * TILE_N + tl.arange(0, TILE_N)
    steps = tl.arange(0, TILE_L)
    last = (steps == TILE_L - 1)[:, None]
    h_re = tl.zeros([TILE_N], dtype=out_ptr.dtype.element_ty)
    h_im = tl.zeros([TILE_N], dtype=out_ptr.dtype.element_ty)
    for start in range(0, length, TILE_L):
        j = start + steps  # position in scan order
        t = (length - 1 - j) if REVERSE else j  # the step whose b is read and whose state is written
        t_a = (t + 1) if REVERSE else t  # the step whose a is read
        inside = (j < length)[:, None] & (cols < width)[None, :]
        # Positions past the end scan as the identity (a = 1, b = 0), so the tile's last row is the
        # state to carry; the adjoint's first step has no a (h_L = 0 makes it irrelevant).
        a_mask = inside & (t_a < length)[:, None]
        t_a64, t64 = t_a.to(tl.int64)[:, None], t.to(tl.int64)[:, None]
        a_off = a_ptr + row * a_sb + t_a64 * a_sl + cols[None, :] * a_sn
        b_off = b_ptr + row * b_sb + t64 * b_sl + cols[None, :] * b_sn
        o_off = out_ptr + row * o_sb + t64 * o_sl + cols[None, :] * o_sn
        a_re = tl.load(a_off, mask=a_mask, other=1.0)
        b_re = tl.load(b_off, mask=inside, other=0.0)
        if COMPLEX:
            a_im = tl.load(a_off + 1, mask=a_mask, other=0.0)
            b_im = tl.load(b_off + 1, mask=inside, other=0.0)
            a_re, a_im, b_re, b_im = tl.associative_scan((a_re, a_im, b_re, b_im), 0, first_order_complex)
            out_re = a_re * h_re[None, :] - a_im * h_im[None, :] + b_re
            out_im = a_re * h_im[None, :] + a_im * h_re[None, :] + b_im
            tl.store(o_off, out_re, mask=inside)
            tl.store(o_off + 1, out_im, mask=inside)
            h_re = tl.sum(tl.where(last, out_re, 0.0), axis=0)
            h_im = tl.sum(tl.where(last, out_im, 0.0), axis=0)
        else:
            a_re, b_re = tl.associative_scan((a_re, b_re), 0, first_order)
            out_re = a_re * h_re[None, :] + b_re
            tl.store(o_off, out_re, mask=inside)
            h_re = tl.sum(tl.where(last, out_re, 0.0), axis=0)
