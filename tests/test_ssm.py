"""S5 layer and backbone (zoo/layers/ssm.py, zoo/models/s5.py) against independent references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo import create_model
from zoo.layers.ssm import (
    S5,
    S5Block,
    block_diagonal_init,
    diagonalize_hippo_normal,
    hippo_legs,
    hippo_normal,
    lecun_normal,
)


def _hippo_legs_by_definition(n: int) -> torch.Tensor:
    # HiPPO-LegS as stated in Gu et al. 2020: -sqrt(2i+1)sqrt(2j+1) below the diagonal, -(i+1) on it.
    A = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1):
            A[i, j] = -(i + 1) if i == j else -math.sqrt((2 * i + 1) * (2 * j + 1))
    return A


@pytest.mark.parametrize("n", [8, 16])
def test_hippo_n_diagonalisation_reconstructs(n):
    torch.testing.assert_close(hippo_legs(n), _hippo_legs_by_definition(n))
    S = hippo_normal(n)
    torch.testing.assert_close(S @ S.T, S.T @ S)  # normal, hence unitarily diagonalisable
    Lambda, V = diagonalize_hippo_normal(n)
    eye = torch.eye(n, dtype=torch.complex128)
    torch.testing.assert_close(V.conj().T @ V, eye)
    torch.testing.assert_close(V @ torch.diag(Lambda) @ V.conj().T, S.to(torch.complex128))
    assert torch.all(Lambda.imag[1:] >= Lambda.imag[:-1]) and torch.allclose(
        Lambda.real, torch.tensor(-0.5, dtype=torch.float64)
    )
    half = n // 2  # conjugate symmetry: the kept half and its conjugates make the real matrix
    torch.testing.assert_close(2 * (V[:, :half] @ torch.diag(Lambda[:half]) @ V[:, :half].conj().T).real, S)


def test_block_diagonal_init():
    Lambda, V, V_inv = block_diagonal_init(24, blocks=3, conj_sym=True)
    assert Lambda.shape == (12,) and V.shape == (24, 12) and V_inv.shape == (12, 24)
    torch.testing.assert_close(V_inv @ V, torch.eye(12, dtype=torch.complex128))
    blocks = torch.block_diag(*[hippo_normal(8)] * 3)
    torch.testing.assert_close(2 * (V @ torch.diag(Lambda) @ V_inv).real, blocks)


def test_lecun_normal_variance():
    torch.manual_seed(0)
    w = lecun_normal((400, 500), fan_in=50)
    assert abs(w.var().item() * 50 - 1) < 0.02 and w.abs().max() <= 2 / 0.87962566103423978 / math.sqrt(50) + 1e-12


@pytest.mark.parametrize(
    "C_init,C_var", [("trunc_standard_normal", 1 / 128), ("lecun_normal", 1 / (128 * 64)), ("complex_normal", 0.5)]
)
def test_initial_scales_follow_official_scheme(C_init, C_var):
    # B ~ lecun_normal(state_dim x H) then V^-1 B; C sampled over the real states then C V
    # (V has orthonormal columns, so each real component keeps the sampled variance).
    torch.manual_seed(0)
    layer = S5(64, 128, blocks=4, C_init=C_init)
    assert abs(layer.B.var().item() * 2 * 128 - 1) < 0.1
    assert abs(layer.C.var().item() / C_var - 1) < 0.1
    dt = layer.log_step.exp()
    assert dt.min() >= 0.001 and dt.max() <= 0.1
    torch.testing.assert_close(
        torch.complex(layer.Lambda_re, layer.Lambda_im)[:16], diagonalize_hippo_normal(32)[0][:16].to(torch.complex64)
    )


# ----------------------------------------------------------------------------- dense reference


def _dense_reference(layer: S5, u: torch.Tensor, reset: torch.Tensor | None) -> torch.Tensor:
    """Full complex128 system: matrix exponential / solve for the discretisation, an explicit loop for time.

    With conjugate symmetry the stored half is completed by its conjugates, so the
    output C x is real without any '2 Re' shortcut.
    """
    c128 = torch.complex128
    Lambda = torch.complex(layer.Lambda_re.double(), layer.Lambda_im.double())
    B = torch.view_as_complex(layer.B.double())
    Cs = [torch.view_as_complex(layer.C.double())]
    if layer.bidirectional:
        Cs.append(torch.view_as_complex(layer.C_reverse.double()))
    if layer.conj_sym:
        Lambda, B = torch.cat([Lambda, Lambda.conj()]), torch.cat([B, B.conj()])
        Cs = [torch.cat([C, C.conj()], 1) for C in Cs]
    n = Lambda.shape[0]
    dt = torch.exp(layer.log_step[:, 0].double()).repeat(2 if layer.conj_sym else 1)
    A = torch.diag(Lambda)
    delta = torch.diag(dt.to(c128))
    eye = torch.eye(n, dtype=c128)
    if layer.discretization == "zoh":
        A_bar = torch.linalg.matrix_exp(delta @ A)
        B_bar = torch.linalg.solve(A, (A_bar - eye) @ B)
    else:
        A_bar = torch.linalg.solve(eye - delta @ A / 2, eye + delta @ A / 2)
        B_bar = torch.linalg.solve(eye - delta @ A / 2, delta @ B)
    u = u.double().to(c128)
    batch, length, _ = u.shape
    reset = torch.zeros(batch, length, dtype=torch.bool) if reset is None else reset
    y = u.real * layer.D.double()
    for b in range(batch):
        x = torch.zeros(n, dtype=c128)
        for t in range(length):
            x = (0 if reset[b, t] else A_bar @ x) + B_bar @ u[b, t]
            out = Cs[0] @ x
            assert layer.conj_sym is False or out.imag.abs().max() < 1e-9
            y[b, t] += out.real
        if layer.bidirectional:
            x = torch.zeros(n, dtype=c128)
            for t in reversed(range(length)):
                x = (0 if t + 1 < length and reset[b, t + 1] else A_bar @ x) + B_bar @ u[b, t]
                y[b, t] += (Cs[1] @ x).real
    return y


def _perturbed_layer(**kw) -> S5:
    torch.manual_seed(0)
    layer = S5(4, 12, blocks=2, **kw)
    with torch.no_grad():  # move away from the initialisation, keeping the system stable
        layer.Lambda_re.sub_(torch.rand_like(layer.Lambda_re))
        layer.Lambda_im.add_(torch.randn_like(layer.Lambda_im))
        layer.log_step.add_(torch.rand_like(layer.log_step))
    return layer


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_s5_matches_dense_reference(discretization, conj_sym, bidirectional):
    layer = _perturbed_layer(discretization=discretization, conj_sym=conj_sym, bidirectional=bidirectional)
    u = torch.randn(2, 17, 4)
    reset = torch.zeros(2, 17, dtype=torch.bool)
    reset[0, 6] = reset[1, 11] = True
    for r in (None, reset):
        torch.testing.assert_close(layer(u, reset=r).double(), _dense_reference(layer, u, r), atol=1e-5, rtol=1e-5)


def test_s5_float64_matches_dense_reference_exactly():
    layer = _perturbed_layer(bidirectional=True).double()
    u = torch.randn(2, 17, 4, dtype=torch.float64)
    reset = torch.zeros(2, 17, dtype=torch.bool)
    reset[1, 5] = True
    torch.testing.assert_close(layer(u, reset=reset), _dense_reference(layer, u, reset), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("C_init", ["trunc_standard_normal", "lecun_normal", "complex_normal"])
def test_C_init_options_match_reference(C_init):
    torch.manual_seed(1)
    layer = S5(4, 8, C_init=C_init)
    u = torch.randn(1, 9, 4)
    torch.testing.assert_close(layer(u).double(), _dense_reference(layer, u, None), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["sequential", "loop", "chunked", "parallel"])
def test_scan_methods_agree(method):
    layer = _perturbed_layer()
    u = torch.randn(2, 40, 4)
    reset = torch.rand(2, 40) < 0.1
    ref = layer(u, reset=reset)
    layer.scan_method = method
    torch.testing.assert_close(layer(u, reset=reset), ref, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- recurrence, resets, masks


def _tiny(**kw):
    return create_model("test_s5", **kw)


def _resets(batch: int, length: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(batch, length, generator=g) < 0.15


def _stepped(model, x, reset=None):
    state, outs = model.init_state(x.shape[0]), []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state, None if reset is None else reset[:, t])
        outs.append(y)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("activation", ["gelu", "full_glu", "half_glu1", "half_glu2"])
@pytest.mark.parametrize("norm,prenorm", [("layer", True), ("batch", False), ("none", True)])
def test_block_step_equals_forward(activation, norm, prenorm):
    torch.manual_seed(0)
    block = S5Block(8, 8, activation=activation, norm=norm, prenorm=prenorm, dropout=0.1).eval()
    x = torch.randn(3, 25, 8)
    for reset in (None, _resets(3, 25)):
        torch.testing.assert_close(_stepped(block, x, reset), block(x, reset=reset), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["gelu", "full_glu", "half_glu1", "half_glu2"])
@pytest.mark.parametrize("prenorm", [True, False])
def test_block_matches_official_layout(activation, prenorm):
    # lindermanlab/S5 SequenceLayer: skip; [norm]; ssm; gelu / GLU variants; skip + x; [norm].
    torch.manual_seed(0)
    block = S5Block(8, 8, activation=activation, prenorm=prenorm)
    x = torch.randn(2, 15, 8)
    y = block.ssm(block.norm(x) if prenorm else x)
    g = F.gelu(y)
    out = {
        "gelu": lambda: g,
        "full_glu": lambda: block.out1(g) * torch.sigmoid(block.out2(g)),
        "half_glu1": lambda: g * torch.sigmoid(block.out2(g)),
        "half_glu2": lambda: y * torch.sigmoid(block.out2(g)),
    }[activation]()
    expected = x + out if prenorm else block.norm(x + out)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    model = _tiny(in_features=3, num_classes=2)
    x = torch.randn(2, 20, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    torch.testing.assert_close(y.float(), model(x), atol=5e-2, rtol=5e-2)
    y.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_backbone_step_equals_forward():
    torch.manual_seed(0)
    model = _tiny(vocab_size=11, num_classes=5).eval()
    x = torch.randint(0, 11, (2, 30))
    for reset in (None, _resets(2, 30)):
        torch.testing.assert_close(_stepped(model, x, reset), model(x, reset=reset), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_reset_equals_fresh_start(bidirectional):
    torch.manual_seed(0)
    model = _tiny(in_features=3, bidirectional=bidirectional).eval()
    x = torch.randn(2, 24, 3)
    reset = torch.zeros(2, 24, dtype=torch.bool)
    reset[:, 10] = True
    full = model.forward_features(x, reset=reset)
    torch.testing.assert_close(full[:, 10:], model.forward_features(x[:, 10:]), atol=1e-5, rtol=1e-5)
    if bidirectional:  # the reverse scan must not see across the boundary either
        torch.testing.assert_close(full[:, :10], model.forward_features(x[:, :10]), atol=1e-5, rtol=1e-5)


def test_forward_chunk_continues_state():
    torch.manual_seed(0)
    model = _tiny(in_features=3).eval()
    x, reset = torch.randn(2, 30, 3), _resets(2, 30)
    first, state = model.forward_chunk(x[:, :13], model.init_state(2), reset[:, :13])
    second, _ = model.forward_chunk(x[:, 13:], state, reset[:, 13:])
    torch.testing.assert_close(
        torch.cat([first, second], 1), model.forward_features(x, reset=reset), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("bidirectional", [False, True])
def test_causality(bidirectional):
    torch.manual_seed(0)
    model = _tiny(in_features=3, bidirectional=bidirectional).eval()
    x = torch.randn(1, 20, 3)
    x2 = x.clone()
    x2[:, 15] += 1.0
    diff = (model.forward_features(x) - model.forward_features(x2)).abs().amax(-1)[0]
    assert diff[15:].min() > 1e-4  # the change is seen from t = 15 on
    assert model.causal is not bidirectional and model.recurrent is not bidirectional
    assert (diff[:15].max() > 1e-4) if bidirectional else (diff[:15].max() == 0)


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_mask_equals_unpadded(norm, bidirectional):
    torch.manual_seed(0)
    model = _tiny(in_features=3, norm=norm, bidirectional=bidirectional).eval()
    x = torch.randn(1, 12, 3)
    ref = model.forward_features(x)
    pad = torch.randn(1, 5, 3) * 10
    real = torch.ones(1, 12, dtype=torch.bool)
    gap = torch.zeros(1, 5, dtype=torch.bool)
    left = model.forward_features(torch.cat([pad, x], 1), mask=torch.cat([gap, real], 1))
    right = model.forward_features(torch.cat([x, pad], 1), mask=torch.cat([real, gap], 1))
    torch.testing.assert_close(left[:, 5:], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(right[:, :12], ref, atol=1e-5, rtol=1e-5)


def test_batchnorm_training_ignores_padding():
    torch.manual_seed(0)
    model = _tiny(in_features=3, norm="batch").train()
    x = torch.randn(2, 10, 3)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 7:] = False
    out1 = model.forward_features(x, mask=mask)
    x2 = x.clone()
    x2[0, 7:] = 100.0
    out2 = model.forward_features(x2, mask=mask)
    torch.testing.assert_close(out1[mask], out2[mask])


def test_gradients_finite_everywhere():
    torch.manual_seed(0)
    model = _tiny(in_features=3, num_classes=2, global_pool="mean", bidirectional=True, discretization="bilinear")
    model(torch.randn(2, 16, 3), reset=_resets(2, 16)).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_learns_delayed_recall():
    """Recall the first token after a delay of noise: loss must fall far below chance (ln 8)."""
    torch.manual_seed(0)
    vocab, length = 8, 24
    model = _tiny(vocab_size=vocab + 2, num_classes=vocab, global_pool="last")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        target = torch.randint(0, vocab, (32,))
        x = torch.randint(vocab, vocab + 2, (32, length))  # distractor tokens
        x[:, 0] = target
        loss = F.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.15 * math.log(vocab)


def test_step_without_autograd_follows_parameter_updates():
    """`step` keeps its discretised weights between calls without autograd; an update must refresh them."""
    torch.manual_seed(0)
    layer = S5(8, 6)
    x, state = torch.randn(3, 8), layer.init_state(3)
    with torch.no_grad():
        before, _ = layer.step(x, state)
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))  # in place, as an optimiser step
        after, _ = layer.step(x, state)
    fresh, _ = layer.step(x, state)  # with autograd: recomputed from the parameters
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh.detach(), atol=1e-6, rtol=1e-6)
    layer.double()
    with torch.no_grad():
        assert layer.step(x.double(), layer.init_state(3))[0].dtype == torch.float64
