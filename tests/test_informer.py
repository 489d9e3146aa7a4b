"""Informer and ProbSparse attention against references (Zhou et al., AAAI 2021)."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

from benchmarks.timeseries_informer_official import convert_official_state_dict
from tests.reference import informer_reference as reference
from zoo import ZooError, create_model
from zoo.layers import probsparse
from zoo.layers.probsparse import (
    EVAL_SAMPLE_SEED,
    AttentionLayer,
    FullAttention,
    ProbSparseAttention,
    active_count,
)
from zoo.models.informer import Informer, sinusoid_table


def softmax_attention(q, k, v, causal: bool) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_probsparse_equals_full_attention_when_every_query_is_active(causal, training):
    torch.manual_seed(0)
    length = 12  # c * ceil(ln 12) = 5 * 3 = 15 >= 12
    assert active_count(5, length) == length
    q, k, v = (torch.randn(2, 3, length, 8, dtype=torch.float64) for _ in range(3))
    attention = ProbSparseAttention(factor=5, causal=causal).train(training)
    torch.testing.assert_close(attention(q, k, v), softmax_attention(q, k, v, causal))


@pytest.mark.parametrize("causal", [False, True])
def test_lazy_queries_get_mean_or_cumsum_of_values(causal):
    torch.manual_seed(1)
    length = 64  # u = 2 * ceil(ln 64) = 10 active queries of 64
    q, k, v = (torch.randn(2, 2, length, 4, dtype=torch.float64) for _ in range(3))
    attention = ProbSparseAttention(factor=2, causal=causal).eval()
    top = attention.select_queries(q, k)
    assert top.shape == (2, 2, active_count(2, length)) == (2, 2, 10)
    out, full = attention(q, k, v), softmax_attention(q, k, v, causal)
    lazy_value = v.cumsum(-2) if causal else v.mean(-2, keepdim=True).expand_as(v)
    active = torch.zeros(2, 2, length, dtype=torch.bool).scatter(2, top, True)
    torch.testing.assert_close(out[active], full[active])
    torch.testing.assert_close(out[~active], lazy_value[~active])


def test_eval_sampling_is_reproducible_and_training_sampling_is_random():
    torch.manual_seed(2)
    q, k = torch.randn(1, 1, 200, 4), torch.randn(1, 1, 200, 4)
    attention = ProbSparseAttention(factor=1).eval()
    assert torch.equal(attention.select_queries(q, k), attention.select_queries(q, k))
    attention.train()
    draws = {tuple(sorted(attention.select_queries(q, k).flatten().tolist())) for _ in range(5)}
    assert len(draws) > 1


@pytest.mark.parametrize("causal", [False, True])
def test_query_selection_in_blocks_equals_one_whole_key_sample(causal, monkeypatch):
    torch.manual_seed(5)
    q, k, v = (torch.randn(2, 3, 50, 4, requires_grad=True) for _ in range(3))
    attention = ProbSparseAttention(factor=2, causal=causal).eval()
    whole_top, whole_out = attention.select_queries(q, k), attention(q, k, v)
    per_query = 2 * 3 * active_count(2, 50) * 4
    monkeypatch.setattr(probsparse, "SAMPLE_BLOCK_ELEMENTS", 7 * per_query)  # 8 blocks, the last of 1 query
    assert torch.equal(attention.select_queries(q, k), whole_top)
    blocked_out = attention(q, k, v)
    assert torch.equal(blocked_out, whole_out)
    grads = torch.autograd.grad(blocked_out.square().sum(), (q, k, v))
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(whole_out.square().sum(), (q, k, v))))


def test_mix_flattens_heads_first():
    torch.manual_seed(3)
    layer = AttentionLayer(FullAttention(), d_model=8, n_heads=2, mix=True).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    heads = lambda proj: proj(x).view(2, 5, 2, 4).transpose(1, 2)
    inner = softmax_attention(heads(layer.query), heads(layer.key), heads(layer.value), causal=False)  # (B, H, L, D)
    torch.testing.assert_close(layer(x, x, x), layer.out(inner.reshape(2, 5, 8)))
    layer.mix = False
    torch.testing.assert_close(layer(x, x, x), layer.out(inner.transpose(1, 2).reshape(2, 5, 8)))


def informer_pair(**kw):
    torch.manual_seed(4)
    prob = Informer(attn="prob", dropout=0.0, **kw).double().eval()
    full = Informer(attn="full", dropout=0.0, **kw).double().eval()
    full.load_state_dict(prob.state_dict())
    return prob, full


def test_informer_with_all_queries_active_equals_full_attention_informer():
    # encoder L=24 -> 12 after distilling; decoder 12 + 12 = 24; 10 * ceil(ln 24) = 40 >= 24
    kw = dict(
        in_features=3,
        num_classes=3,
        label_len=12,
        pred_len=12,
        factor=10,
        d_model=16,
        n_heads=2,
        d_ff=32,
        e_layers=2,
        d_layers=2,
        embed="timeF",
        freq="h",
    )
    prob, full = informer_pair(**kw)
    x, x_mark = torch.randn(2, 24, 3, dtype=torch.float64), torch.rand(2, 24, 4, dtype=torch.float64) - 0.5
    dec, dec_mark = torch.randn(2, 24, 3, dtype=torch.float64), torch.rand(2, 24, 4, dtype=torch.float64) - 0.5
    out = prob.forecast(x, x_mark, dec, dec_mark)
    assert out.shape == (2, 12, 3)
    torch.testing.assert_close(out, full.forecast(x, x_mark, dec, dec_mark))
    torch.testing.assert_close(prob.forward_features(x), full.forward_features(x))


@pytest.mark.parametrize("d_layers", [1, 2])
def test_forecast_runs_the_last_decoder_layer_on_the_forecast_steps_only(d_layers):
    """Same forecast and gradients as decoding every step and slicing (the official order),
    with the last layer's cross-attention fed `pred_len` queries and earlier layers all of them."""
    model = create_model(
        "test_informer", in_features=3, num_classes=3, label_len=24, pred_len=12, d_layers=d_layers
    ).double()
    x, x_mark = torch.randn(2, 48, 3, dtype=torch.float64), calendar_marks(2, 48, 4)  # test_informer embeds `fixed`
    dec, dec_mark = torch.randn(2, 36, 3, dtype=torch.float64), calendar_marks(2, 36, 4)
    query_lengths = []
    for layer in model.decoder_layers:
        layer.cross_attention.register_forward_hook(lambda module, args, out: query_lengths.append(args[0].shape[1]))

    def loss_and_grads(forecast):
        torch.manual_seed(3)  # the same ProbSparse key samples in training mode
        out = forecast()
        model.zero_grad()
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    for mode in (model.train, model.eval):
        mode()
        full = loss_and_grads(lambda: model.forward_head(model.decode(dec, dec_mark, model.encode(x, x_mark)))[:, -12:])
        query_lengths.clear()
        trimmed = loss_and_grads(lambda: model.forecast(x, x_mark, dec, dec_mark))
        assert query_lengths == [36] * (d_layers - 1) + [12]
        torch.testing.assert_close(trimmed[0], full[0], rtol=1e-12, atol=1e-12)
        for got, expected in zip(trimmed[1], full[1]):
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_sparse_informer_differs_from_full_attention_on_long_inputs():
    kw = dict(in_features=1, label_len=48, pred_len=48, factor=1, d_model=16, n_heads=2, d_ff=32, embed="fixed")
    prob, full = informer_pair(**kw)
    x = torch.randn(1, 96, 1, dtype=torch.float64)
    assert not torch.allclose(prob.forward_features(x), full.forward_features(x))


