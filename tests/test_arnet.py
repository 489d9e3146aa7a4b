"""AR-Net (Triebe et al. 2019): the AR layer, the sparsity regulariser, coefficient recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from statsmodels.tsa.ar_model import AutoReg
from statsmodels.tsa.arima_process import ArmaProcess

from zoo import ZooError, create_model
from zoo.models.arnet import ARNet, sparsity_lambda, sparsity_regularizer

TRUE_AR = [0.2, 0.3, -0.5]  # the paper's sparse-experiment coefficients


def stpe(estimate, true) -> float:
    """Symmetric total percentage error of AR coefficients (the paper's metric)."""
    estimate, true = np.asarray(estimate), np.asarray(true)
    return 100.0 * np.abs(estimate - true).sum() / (np.abs(estimate).sum() + np.abs(true).sum())


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
    expected = np.mean([2.0 / (1.0 + math.exp(-3.0 * abs(w) ** (1 / 3))) - 1.0 for w in weights.tolist()])
    assert sparsity_regularizer(weights).item() == pytest.approx(expected, rel=1e-6)
    assert sparsity_regularizer(torch.zeros(4)).item() == 0.0
    # steep near zero, flat for large weights: the point of the paper's choice
    small = sparsity_regularizer(torch.tensor([0.01])) - sparsity_regularizer(torch.tensor([0.0]))
    large = sparsity_regularizer(torch.tensor([1.01])) - sparsity_regularizer(torch.tensor([1.0]))
    assert small > 20 * large


def test_lambda_schedule():
    lam_max = 0.01 * (1 / 0.1 - 1)
    assert sparsity_lambda(0.0, 0.1) == 0.0
    assert sparsity_lambda(0.25, 0.1) == pytest.approx(lam_max * 0.25)  # quadratic ramp to half of training
    assert sparsity_lambda(0.5, 0.1) == pytest.approx(lam_max)
    assert sparsity_lambda(0.9, 0.1, noise_std=2.0) == pytest.approx(2 * lam_max)
    assert sparsity_lambda(0.9, None) == 0.0 and sparsity_lambda(0.9, 1.0) == 0.0
    with pytest.raises(ZooError, match="sparsity"):
        sparsity_lambda(0.5, 1.5)


def fit_arnet(series: np.ndarray, order: int, sparsity: float | None, epochs: int = 8) -> np.ndarray:
    torch.manual_seed(0)
    windows = torch.tensor(series, dtype=torch.float32).unfold(0, order + 1, 1)
    x, y = windows[:, :order, None], windows[:, order:]
    model = ARNet(ar_order=order)
    optimizer = torch.optim.Adam(model.parameters())
    steps = epochs * (len(x) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)
    for step in range(steps):
        index = torch.randint(0, len(x), (32,))
        loss = torch.nn.functional.mse_loss(model.forecast(x[index]), y[index])
        loss = loss + sparsity_lambda(step / steps, sparsity) * model.regularizer()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.ar_coefficients()[0, :, 0].numpy()


def ar3_series(n: int) -> np.ndarray:
    """The paper's sparse study: AR(3) with unit-variance Gaussian noise."""
    series = ArmaProcess.from_coeffs(TRUE_AR, []).generate_sample(n, scale=1.0, distrvs=np.random.default_rng(0).standard_normal)
    return series - series.mean()


def test_arnet_learns_the_least_squares_coefficients():
    series = ar3_series(2000)
    least_squares = AutoReg(series, lags=3, trend="c").fit().params[1:]
    learned = fit_arnet(series, order=3, sparsity=None)
    np.testing.assert_allclose(learned, least_squares, atol=0.05)
    assert stpe(learned, TRUE_AR) < 8


def test_sparsity_regulariser_shrinks_the_lags_beyond_the_true_order():
    series = ar3_series(3200)
    order = 20
    true = TRUE_AR + [0.0] * (order - 3)
    plain = fit_arnet(series, order=order, sparsity=None, epochs=10)
    sparse = fit_arnet(series, order=order, sparsity=3 / order, epochs=10)
    assert np.abs(sparse[3:]).sum() < 0.6 * np.abs(plain[3:]).sum()
    assert stpe(sparse, true) < 0.8 * stpe(plain, true), (stpe(sparse, true), stpe(plain, true))
