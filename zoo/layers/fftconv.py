"""Long convolutions by FFT: O(L log L) for a kernel as long as the sequence.

The long convolution at the heart of H3 (Fu et al., "Hungry Hungry Hippos:
Towards Language Modeling with State Space Models", ICLR 2023) and Hyena (Poli
et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models", ICML
2023): a real FFT of size n, a pointwise product with the kernel's spectrum, an
inverse FFT. n is the power of two >= 2L, which keeps the circular convolution
free of wrap-around and suits cuFFT (whose half precision needs powers of two).
The FFT always runs in float32 (float64 stays float64), with autocast off,
because half-precision FFTs lose too much over long sequences; the result is
returned in the input's dtype.

Conventions (k[:, i] is the weight of lag i - c, and y[t] = sum_i k[i] u[t - (i - c)]):

- causal, c = 0: ``y[t] = sum_{s <= t} k[s] u[t - s]``; kernels shorter than L are
  zero-padded, taps beyond L are dropped (they never reach an output).
- bidirectional, odd Lk, c = Lk // 2: k[c] is the present, k[c + j] the j-th
  past and k[c - j] the j-th future step. This equals
  ``F.conv1d(u, k.flip(-1)[:, None], padding="same", groups=D)``.
  Taps further than L - 1 from the centre are dropped.

Both add an optional skip term ``bias[d] * u[d, t]`` (the "D" of S4/H3/Hyena).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.errors import ZooError


def fft_size(length: int) -> int:
    """The smallest power of two >= 2 * length."""
    return 1 << (2 * length - 1).bit_length()


def fftconv(
    u: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None = None,
    causal: bool = True,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Depthwise long convolution of u `(B, D, L)` with kernel k `(D, Lk)` or `(B, D, Lk)`.

    bias: `(D,)` skip term; mask: `(B, L)` bool, True on real tokens (padded inputs
    are zeroed, so real outputs never see padding). See the module docstring.
    """
    if u.dim() != 3 or k.shape[-2] != u.shape[1] or k.dim() not in (2, 3):
        raise ZooError(
            f"fftconv: expected u (B, D, L) and k (D, Lk) or (B, D, Lk), got {tuple(u.shape)} and {tuple(k.shape)}"
        )
    length, taps = u.shape[-1], k.shape[-1]
    if causal:
        k = k[..., :length]
        shift = 0
    else:
        if taps % 2 == 0:
            raise ZooError(f"fftconv: a bidirectional kernel needs odd length (centre tap at Lk // 2), got {taps}")
        centre = taps // 2
        reach = min(centre, length - 1)
        k = k[..., centre - reach : centre + reach + 1]
        shift = reach
    out_dtype = u.dtype
    fft_dtype = torch.float64 if torch.float64 in (u.dtype, k.dtype) else torch.float32
    n = fft_size(length)
    with torch.autocast(u.device.type, enabled=False):
        u32 = u.to(fft_dtype)
        if mask is not None:
            u32 = u32 * mask[:, None, :].to(fft_dtype)
        k32 = nn.functional.pad(k.to(fft_dtype), (0, n - k.shape[-1]))
        if shift:  # negative lags wrap to the end of the circular kernel, into the zero padding of u
            k32 = torch.roll(k32, -shift, dims=-1)
        y = torch.fft.irfft(torch.fft.rfft(u32, n=n) * torch.fft.rfft(k32, n=n), n=n)[..., :length]
        if bias is not None:
            y = y + u32 * bias.to(fft_dtype)[:, None]
    return y.to(out_dtype)


class FFTLongConv(nn.Module):
    """A learnable per-channel kernel as long as `max_len` (two-sided if not causal), with skip term.

    Takes and returns `(B, L, dim)`, L <= max_len. The kernel starts as decaying noise so
    that early training sees mostly recent context.
    """

    def __init__(self, dim: int, max_len: int, causal: bool = True):
        super().__init__()
        self.max_len, self.causal = max_len, causal
        lags = torch.arange(max_len, dtype=torch.float32)
        if not causal:
            lags = torch.cat((lags.flip(0)[:-1], lags))  # centre tap at max_len - 1
        decay = torch.exp(-lags[None, :] * torch.logspace(-3, 0, dim)[:, None])
        self.kernel = nn.Parameter(torch.randn(dim, lags.numel()) * decay / dim**0.5)
        self.skip = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ZooError(
                f"FFTLongConv: sequence length {x.shape[1]} exceeds max_len {self.max_len}; build the layer "
                "with a larger max_len"
            )
        y = fftconv(x.transpose(1, 2), self.kernel, self.skip, causal=self.causal, mask=mask)
        return y.transpose(1, 2)
