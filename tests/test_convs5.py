"""ConvS5 layer (Smith et al., NeurIPS 2023): init, ZOH, the scan with resets against references, step == forward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.layers.convs5 import ConvS5, ConvS5Block
from zoo.layers.ssm import S5, hippo_normal


def layer(**kwargs) -> ConvS5:
    torch.manual_seed(0)
    return ConvS5(**{"dim": 3, "state_dim": 8, "kernel_size": 3, **kwargs}).double()


def frames(batch=2, length=9, channels=3, size=5, seed=1) -> torch.Tensor:
    return torch.randn(batch, length, channels, size, size, generator=torch.Generator().manual_seed(seed)).double()


def test_hippo_n_init_values():
    """Lambda = HiPPO-N's eigenvalues (here from numpy's general eig), negative-imaginary half, per block."""
    ssm = ConvS5(dim=3, state_dim=16, blocks=2)
    eig = np.linalg.eigvals(hippo_normal(8).numpy())
    expected = np.sort(eig[eig.imag < 0].imag)
    np.testing.assert_allclose(ssm.Lambda_re.detach().numpy(), np.full(8, -0.5), atol=1e-6)
    np.testing.assert_allclose(ssm.Lambda_im.detach().numpy(), np.tile(expected, 2), atol=1e-5)
    assert ssm.state_size == 8 and ssm.B.shape == (8, 3, 3, 3, 2) and ssm.C.shape == (3, 8, 3, 3, 2)


def test_timesteps_are_log_uniform_in_range():
    ssm = ConvS5(dim=2, state_dim=256, dt_min=1e-3, dt_max=1e-1)
    dt = ssm.log_step.detach().exp()
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    # log-uniform: about half the steps below the geometric mean 1e-2
    assert 0.35 < (dt < 1e-2).float().mean() < 0.65


def test_zoh_against_hand_computed_value():
    ssm = ConvS5(dim=1, state_dim=2, kernel_size=1).double()
    with torch.no_grad():
        ssm.Lambda_re.fill_(-0.5)
        ssm.Lambda_im.fill_(2.0)
        ssm.log_step.fill_(math.log(0.1))
        ssm.B.zero_()
        ssm.B[0, 0, 0, 0, 0] = 1.0  # B~ = 1 + 0i
    Lambda_bar, B_bar = ssm.discretize()
    # exp(-0.05) (cos 0.2 + i sin 0.2) and (Lambda_bar - 1) / (-0.5 + 2i), worked out by hand
    assert Lambda_bar[0].item() == pytest.approx(complex(0.9322681668123085, 0.18898011319812807), abs=1e-14)
    assert B_bar[0, 0, 0, 0].item() == pytest.approx(complex(0.09690026893884751, 0.00964084935913387), abs=1e-14)


def reference(ssm: ConvS5, u: torch.Tensor, reset: torch.Tensor | None) -> torch.Tensor:
    """A plain loop over frames: complex convolutions done as four real ones, y = 2 Re(C~ * x) + D u."""
    Lambda_bar, B_bar = ssm.discretize()
    C = torch.view_as_complex(ssm.C)
    pad_b, pad_c = ssm.kernel_size // 2, ssm.out_kernel_size // 2
    x = torch.zeros(u.shape[0], ssm.state_size, *u.shape[-2:], dtype=torch.complex128)
    out = []
    for t in range(u.shape[1]):
        if reset is not None:
            x = torch.where(reset[:, t].view(-1, 1, 1, 1), torch.zeros_like(x), x)
        drive = torch.complex(
            F.conv2d(u[:, t], B_bar.real, padding=pad_b), F.conv2d(u[:, t], B_bar.imag, padding=pad_b)
        )
        x = Lambda_bar.view(-1, 1, 1) * x + drive
        y = F.conv2d(x.real, C.real, padding=pad_c) - F.conv2d(x.imag, C.imag, padding=pad_c)
        out.append(2 * y + ssm.D.view(-1, 1, 1) * u[:, t])
    return torch.stack(out, 1)


@pytest.mark.parametrize("method", ["sequential", "loop", "chunked", "parallel"])
def test_scan_with_resets_equals_sequential_reference(method):
    ssm = layer(scan_method=method, out_kernel_size=5)
    u = frames(length=13)
    reset = torch.zeros(2, 13, dtype=torch.bool)
    reset[0, 4] = reset[0, 9] = reset[1, 0] = reset[1, 7] = True
    with torch.no_grad():
        torch.testing.assert_close(ssm(u, reset=reset), reference(ssm, u, reset), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ssm(u), reference(ssm, u, None), rtol=1e-10, atol=1e-10)


def test_reset_equals_running_clips_separately():
    ssm = layer()
    u = frames(batch=1, length=10)
    reset = torch.zeros(1, 10, dtype=torch.bool)
    reset[0, 6] = True
    with torch.no_grad():
        joined = ssm(u, reset=reset)
        torch.testing.assert_close(joined[:, :6], ssm(u[:, :6]), rtol=0, atol=1e-12)
        torch.testing.assert_close(joined[:, 6:], ssm(u[:, 6:]), rtol=0, atol=1e-12)


def test_pointwise_kernels_equal_s5_on_every_pixel():
    """The paper's equivalence: with 1x1 B and C, ConvS5 is one S5 system per pixel (same parameters)."""
    torch.manual_seed(0)
    conv, s5 = ConvS5(dim=4, state_dim=8, kernel_size=1).double(), S5(4, 8).double()
    with torch.no_grad():
        for name in ("Lambda_re", "Lambda_im", "D"):
            getattr(s5, name).copy_(getattr(conv, name))
        s5.B.copy_(conv.B[:, :, 0, 0])
        s5.C.copy_(conv.C[:, :, 0, 0])
        s5.log_step.copy_(conv.log_step[:, None])
        u = frames(channels=4, length=7)
        per_pixel = s5(u.permute(0, 3, 4, 1, 2).flatten(0, 2)).unflatten(0, (2, 5, 5)).permute(0, 3, 4, 1, 2)
        torch.testing.assert_close(conv(u), per_pixel, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("prenorm", "feedthrough"), [(True, 0), (False, 0), (False, 3)])
