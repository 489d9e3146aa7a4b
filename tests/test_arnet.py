"""AR-Net (Triebe et al. 2019): the AR layer, the sparsity regulariser, coefficient recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from statsmodels.tsa.ar_model import AutoReg

from benchmarks.timeseries_arnet import TRUE_AR, ar3_series, find_lr, fit_arnet, lag_windows, stpe
from zoo import ZooError, create_model
from zoo.models.arnet import ARNet, sparsity_lambda, sparsity_regularizer


def test_features_are_the_ar_layer_over_each_causal_window():
    torch.manual_seed(0)
    model = ARNet(ar_order=4, n_forecasts=2, in_features=3).double()
    x = torch.randn(2, 10, 3, dtype=torch.float64)
    padded = torch.cat([torch.zeros(2, 3, 3, dtype=torch.float64), x], dim=1)
    windows = padded.unfold(1, 4, 1).transpose(2, 3).reshape(2, 10, 12)  # (B, L, p*C), oldest step first
    torch.testing.assert_close(model.forward_features(x), model.ar(windows))
    torch.testing.assert_close(model.forecast(x), model.forward_features(x)[:, -1])


def test_hidden_layers_and_coefficients_order():
    model = ARNet(ar_order=3, n_forecasts=1)
    with torch.no_grad():
        model.ar.weight.copy_(torch.tensor([[0.1, 0.2, 0.7]]))  # oldest lag first, as the window is laid out
        model.ar.bias.zero_()
    assert model.ar_coefficients()[0, :, 0].tolist() == pytest.approx([0.7, 0.2, 0.1])  # lag 1 first
    assert model.forecast(torch.tensor([[[1.0], [2.0], [3.0]]])).item() == pytest.approx(0.1 + 0.4 + 2.1)
    deep = create_model("arnet_mlp", ar_order=5, n_forecasts=3)
    assert deep.forecast(torch.randn(4, 5, 1)).shape == (4, 3)
    with pytest.raises(ZooError, match="ar_order=5"):
        deep.forecast(torch.randn(4, 3, 1))


def test_padding_content_does_not_reach_real_positions():
    model = create_model("test_arnet").eval()
    x = torch.randn(1, 12, 1)
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, :3] = False  # left padding
    noisy = x.clone()
    noisy[0, :3] = 100.0
    torch.testing.assert_close(model(x, mask)[0, 3:], model(noisy, mask)[0, 3:])
    short = model(x[:, :9])
    torch.testing.assert_close(model(torch.cat([x[:, :9], torch.randn(1, 3, 1)], 1))[:, :9], short)  # right padding


def test_regularizer_matches_the_paper_formula():
    weights = torch.tensor([0.0, 0.001, 0.5, 1.0, -1.0])
    formula = lambda c1, c2: np.mean([2.0 / (1.0 + math.exp(-c1 * abs(w) ** (1 / c2))) - 1.0 for w in weights.tolist()])
    assert sparsity_regularizer(weights, 3.0, 3.0).item() == pytest.approx(formula(3.0, 3.0), rel=1e-6)  # the paper's
    assert sparsity_regularizer(weights).item() == pytest.approx(formula(2.0, 2.0), rel=1e-6)  # the official code's
    assert sparsity_regularizer(torch.zeros(4)).item() == 0.0
    # steep near zero, flat for large weights: the point of the paper's choice
    small = sparsity_regularizer(torch.tensor([0.01])) - sparsity_regularizer(torch.tensor([0.0]))
    large = sparsity_regularizer(torch.tensor([1.01])) - sparsity_regularizer(torch.tensor([1.0]))
    assert small > 20 * large


def test_a_weight_exactly_at_zero_gets_a_zero_gradient_not_nan():
    weights = torch.tensor([0.0, 0.1, -0.2, 0.0], requires_grad=True)
    sparsity_regularizer(weights).backward()
    nonzero = weights.detach()[1:3].clone().requires_grad_()
    (sparsity_regularizer(nonzero) * 2 / 4).backward()  # the same terms, averaged over 4
    assert weights.grad[0] == 0 and weights.grad[3] == 0
    torch.testing.assert_close(weights.grad[1:3], nonzero.grad)


def test_lambda_schedule():
    lam_max = 0.01 * (1 / 0.1 - 1)
    assert sparsity_lambda(0.0, 0.1) == 0.0
    assert sparsity_lambda(0.25, 0.1) == pytest.approx(lam_max * 0.25)  # quadratic ramp to half of training
    assert sparsity_lambda(0.5, 0.1) == pytest.approx(lam_max)
    assert sparsity_lambda(0.9, 0.1, noise_std=2.0) == pytest.approx(2 * lam_max)
    assert sparsity_lambda(0.9, None) == 0.0 and sparsity_lambda(0.9, 1.0) == 0.0
    with pytest.raises(ZooError, match="sparsity"):
        sparsity_lambda(0.5, 1.5)


def test_arnet_learns_the_least_squares_coefficients():
    series = ar3_series(2000, seed=0)
    least_squares = AutoReg(series, lags=3, trend="c").fit().params[1:]
    learned, _, _ = fit_arnet(series, 3, epochs=8)
    np.testing.assert_allclose(learned, least_squares, atol=0.05)
    assert stpe(learned, np.array(TRUE_AR)) < 8


def test_sparsity_regulariser_shrinks_the_lags_beyond_the_true_order():
    series = ar3_series(10_000, seed=0)
    order = 20
    true = np.array(TRUE_AR + [0.0] * (order - 3))
    plain, _, _ = fit_arnet(series, order, epochs=10)
    sparse, _, _ = fit_arnet(series, order, epochs=10, sparsity=3 / order)
    assert np.abs(sparse[3:]).sum() < 0.6 * np.abs(plain[3:]).sum()
    assert stpe(sparse, true) < 0.8 * stpe(plain, true), (stpe(sparse, true), stpe(plain, true))


def test_the_range_test_learning_rate_falls_as_the_order_grows():
    """More lags make a noisier gradient: the official LR range test answers with a smaller rate."""
    series = ar3_series(20_000, seed=1)
    rates = [find_lr(lag_windows(series, p), p, batch_size=32, seed=0) for p in (3, 30, 300)]
    assert rates[0] > 2 * rates[1] > 4 * rates[2], rates
    assert rates[2] > 1e-5 and rates[0] < 0.1, rates
