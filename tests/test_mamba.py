"""Mamba (Gu & Dao 2023).

Selective scan vs a naive loop, step == forward, official key layout, resets, masks, learning.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo import create_model
from zoo.layers.mamba import Mamba, has_mamba_kernels, selective_scan


def naive_selective_scan(u, delta, A, B, C, D, z, delta_bias, reset=None):
    """mamba-ssm's `selective_scan_ref` semantics, (batch, dim, length) layout, one step at a time."""
    delta = F.softplus(delta + delta_bias[:, None])
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        if reset is not None:
            state = torch.where(reset[:, t, None, None], torch.zeros_like(state), state)
        state = (
            torch.exp(delta[:, :, t, None] * A) * state + (delta[:, :, t] * u[:, :, t])[..., None] * B[:, None, :, t]
        )
        ys.append((state * C[:, None, :, t]).sum(-1))
    return (torch.stack(ys, 2) + u * D[:, None]) * F.silu(z)


def scan_inputs(batch=2, dim=6, length=29, n=4, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, delta, z = (torch.randn(batch, dim, length, generator=g, dtype=dtype) for _ in range(3))
    B, C = (torch.randn(batch, n, length, generator=g, dtype=dtype) for _ in range(2))
    A = -torch.rand(dim, n, generator=g, dtype=dtype) * 4
    D, bias = torch.randn(dim, generator=g, dtype=dtype), torch.randn(dim, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


def ours(u, delta, A, B, C, D, z, bias, reset=None, chunk_size=None):
    """Our (batch, length, dim) selective scan, called in the reference's layout."""
    tr = lambda t: t.transpose(1, 2)
    y = selective_scan(
        tr(u), tr(delta), A, tr(B), tr(C), D, tr(z), bias, delta_softplus=True, reset=reset, chunk_size=chunk_size
    )
    return tr(y)


@pytest.mark.parametrize("chunk_size", [None, 7])
@pytest.mark.parametrize("with_reset", [False, True])
def test_selective_scan_matches_naive_loop(chunk_size, with_reset):
    args = scan_inputs()
    reset = torch.rand(2, 29, generator=torch.Generator().manual_seed(1)) < 0.15 if with_reset else None
    expected, got = naive_selective_scan(*args, reset=reset), ours(*args, reset=reset, chunk_size=chunk_size)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(expected)
    grads_expected = torch.autograd.grad((expected * weights).sum(), args)
    grads_got = torch.autograd.grad((got * weights).sum(), args)
    for name, g_got, g_exp in zip(["u", "delta", "A", "B", "C", "D", "z", "bias"], grads_got, grads_expected):
        torch.testing.assert_close(g_got, g_exp, atol=1e-5, rtol=1e-5, msg=f"gradient of {name}")


def test_selective_scan_gradcheck_with_state_and_reset():
    inputs = scan_inputs(1, 3, 9, 2, torch.float64)
    u, delta, A, B, C, _, _, bias = (t.detach().transpose(1, 2) if t.dim() == 3 else t.detach() for t in inputs)
    h0 = torch.randn(1, 3, 2, dtype=torch.float64)
    reset = torch.zeros(1, 9, dtype=torch.bool)
    reset[0, 5] = True

    def fn(u, delta, A, B, C, h0):
        return selective_scan(
            u,
            delta,
            A,
            B,
            C,
            delta_bias=bias,
            delta_softplus=True,
            reset=reset,
            h0=h0,
            return_last_state=True,
            chunk_size=4,
        )

    assert torch.autograd.gradcheck(fn, [t.requires_grad_() for t in (u, delta, A, B, C, h0)])


def test_scan_reset_equals_fresh_start():
    u, delta, A, B, C, D, z, bias = (t.detach() for t in scan_inputs(length=20))
    reset = torch.zeros(2, 20, dtype=torch.bool)
    reset[:, 8] = True
    with_reset = ours(u, delta, A, B, C, D, z, bias, reset=reset, chunk_size=5)
    fresh = ours(u[..., 8:], delta[..., 8:], A, B[..., 8:], C[..., 8:], D, z[..., 8:], bias, chunk_size=5)
    torch.testing.assert_close(with_reset[..., 8:], fresh, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(ours(u, delta, A, B, C, D, z, bias)[..., 8:], fresh, atol=1e-3)


# mamba_simple.Mamba(d_model=16) parameters: (name, shape) with d_inner 32, d_state 16, d_conv 4, dt_rank 1.
OFFICIAL_MAMBA_KEYS = [
    ("A_log", (32, 16)),
    ("D", (32,)),
    ("in_proj.weight", (64, 16)),
    ("conv1d.weight", (32, 1, 4)),
    ("conv1d.bias", (32,)),
    ("x_proj.weight", (33, 32)),
    ("dt_proj.weight", (32, 1)),
    ("dt_proj.bias", (32,)),
    ("out_proj.weight", (16, 32)),
]


def official_mixer_forward(sd: dict, hidden: torch.Tensor) -> torch.Tensor:
    """mamba_simple.Mamba.forward's non-fused path, written from the paper against the state dict."""
    length, d_inner = hidden.shape[1], sd["D"].shape[0]
    x, z = (hidden @ sd["in_proj.weight"].T).transpose(1, 2).chunk(2, dim=1)
    x = F.silu(F.conv1d(x, sd["conv1d.weight"], sd["conv1d.bias"], padding=3, groups=d_inner)[..., :length])
    x_dbl = x.transpose(1, 2) @ sd["x_proj.weight"].T
    dt, B, C = x_dbl.split([1, 16, 16], dim=-1)
    dt = (dt @ sd["dt_proj.weight"].T).transpose(1, 2)
    y = naive_selective_scan(
        x, dt, -torch.exp(sd["A_log"]), B.transpose(1, 2), C.transpose(1, 2), sd["D"], z, sd["dt_proj.bias"]
    )
    return y.transpose(1, 2) @ sd["out_proj.weight"].T


def test_official_state_dict_loads_strictly_and_gives_official_outputs():
    g = torch.Generator().manual_seed(0)
    official = {name: torch.randn(shape, generator=g) * 0.3 for name, shape in OFFICIAL_MAMBA_KEYS}
    mixer = Mamba(16)
    assert {k: tuple(v.shape) for k, v in mixer.state_dict().items()} == dict(OFFICIAL_MAMBA_KEYS)
    mixer.load_state_dict(official, strict=True)
    hidden = torch.randn(2, 11, 16, generator=g)
    torch.testing.assert_close(mixer(hidden), official_mixer_forward(official, hidden), atol=1e-5, rtol=1e-5)


def test_backbone_keys_follow_mixer_model():
    model = create_model("test_mamba", d_model=16, n_layer=2, d_state=16)
    official = {"embedding.weight", "norm_f.weight"} | {f"layers.{i}.norm.weight" for i in range(2)}
    official |= {f"layers.{i}.mixer.{name}" for i in range(2) for name, _ in OFFICIAL_MAMBA_KEYS}
    ours_keys = {k.replace("stem.proj.", "embedding.") for k in model.state_dict()}
    assert ours_keys == official


def test_mamba_130m_has_the_official_parameter_count():
    with torch.device("meta"):
        model = create_model("mamba_130m")
    # state-spaces/mamba-130m: 129,135,360 parameters (embedding 50280 x 768 + 24 layers + norm_f).
    assert sum(p.numel() for p in model.parameters()) == 129_135_360


def test_block_step_equals_forward_with_resets():
    torch.manual_seed(0)
    mixer = Mamba(16, d_state=8).eval()
    hidden, reset = torch.randn(3, 12, 16), torch.rand(3, 12) < 0.2
    with torch.no_grad():
        parallel = mixer(hidden, reset=reset)
        state, steps = mixer.init_state(3), []
        for t in range(12):
            y, state = mixer.step(hidden[:, t], state, reset[:, t])
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), parallel, atol=1e-5, rtol=1e-5)


def test_block_under_bf16_autocast_stays_close_to_fp32():
    torch.manual_seed(0)
    mixer, hidden = Mamba(16, d_state=8), torch.randn(2, 40, 16)
    reference = mixer(hidden)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = mixer(hidden)
        mixed.float().square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in mixer.parameters())
    torch.testing.assert_close(mixed.float(), reference, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("inputs", ["tokens", "features"])
def test_backbone_step_equals_forward(inputs):
    torch.manual_seed(0)
    kw = {"vocab_size": 7} if inputs == "tokens" else {"in_features": 3}
    model = create_model("test_mamba", num_classes=4, **kw).eval()
    x = torch.randint(0, 7, (2, 10)) if inputs == "tokens" else torch.randn(2, 10, 3)
    with torch.no_grad():
        parallel = model(x)
        state, steps = model.init_state(2), []
        for t in range(10):
            y, state = model.step(x[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), parallel, atol=1e-5, rtol=1e-5)


def test_backbone_is_causal_across_chunks():
    torch.manual_seed(0)
    model = create_model("test_mamba").eval()
    x = torch.randint(0, 16, (1, 1100))  # longer than one scan chunk (1024 steps at this width)
    changed = x.clone()
    changed[0, 1050:] = (x[0, 1050:] + 1) % 16
    with torch.no_grad():
        a, b = model(x), model(changed)
    torch.testing.assert_close(a[:, :1050], b[:, :1050], atol=0, rtol=0)
    assert not torch.allclose(a[:, 1050:], b[:, 1050:])


def test_backbone_reset_equals_fresh_start():
    torch.manual_seed(0)
    model = create_model("test_mamba").eval()
    x = torch.randint(0, 16, (2, 15))
    reset = torch.zeros(2, 15, dtype=torch.bool)
    reset[:, 6] = True
    with torch.no_grad():
        torch.testing.assert_close(model(x, reset=reset)[:, 6:], model(x[:, 6:]), atol=1e-5, rtol=1e-5)


def test_padding_mask_left_and_right():
    torch.manual_seed(0)
    model = create_model("test_mamba", num_classes=3).eval()
    x = torch.randint(0, 16, (2, 12))
    garbage = torch.randint(0, 16, (2, 4))
    with torch.no_grad():
        unpadded = model(x)
        left = model(torch.cat([garbage, x], 1), mask=torch.cat([torch.zeros(2, 4), torch.ones(2, 12)], 1).bool())
        right = model(torch.cat([x, garbage], 1), mask=torch.cat([torch.ones(2, 12), torch.zeros(2, 4)], 1).bool())
    torch.testing.assert_close(left[:, 4:], unpadded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(right[:, :12], unpadded, atol=1e-5, rtol=1e-5)


def selective_copy_batch(n: int, g: torch.Generator, noise: int = 12, k: int = 3, values: int = 4):
    """Paper Sec. 4.1.1: k data tokens (2..) scattered among blanks (0), then k markers (1); recall them in order."""
    data = torch.randint(2, 2 + values, (n, k), generator=g)
    where = torch.rand(n, noise + k, generator=g).argsort(1)[:, :k].sort(1).values
    x = torch.zeros(n, noise + k, dtype=torch.long).scatter(1, where, data)
    return torch.cat([x, torch.ones(n, k, dtype=torch.long)], 1), data


def test_tiny_mamba_learns_selective_copying():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = create_model("test_mamba", vocab_size=6, num_classes=6)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        x, y = selective_copy_batch(16, g)
        loss = F.cross_entropy(model(x)[:, -3:].reshape(-1, 6), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = selective_copy_batch(256, torch.Generator().manual_seed(1))
    with torch.no_grad():
        accuracy = (model(x)[:, -3:].argmax(-1) == y).float().mean().item()
    assert accuracy > 0.5, f"selective-copy accuracy {accuracy:.2f} (chance 0.25)"


@pytest.mark.gpu
@pytest.mark.skipif(
    not (torch.cuda.is_available() and has_mamba_kernels()), reason="needs CUDA and mamba-ssm + causal-conv1d"
)
def test_mamba_ssm_kernels_match_pure_path():
    torch.manual_seed(0)
    fused = Mamba(64).cuda()
    pure = Mamba(64, use_kernels=False).cuda()
    pure.load_state_dict(fused.state_dict())
    hidden = torch.randn(2, 300, 64, device="cuda", requires_grad=True)
    y_fused = fused(hidden)
    y_pure = pure(hidden)
    torch.testing.assert_close(y_fused, y_pure, atol=1e-4, rtol=1e-3)
    (g_fused,) = torch.autograd.grad(y_fused.square().sum(), hidden)
    (g_pure,) = torch.autograd.grad(y_pure.square().sum(), hidden)
    torch.testing.assert_close(g_fused, g_pure, atol=1e-3, rtol=1e-3)
    args = [t.detach().cuda() for t in scan_inputs(2, 16, 200, 8)]
    expected = naive_selective_scan(*args)
    torch.testing.assert_close(ours(*args), expected, atol=1e-4, rtol=1e-4)
