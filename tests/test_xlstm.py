"""mLSTM / sLSTM memories and layers, and the Bio-xLSTM backbone.

References: plain unstabilised loops written from the paper's equations (Beck et al. 2024),
the official `xlstm` package (parallel mLSTM backend, "vanilla" sLSTM backend, weights copied
by name), and symmetry properties (reverse-complement equivariance, reversal equivariance).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo import create_model
from zoo.errors import ZooError
from zoo.layers.xlstm_mlstm import mlstm_chunkwise, mlstm_parallel, mlstm_step, mlstm_zero_state, mLSTMLayer
from zoo.layers.xlstm_slstm import slstm_scan, slstm_step, slstm_zero_state, sLSTMLayer
from zoo.models.bio_xlstm import BioXLSTM, convert_xlstm_state_dict

F64 = dict(dtype=torch.float64)


def mlstm_inputs(batch=2, heads=3, length=45, dim=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, length, dim, generator=g, dtype=dtype) for _ in range(3))
    igate = torch.randn(batch, heads, length, generator=g, dtype=dtype)
    fgate = torch.randn(batch, heads, length, generator=g, dtype=dtype) + 3.0
    return q, k, v, igate, fgate


def mlstm_plain(q, k, v, igate, fgate):
    """Paper equations, no stabiliser: C = f C + i k v^T, n = f n + i k, h = C^T q / max(|n.q|, 1)."""
    c = torch.zeros(*q.shape[:2], q.shape[-1], v.shape[-1], **F64)
    n = torch.zeros(*q.shape[:2], q.shape[-1], **F64)
    out = []
    for t in range(q.shape[2]):
        i, f = torch.exp(igate[..., t]), torch.sigmoid(fgate[..., t])
        kt = k[:, :, t] / math.sqrt(q.shape[-1])
        c = f[..., None, None] * c + i[..., None, None] * kt[..., :, None] * v[:, :, t, None, :]
        n = f[..., None] * n + i[..., None] * kt
        den = torch.clamp((n * q[:, :, t]).sum(-1).abs(), min=1.0)
        out.append((q[:, :, t, None, :] @ c).squeeze(-2) / den[..., None])
    return torch.stack(out, 2)


def slstm_plain(preact, kernel):
    """Paper equations, no stabiliser; preact (B, L, 4, NH, DH), kernel (NH, DH, 4 DH)."""
    batch, length, _, heads, dim = preact.shape
    h = c = n = torch.zeros(batch, heads, dim, **F64)
    out = []
    for t in range(length):
        rec = torch.einsum("bhd,hde->bhe", h, kernel).view(batch, heads, 4, dim).transpose(1, 2)
        i, f, z, o = (preact[:, t] + rec).unbind(1)
        c = torch.sigmoid(f) * c + torch.exp(i) * torch.tanh(z)
        n = torch.sigmoid(f) * n + torch.exp(i)
        h = torch.sigmoid(o) * c / n
        out.append(h)
    return torch.stack(out, 1)


# ---------------------------------------------------------------- mLSTM memory


def test_mlstm_forms_equal_plain_reference_float64():
    q, k, v, igate, fgate = mlstm_inputs()
    logf = F.logsigmoid(fgate)
    plain = mlstm_plain(q, k, v, igate, fgate)
    torch.testing.assert_close(mlstm_parallel(q, k, v, igate, logf, eps=0.0), plain, rtol=1e-9, atol=1e-9)
    for chunk in (1, 8, 16, 64):  # 45 is not a multiple of 8 or 16: exercises the tail chunk
        out, _ = mlstm_chunkwise(q, k, v, igate, logf, chunk_size=chunk, eps=0.0)
        torch.testing.assert_close(out, plain, rtol=1e-9, atol=1e-9)
    state = mlstm_zero_state(2, 3, 8, 8, dtype=torch.float64)
    steps = []
    for t in range(q.shape[2]):
        h, state = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], igate[..., t], logf[..., t], state, eps=0.0)
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 2), plain, rtol=1e-9, atol=1e-9)
    # float32: the three forms against each other
    q, k, v, igate, logf = (t.float() for t in (q, k, v, igate, logf))
    parallel = mlstm_parallel(q, k, v, igate, logf)
    torch.testing.assert_close(mlstm_chunkwise(q, k, v, igate, logf, chunk_size=16)[0], parallel, rtol=1e-4, atol=1e-5)
    state, steps = mlstm_zero_state(2, 3, 8, 8), []
    for t in range(q.shape[2]):
        h, state = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], igate[..., t], logf[..., t], state)
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 2), parallel, rtol=1e-4, atol=1e-5)


def test_mlstm_chunkwise_equals_official_parallel_backend():
    parallel_stabilized_simple = pytest.importorskip("xlstm.blocks.mlstm.backends").parallel_stabilized_simple
    q, k, v, igate, fgate = mlstm_inputs(length=70)
    official = parallel_stabilized_simple(q, k, v, igate[..., None], fgate[..., None])
    ours, _ = mlstm_chunkwise(q, k, v, igate, F.logsigmoid(fgate), chunk_size=16)
    torch.testing.assert_close(ours, official, rtol=1e-9, atol=1e-9)
    q, k, v, igate, fgate = (t.float() for t in (q, k, v, igate, fgate))
    official = parallel_stabilized_simple(q, k, v, igate[..., None], fgate[..., None])
    ours, _ = mlstm_chunkwise(q, k, v, igate, F.logsigmoid(fgate), chunk_size=16)
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=1e-5)


def test_mlstm_chunkwise_state_carries_over_and_gradients_match_parallel():
    q, k, v, igate, fgate = (t.requires_grad_() for t in mlstm_inputs(length=50))
    logf = F.logsigmoid(fgate)
    whole, final = mlstm_chunkwise(q, k, v, igate, logf, chunk_size=8)
    first, state = mlstm_chunkwise(*(t[:, :, :21] for t in (q, k, v)), igate[..., :21], logf[..., :21], chunk_size=8)
    second, state = mlstm_chunkwise(
        *(t[:, :, 21:] for t in (q, k, v)), igate[..., 21:], logf[..., 21:], state, chunk_size=8
    )
    torch.testing.assert_close(torch.cat([first, second], 2), whole, rtol=1e-10, atol=1e-10)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(whole)
    grads = torch.autograd.grad((whole * weights).sum(), (q, k, v, igate, fgate), retain_graph=True)
    reference = torch.autograd.grad((mlstm_parallel(q, k, v, igate, logf) * weights).sum(), (q, k, v, igate, fgate))
    for a, b in zip(grads, reference):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


# ---------------------------------------------------------------- sLSTM memory


def test_slstm_scan_and_step_equal_plain_reference():
    g = torch.Generator().manual_seed(1)
    preact = torch.randn(2, 30, 4, 3, 5, generator=g, **F64)
    kernel = 0.3 * torch.randn(3, 5, 20, generator=g, **F64)
    plain = slstm_plain(preact, kernel)
    out, final = slstm_scan(preact, kernel)
    torch.testing.assert_close(out, plain, rtol=1e-10, atol=1e-10)
    state = slstm_zero_state(2, 3, 5, dtype=torch.float64)
    for t in range(30):
        h, state = slstm_step(preact[:, t], kernel, state)
        torch.testing.assert_close(h, plain[:, t], rtol=1e-10, atol=1e-10)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b)


def test_slstm_handwritten_backward():
    g = torch.Generator().manual_seed(3)
    preact = torch.randn(2, 20, 4, 3, 4, generator=g, **F64).requires_grad_()
    kernel = (0.3 * torch.randn(3, 4, 16, generator=g, **F64)).requires_grad_()
    weights = torch.randn(2, 20, 3, 4, generator=g, **F64)
    ours = torch.autograd.grad((slstm_scan(preact, kernel)[0] * weights).sum(), (preact, kernel))
    plain = torch.autograd.grad((slstm_plain(preact, kernel) * weights).sum(), (preact, kernel))
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    # padding, a given initial state, and the final state as an output; c and n are stored scaled
    # by exp(-m), whose gradient is dropped, so only what they represent (here c / n) is differentiable
    keep = torch.rand(2, 8, generator=g) > 0.3
    h0, c0, n0 = (torch.rand(2, 3, 4, generator=g, **F64).add(0.5).requires_grad_() for _ in range(3))

    def run(preact, kernel, h0, c0, n0):
        out, (h, c, n, _) = slstm_scan(preact, kernel, (h0, c0, n0, torch.zeros(2, 3, 4, **F64)), keep)
        return out, h, c / n

    assert torch.autograd.gradcheck(run, (preact[:, :8].detach().requires_grad_(), kernel, h0, c0, n0), fast_mode=True)
    # a scan continued from a state gets the gradients of one scan
    first, state = slstm_scan(preact[:, :7], kernel)
    second, _ = slstm_scan(preact[:, 7:], kernel, state)
    pieces = torch.autograd.grad((torch.cat([first, second], 1) * weights).sum(), (preact, kernel))
    for a, b in zip(pieces, plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_slstm_scan_mask_keeps_state_on_padding():
    g = torch.Generator().manual_seed(2)
    preact, kernel = torch.randn(1, 12, 4, 2, 4, generator=g), 0.3 * torch.randn(2, 4, 16, generator=g)
    keep = torch.tensor([[False, False, True, True, False, True, True, True, True, False, True, True]])
    out, _ = slstm_scan(preact, kernel, mask=keep)
    compact, _ = slstm_scan(preact[:, keep[0]], kernel)
    torch.testing.assert_close(out[:, keep[0]], compact)


# ---------------------------------------------------------------- parity with the official layers


def official_mlstm_layer(dim, length):
    pytest.importorskip("xlstm")
    from xlstm import mLSTMLayer as Official
    from xlstm import mLSTMLayerConfig

    torch.manual_seed(0)
    layer = Official(mLSTMLayerConfig(embedding_dim=dim, context_length=length, num_heads=4))
    with torch.no_grad():  # move off the zero / one inits so every parameter matters
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return layer


def official_slstm_layer(dim):
    pytest.importorskip("xlstm")
    from xlstm import sLSTMLayer as Official
    from xlstm import sLSTMLayerConfig

    torch.manual_seed(0)
    layer = Official(sLSTMLayerConfig(embedding_dim=dim, num_heads=4, backend="vanilla", conv1d_kernel_size=4))
    layer.reset_parameters()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer.eval()


def test_mlstm_layer_matches_official_with_copied_weights():
    official = official_mlstm_layer(32, 40)
    ours = mLSTMLayer(32, num_heads=4, chunk_size=16)
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, 40, 32)
    torch.testing.assert_close(ours(x), official(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.double()(x.double()), official.double()(x.double()), rtol=1e-10, atol=1e-10)


def test_slstm_layer_matches_official_vanilla_backend():
    official = official_slstm_layer(32)
    ours = sLSTMLayer(32, num_heads=4).eval()
    state = {f"xlstm.{k}": v for k, v in official.state_dict().items()}
    ours.load_state_dict({k.removeprefix("xlstm."): v for k, v in convert_xlstm_state_dict(state, "vanilla").items()})
    x = torch.randn(2, 25, 32)
    torch.testing.assert_close(ours(x), official(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.double()(x.double()), official.double()(x.double()), rtol=1e-10, atol=1e-10)


def test_official_lm_state_dict_loads_by_renaming_and_gives_same_logits():
    pytest.importorskip("xlstm")
    from xlstm import (
        FeedForwardConfig,
        mLSTMBlockConfig,
        mLSTMLayerConfig,
        sLSTMBlockConfig,
        sLSTMLayerConfig,
        xLSTMLMModel,
        xLSTMLMModelConfig,
    )

    torch.manual_seed(0)
    config = xLSTMLMModelConfig(
        mlstm_block=mLSTMBlockConfig(mlstm=mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)),
        slstm_block=sLSTMBlockConfig(
            slstm=sLSTMLayerConfig(backend="vanilla", num_heads=4, conv1d_kernel_size=4),
            feedforward=FeedForwardConfig(proj_factor=1.3, act_fn="gelu"),
        ),
        context_length=24,
        num_blocks=3,
        embedding_dim=32,
        slstm_at=[1],
        vocab_size=11,
    )
    official = xLSTMLMModel(config)
    official.reset_parameters()
    with torch.no_grad():
        for p in official.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = BioXLSTM(dim=32, depth=3, slstm_at=[1], vocab_size=11, m_chunk_size=8)
    ours.load_state_dict(convert_xlstm_state_dict(official.state_dict(), slstm_layout="vanilla"), strict=True)
    x = torch.randint(0, 11, (2, 24))
    official.eval(), ours.eval()
    torch.testing.assert_close(ours.lm_logits(ours.forward_features(x)), official(x), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- layers: step, RoPE, masks


@pytest.mark.parametrize(
    "layer",
    [
        lambda: mLSTMLayer(16, num_heads=2, chunk_size=4),
        lambda: mLSTMLayer(16, num_heads=2, chunk_size=4, rope_theta=100.0, rope_mode="head"),
        lambda: mLSTMLayer(16, num_heads=2, chunk_size=4, rope_theta=100.0, rope_mode="inner"),
        lambda: sLSTMLayer(16, num_heads=2),
        lambda: sLSTMLayer(16, num_heads=2, conv1d_kernel_size=0),
    ],
)
def test_layer_step_equals_forward(layer):
    torch.manual_seed(0)
    layer = layer().double()
    x = torch.randn(2, 11, 16, **F64)
    state = layer.init_state(2, dtype=torch.float64)
    steps = []
    for t in range(11):
        y, state = layer.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), layer(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "layer", [lambda: mLSTMLayer(16, num_heads=2, chunk_size=4), lambda: sLSTMLayer(16, num_heads=2)]
)
def test_layer_padding(layer):
    torch.manual_seed(0)
    layer = layer().double()
    x = torch.randn(2, 9, 16, **F64)
    right = torch.arange(9) < torch.tensor([[9], [6]])
    padded = x.clone()
    padded[1, 6:] = 100.0
    torch.testing.assert_close(layer(padded, right)[1, :6], layer(x[1:, :6])[0], rtol=1e-9, atol=1e-9)
    left = right.flip(1)
    noisy = x.clone()
    noisy[1, :3] = torch.randn(3, 16, **F64) * 50
    torch.testing.assert_close(layer(noisy, left)[1, 3:], layer(x, left)[1, 3:], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- Bio-xLSTM backbone

DNA_COMPLEMENT = [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11]  # specials map to themselves; A<->T (7<->10), C<->G (8<->9)


def test_rc_equivariant_model():
    torch.manual_seed(0)
    model = create_model(
        "dna_xlstm_500k",
        dim=32,
        depth=3,
        slstm_at=[1],
        rc_equivariant=True,
        complement_map=DNA_COMPLEMENT,
        m_chunk_size=8,
    ).double()
    x = torch.randint(7, 11, (2, 20))
    rc = torch.tensor(DNA_COMPLEMENT)[x].flip(1)
    features, features_rc = model.forward_features(x), model.forward_features(rc)
    assert features.shape == (2, 20, 64) and not model.causal
    torch.testing.assert_close(features_rc, features.flip(1, 2), rtol=1e-10, atol=1e-10)
    logits, logits_rc = model.lm_logits(features), model.lm_logits(features_rc)
    torch.testing.assert_close(logits_rc, logits.flip(1)[..., DNA_COMPLEMENT], rtol=1e-10, atol=1e-10)
    with pytest.raises(ZooError):
        model.step(x[:, 0], None)
    with pytest.raises(ZooError):
        create_model("dna_xlstm_500k", rc_equivariant=True, complement_map=[0, 1])


def test_bidirectional_model_is_reversal_equivariant_and_masks():
    torch.manual_seed(0)
    model = BioXLSTM(dim=16, depth=2, slstm_at=[0], vocab_size=8, bidirectional=True, m_chunk_size=4).double()
    x = torch.randint(0, 8, (2, 13))
    torch.testing.assert_close(
        model.forward_features(x.flip(1)), model.forward_features(x).flip(1), rtol=1e-10, atol=1e-10
    )
    mask = torch.arange(13) < torch.tensor([[13], [9]])
    padded = x.clone()
    padded[1, 9:] = 5
    torch.testing.assert_close(
        model.forward_features(padded, mask)[1, :9], model.forward_features(x[1:, :9])[0], rtol=1e-9, atol=1e-9
    )


def test_model_right_padding_and_rope_step():
    torch.manual_seed(0)
    model = BioXLSTM(dim=16, depth=2, slstm_at=[1], vocab_size=8, m_chunk_size=4, m_rope_theta=1000.0).double()
    x = torch.randint(0, 8, (2, 10))
    mask = torch.arange(10) < torch.tensor([[10], [7]])
    torch.testing.assert_close(model(x, mask)[1, :7], model(x[1:, :7])[0], rtol=1e-9, atol=1e-9)
    state = model.init_state(2, dtype=torch.float64)
    steps = [None] * 10
    for t in range(10):
        steps[t], state = model.step(x[:, t], state)
    torch.testing.assert_close(torch.stack(steps, 1), model(x), rtol=1e-9, atol=1e-9)


def test_registered_configs_and_errors():
    assert sum(p.numel() for p in create_model("chem_xlstm_15m").parameters()) == pytest.approx(14.8e6, rel=0.01)
    with pytest.raises(ZooError):
        BioXLSTM(depth=2, slstm_at=[2])
    tied = BioXLSTM(dim=16, depth=1, vocab_size=8, tie_weights=True)
    assert tied.lm_head is None
    features = torch.randn(1, 3, 16)
    torch.testing.assert_close(tied.lm_logits(features), features @ tied.stem.proj.weight.t())


def test_tiny_lm_learns_a_synthetic_language():
    """Second-order Markov language over 8 tokens: next = (a + 2 b) mod 8 with prob. 0.9, else uniform.

    Unigram entropy is ln 8 = 2.08 nats; the conditional entropy is about 0.52 nats.
    """
    torch.manual_seed(0)
    vocab, length, batch = 8, 32, 16

    def sample():
        x = torch.randint(0, vocab, (batch, length))
        noise = torch.rand(batch, length) > 0.9
        for t in range(2, length):
            rule = (x[:, t - 2] + 2 * x[:, t - 1]) % vocab
            x[:, t] = torch.where(noise[:, t], x[:, t], rule)
        return x

    model = BioXLSTM(dim=32, depth=2, slstm_at=[1], vocab_size=vocab, m_chunk_size=8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        x = sample()
        logits = model.lm_logits(model.forward_features(x[:, :-1]))
        loss = F.cross_entropy(logits[:, 1:].reshape(-1, vocab), x[:, 2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * math.log(vocab)