@pytest.mark.parametrize("length,e_layers,expected", [(96, 2, 48), (96, 3, 24), (25, 2, 13), (25, 1, 25)])
def test_distilling_halves_the_encoder_length(length, e_layers, expected):
    model = create_model("test_informer", in_features=2, e_layers=e_layers).eval()
    assert model.encode(torch.randn(1, length, 2)).shape == (1, expected, 32)
    assert model.forward_features(torch.randn(1, length, 2)).shape == (1, length, 32)


def test_temporal_embeddings():
    fixed = create_model("test_informer", embed="fixed").enc_embedding.temporal
    assert not list(fixed.parameters())
    marks = torch.tensor([[[3, 15, 2, 7, 0]]])  # March 15th, a Wednesday, 07:00
    expected = sum(sinusoid_table(size, 32)[i] for size, i in zip((13, 32, 7, 24), (3, 15, 2, 7)))
    torch.testing.assert_close(fixed(marks)[0, 0], expected)
    learned = create_model("test_informer", embed="learned", freq="t").enc_embedding.temporal
    assert len(list(learned.parameters())) == 5  # month, day, weekday, hour, quarter-hour
    timef = create_model("test_informer", embed="timeF", freq="h").enc_embedding.temporal
    assert timef.in_features == 4
    with pytest.raises(ZooError, match="embed"):
        create_model("test_informer", embed="onehot")