def test_block_step_equals_forward_with_resets_and_initial_state(prenorm, feedthrough):
    torch.manual_seed(0)
    block = ConvS5Block(3, 8, prenorm=prenorm, activation="half_glu2", feedthrough_kernel_size=feedthrough)
    block = block.double().eval()
    u = frames(length=8)
    reset = torch.zeros(2, 8, dtype=torch.bool)
    reset[1, 3] = True
    state0 = torch.randn(2, 4, 5, 5, dtype=torch.complex128)
    with torch.no_grad():
        full, last = block(u, reset=reset, state=state0, return_state=True)
        state, steps = state0, []
        for t in range(8):
            y, state = block.step(u[:, t], state, reset[:, t])
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state, last, rtol=1e-10, atol=1e-10)


def test_feedthrough_convolution_is_the_papers_d_star_u():
    """With C = 0 the output is the feedthrough alone: S5's D u per channel, or the ConvSSM's D * u."""
    torch.manual_seed(0)
    u = frames(length=3)
    for k in (0, 3):
        ssm = ConvS5(3, 8, feedthrough_kernel_size=k).double()
        with torch.no_grad():
            ssm.C.zero_()
        expected = ssm.D.view(1, 1, 3, 1, 1) * u if k == 0 else F.conv2d(u.flatten(0, 1), ssm.D, padding=1)
        torch.testing.assert_close(ssm(u), expected.reshape(u.shape), rtol=1e-12, atol=1e-12)
    assert ssm.D.shape == (3, 3, 3, 3)


@pytest.mark.parametrize("feedthrough", [0, 3])
def test_every_parameter_gets_a_gradient_through_the_scan(feedthrough):
    torch.manual_seed(0)
    block = ConvS5Block(3, 8, feedthrough_kernel_size=feedthrough)
    block(torch.randn(2, 6, 3, 4, 4)).pow(2).mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bad_arguments_raise_one_line():
    with pytest.raises(ZooError, match="odd"):
        ConvS5(dim=2, kernel_size=2)
    with pytest.raises(ZooError, match="feedthrough_kernel_size=2 must be odd"):
        ConvS5(dim=2, feedthrough_kernel_size=2)
    with pytest.raises(ZooError, match=r"expected input \(B, T, 3, H, W\)"):
        layer()(torch.randn(2, 4, 5, 5, 5).double())
