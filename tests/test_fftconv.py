"""fftconv against direct convolution (F.conv1d), in values, gradients and under autocast."""

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from zoo.errors import ZooError
from zoo.layers.fftconv import FFTLongConv, fft_size, fftconv


def direct_conv(u, k, bias=None, causal=True):
    """The same convolution by F.conv1d (cross-correlation, hence the flipped kernel)."""
    length, taps = u.shape[-1], k.shape[-1]
    weight = k.flip(-1)[:, None, :]
    if causal:
        y = F.conv1d(F.pad(u, (taps - 1, 0)), weight, groups=u.shape[1])[..., :length]
    else:
        y = F.conv1d(u, weight, padding="same", groups=u.shape[1])
    return y if bias is None else y + u * bias[:, None]


@pytest.mark.parametrize("length,taps", [(1, 1), (7, 7), (16, 16), (37, 12), (100, 100), (129, 65)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_causal_matches_conv1d(length, taps, with_bias):
    torch.manual_seed(length)
    u, k = torch.randn(2, 3, length), torch.randn(3, taps)
    bias = torch.randn(3) if with_bias else None
    torch.testing.assert_close(fftconv(u, k, bias), direct_conv(u, k, bias), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length,taps", [(1, 1), (8, 3), (33, 33), (50, 99), (64, 17), (20, 61)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_bidirectional_matches_conv1d_same(length, taps, with_bias):
    torch.manual_seed(taps)
    u, k = torch.randn(2, 4, length), torch.randn(4, taps)
    bias = torch.randn(4) if with_bias else None
    torch.testing.assert_close(
        fftconv(u, k, bias, causal=False), direct_conv(u, k, bias, causal=False), atol=1e-5, rtol=1e-5
    )


def test_bidirectional_convention():
    """k[c + j] weights the j-th past step, k[c - j] the j-th future step."""
    u = torch.zeros(1, 1, 9)
    u[..., 4] = 1.0
    k = torch.arange(1.0, 6.0)[None]  # c = 2
    y = fftconv(u, k, causal=False)[0, 0]
    torch.testing.assert_close(y[2:7], k[0], atol=1e-6, rtol=0)  # impulse at 4 lands at 4 + (i - c)


def test_causal_ignores_future_and_long_kernel_taps():
    torch.manual_seed(0)
    u, k = torch.randn(1, 2, 20), torch.randn(2, 30)
    y = fftconv(u, k)
    torch.testing.assert_close(y, direct_conv(u, k[:, :20]), atol=1e-5, rtol=1e-5)
    u2 = u.clone()
    u2[..., 12:] = torch.randn(1, 2, 8)
    torch.testing.assert_close(fftconv(u2, k)[..., :12], y[..., :12])


def test_batched_kernel():
    torch.manual_seed(1)
    u, k = torch.randn(3, 2, 24), torch.randn(3, 2, 24)
    per_item = torch.cat([fftconv(u[i : i + 1], k[i]) for i in range(3)])
    torch.testing.assert_close(fftconv(u, k), per_item)


@pytest.mark.parametrize("causal", [True, False])
def test_gradients_gradcheck(causal):
    torch.manual_seed(2)
    u = torch.randn(2, 2, 6, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 5 if not causal else 6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, k, b: fftconv(u, k, b, causal=causal), (u, k, bias))


@pytest.mark.parametrize("causal", [True, False])
def test_gradients_match_conv1d(causal):
    torch.manual_seed(3)
    u, k, bias = (
        torch.randn(2, 3, 50, requires_grad=True),
        torch.randn(3, 31, requires_grad=True),
        torch.randn(3, requires_grad=True),
    )
    g = torch.randn(2, 3, 50)
    ours = torch.autograd.grad(fftconv(u, k, bias, causal=causal), (u, k, bias), g)
    ref = torch.autograd.grad(direct_conv(u, k, bias, causal=causal), (u, k, bias), g)
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-5)


class RecordFFTDtypes(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.fft.rfft, torch.fft.irfft):
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_autocast_bf16_runs_fft_in_fp32():
    torch.manual_seed(4)
    u, k, bias = torch.randn(2, 8, 300), torch.randn(8, 300) / 20, torch.randn(8)
    exact = fftconv(u, k, bias)
    lin = torch.nn.Linear(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16), RecordFFTDtypes() as record:
        u_bf16 = lin(u.transpose(1, 2)).transpose(1, 2)  # what autocast hands the layer
        assert u_bf16.dtype == torch.bfloat16
        y = fftconv(u_bf16, k, bias)
    assert y.dtype == torch.bfloat16
    assert len(record.dtypes) == 3 and set(record.dtypes) == {torch.float32, torch.complex64}
    # Bitwise what the fp32 computation gives for the same (bf16) input, and close to the fp32 input's output.
    torch.testing.assert_close(y, fftconv(u_bf16.float(), k, bias).to(torch.bfloat16), atol=0, rtol=0)
    ref = fftconv(lin(u.transpose(1, 2)).transpose(1, 2), k, bias)
    assert (y.float() - ref).abs().max() < 0.05 * ref.abs().max()
    assert exact.dtype == torch.float32


def test_padding_mask_hides_padded_inputs():
    torch.manual_seed(5)
    u, k = torch.randn(2, 3, 16), torch.randn(3, 9)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, 10:] = False
    noisy = u.clone()
    noisy[1, :, 10:] = 100.0
    for causal in (True, False):
        y, y_noisy = fftconv(u, k, causal=causal, mask=mask), fftconv(noisy, k, causal=causal, mask=mask)
        torch.testing.assert_close(y[..., mask[1]], y_noisy[..., mask[1]])
        torch.testing.assert_close(y[1:, :, :10], fftconv(u[1:, :, :10], k, causal=causal), atol=1e-5, rtol=1e-5)


def test_fft_size_is_power_of_two_at_least_twice_length():
    for length in (1, 2, 3, 1000, 1024, 1025):
        n = fft_size(length)
        assert n >= 2 * length and n & (n - 1) == 0 and n < 4 * length


def test_module_learns_a_shift():
    """FFTLongConv fits y[t] = x[t - 3], a target attention-free layers must reach by the kernel."""
    torch.manual_seed(6)
    layer = FFTLongConv(dim=2, max_len=32)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    x = torch.randn(8, 32, 2)
    target = F.pad(x, (0, 0, 3, 0))[:, :32]
    losses = []
    for _ in range(60):
        loss = F.mse_loss(layer(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]


def test_module_bidirectional_shapes_and_errors():
    layer = FFTLongConv(dim=4, max_len=10, causal=False)
    assert layer.kernel.shape == (4, 19)
    assert layer(torch.randn(2, 7, 4)).shape == (2, 7, 4)
    with pytest.raises(ZooError, match="max_len"):
        layer(torch.randn(1, 11, 4))
    with pytest.raises(ZooError, match="odd"):
        fftconv(torch.randn(1, 4, 8), torch.randn(4, 4), causal=False)