def test_paper_configuration_matches_the_official_parameter_count():
    # The official Informer(7, 7, 7, ...) with main_informer.py defaults has 11,330,055 parameters.
    model = create_model("informer_base", in_features=7, num_classes=7)
    assert sum(p.numel() for p in model.parameters()) == 11_330_055


def test_padding_masks_are_refused():
    model = create_model("test_informer", in_features=1)
    mask = torch.ones(1, 10, dtype=torch.bool)
    model.forward_features(torch.randn(1, 10, 1), mask)  # all real: fine
    mask[0, -2:] = False
    with pytest.raises(ZooError, match="padding"):
        model.forward_features(torch.randn(1, 10, 1), mask)


def test_informer_learns_a_sine_better_than_repeating_the_last_value():
    torch.manual_seed(5)
    t = torch.arange(1200, dtype=torch.float32)
    series = torch.sin(2 * math.pi * t / 24) + 0.05 * torch.randn(1200)
    seq_len, label_len, horizon = 48, 24, 12
    windows = series.unfold(0, seq_len + horizon, 1).unsqueeze(-1)  # (N, 60, 1)
    train, test = windows[:900], windows[1000:]

    def forecast(model, w):
        dec = torch.cat([w[:, seq_len - label_len : seq_len], torch.zeros(len(w), horizon, 1)], 1)
        return model.forecast(w[:, :seq_len], None, dec, None)

    model = create_model("test_informer", in_features=1, num_classes=1, label_len=label_len, pred_len=horizon)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        batch = train[torch.randint(0, len(train), (32,))]
        loss = torch.nn.functional.mse_loss(forecast(model, batch), batch[:, seq_len:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(forecast(model, test), test[:, seq_len:]).item()
    naive = torch.nn.functional.mse_loss(
        test[:, seq_len - 1 : seq_len].expand(-1, horizon, -1), test[:, seq_len:]
    ).item()
    assert mse < 0.5 * naive, (mse, naive)


def calendar_marks(batch: int, length: int, fields: int) -> torch.Tensor:
    """Integer [month, day, weekday, hour, minute // 15] columns, as the `fixed`/`learned` embeddings read them."""
    low_high = [(1, 13), (1, 32), (0, 7), (0, 24), (0, 4)][:fields]
    return torch.stack([torch.randint(lo, hi, (batch, length)) for lo, hi in low_high], -1).double()


@pytest.mark.parametrize(
    "attn,embed,freq,factor,seq_len,label_len,horizon",
    [
        ("prob", "timeF", "h", 5, 96, 48, 24),  # u = 25 of 96 encoder and 25 of 72 decoder queries active
        ("full", "timeF", "h", 5, 96, 48, 24),
        ("prob", "fixed", "h", 3, 72, 36, 36),  # u = 15 of 72
        ("prob", "learned", "t", 2, 64, 32, 32),  # quarter-hour field too; u = 10 of 64
    ],
)
def test_outputs_equal_an_independent_restatement_of_the_official_math(
    attn, embed, freq, factor, seq_len, label_len, horizon
):
    """Always runs (CI has no Informer2020 checkout): the reference has the official parameter names,
    so this also checks `convert_official_state_dict`, in training mode (key samples from the global
    generator, batch-statistics BatchNorm) and in eval mode (fixed-seed samples, running statistics)."""
    kw = dict(
        factor=factor,
        d_model=32,
        n_heads=4,
        e_layers=3,
        d_layers=2,
        d_ff=64,
        attn=attn,
        embed=embed,
        freq=freq,
        distil=True,
        mix=True,
    )
    assert attn == "full" or active_count(factor, seq_len) < seq_len  # the sparse path is exercised
    torch.manual_seed(0)
    ref = reference.Informer(7, 7, horizon, max_len=128, **kw).double()  # positions up to 96 are read
    ours = Informer(in_features=7, num_classes=7, label_len=label_len, pred_len=horizon, dropout=0.0, **kw).double()
    ours.load_state_dict(convert_official_state_dict(ref.state_dict()))
    x, dec = (
        torch.randn(2, seq_len, 7, dtype=torch.float64),
        torch.cat([torch.randn(2, label_len, 7), torch.zeros(2, horizon, 7)], 1).double(),
    )
    if embed == "timeF":
        x_mark, dec_mark = (
            torch.rand(2, n, 5 if freq == "t" else 4, dtype=torch.float64) - 0.5 for n in (seq_len, label_len + horizon)
        )
    else:
        x_mark, dec_mark = (calendar_marks(2, n, 5 if freq == "t" else 4) for n in (seq_len, label_len + horizon))
    torch.manual_seed(1)
    expected = ref.train()(x, x_mark, dec, dec_mark)
    torch.manual_seed(1)
    torch.testing.assert_close(ours.train().forecast(x, x_mark, dec, dec_mark), expected, rtol=1e-5, atol=1e-5)

    fixed_draw = lambda high, shape: torch.randint(
        high, shape, generator=torch.Generator().manual_seed(EVAL_SAMPLE_SEED)
    )
    with torch.no_grad():  # the training pass above moved both BatchNorms' running statistics alike
        expected = ref.eval()(x, x_mark, dec, dec_mark, draw=fixed_draw)
        torch.testing.assert_close(ours.eval().forecast(x, x_mark, dec, dec_mark), expected, rtol=1e-5, atol=1e-5)


OFFICIAL = os.environ.get("INFORMER2020_DIR")


@pytest.mark.skipif(
    not OFFICIAL, reason="set INFORMER2020_DIR to a checkout of zhouhaoyi/Informer2020 to compare with it"
)
@pytest.mark.parametrize("attn,embed", [("prob", "timeF"), ("full", "timeF"), ("prob", "fixed"), ("prob", "learned")])
def test_outputs_equal_the_official_implementation(attn, embed):
    sys.path.insert(0, OFFICIAL)
    from models.model import Informer as OfficialInformer

    kw = dict(
        factor=5,
        d_model=32,
        n_heads=4,
        e_layers=3,
        d_layers=2,
        d_ff=64,
        dropout=0.0,
        attn=attn,
        embed=embed,
        freq="h",
        distil=True,
        mix=True,
    )
    torch.manual_seed(0)
    official = OfficialInformer(7, 7, 7, 96, 48, 24, **kw).train()
    ours = Informer(in_features=7, num_classes=7, label_len=48, pred_len=24, **kw).train()
    ours.load_state_dict(convert_official_state_dict(official.state_dict()))
    x, dec = torch.randn(4, 96, 7), torch.cat([torch.randn(4, 48, 7), torch.zeros(4, 24, 7)], 1)
    if embed == "timeF":
        x_mark, dec_mark = torch.rand(4, 96, 4) - 0.5, torch.rand(4, 72, 4) - 0.5
    else:
        fields = lambda n: torch.stack(
            [
                torch.randint(1, 13, (4, n)),
                torch.randint(1, 32, (4, n)),
                torch.randint(0, 7, (4, n)),
                torch.randint(0, 24, (4, n)),
            ],
            -1,
        ).float()
        x_mark, dec_mark = fields(96), fields(72)
    torch.manual_seed(1)  # both draw the ProbSparse key samples from the global generator, in the same order
    expected = official(x, x_mark, dec, dec_mark)
    torch.manual_seed(1)
    torch.testing.assert_close(ours.forecast(x, x_mark, dec, dec_mark), expected, rtol=1e-5, atol=1e-5)
