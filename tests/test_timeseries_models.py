"""DLinear/NLinear, the naive and classic-AR baseline models, and the forecast metrics against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from statsmodels.tsa.ar_model import AutoReg

from domains.timeseries.metrics import forecast_errors
from zoo import ZooError, create_model
from zoo.models.linear_forecasters import moving_average


def test_moving_average_repeats_the_edges():
    x = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0]).view(1, 5, 1)
    padded = np.array([1.0] * 3 + [1.0, 2.0, 4.0, 8.0, 16.0] + [16.0] * 3)  # kernel 7: three edge copies each side
    expected = np.convolve(padded, np.ones(7) / 7, mode="valid")
    np.testing.assert_allclose(moving_average(x, 7)[0, :, 0].numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("individual", [False, True])
def test_dlinear_is_seasonal_plus_trend_linear_maps(individual):
    torch.manual_seed(0)
    model = create_model(
        "dlinear", seq_len=30, pred_len=7, kernel_size=5, individual=individual, in_features=3
    ).double()
    for layer in (model.seasonal, model.trend):
        torch.nn.init.normal_(layer.weight)
    x = torch.randn(4, 30, 3, dtype=torch.float64)
    trend = moving_average(x, 5)
    out = torch.zeros(4, 7, 3, dtype=torch.float64)
    for c in range(3):
        k = c if individual else 0
        for part, layer in ((x - trend, model.seasonal), (trend, model.trend)):
            out[:, :, c] += part[:, :, c] @ layer.weight[k].T + layer.bias[k]
    torch.testing.assert_close(model.forecast(x), out)


def test_dlinear_starts_as_a_window_average_and_nlinear_is_shift_invariant():
    model = create_model("dlinear", seq_len=20, pred_len=5, in_features=1)
    with torch.no_grad():
        model.seasonal.bias.zero_()
        model.trend.bias.zero_()
    x = torch.randn(2, 20, 1)
    torch.testing.assert_close(model.forecast(x), x.mean(1, keepdim=True).expand(-1, 5, -1))  # weights 1/seq_len
    nlinear = create_model("nlinear", seq_len=20, pred_len=5, in_features=2)
    torch.testing.assert_close(
        nlinear.forecast(x.expand(-1, -1, 2) + 10.0), nlinear.forecast(x.expand(-1, -1, 2)) + 10.0
    )
    with pytest.raises(ZooError, match="seq_len=20"):
        model.forecast(torch.randn(2, 19, 1))


def test_naive_forecasts():
    x = torch.arange(10.0).view(1, 10, 1)
    repeat_last = create_model("repeat_last", seq_len=10, pred_len=3)
    assert repeat_last.forecast(x)[0, :, 0].tolist() == [9.0, 9.0, 9.0]
    seasonal = create_model("seasonal_naive", seq_len=10, pred_len=7, season=3)
    assert seasonal.forecast(x)[0, :, 0].tolist() == [7.0, 8.0, 9.0, 7.0, 8.0, 9.0, 7.0]
    assert not list(seasonal.parameters()) and bool(seasonal.fitted)  # nothing to learn: born fitted
    with pytest.raises(ZooError, match="season=12"):
        create_model("seasonal_naive", seq_len=10, pred_len=3, season=12)


def test_classic_ar_matches_statsmodels_fit_and_forecast():
    rng = np.random.default_rng(0)
    series = np.zeros(600)
    for t in range(3, 600):
        series[t] = 0.5 + 0.2 * series[t - 1] + 0.3 * series[t - 2] - 0.5 * series[t - 3] + rng.standard_normal()
    model = create_model("classic_ar", seq_len=5, pred_len=8, lags=5)
    with pytest.raises(ZooError, match="not been fitted"):
        model.forecast(torch.zeros(1, 5, 1))
    model.fit(torch.from_numpy(series[:, None]))
    reference = AutoReg(series, lags=5, trend="c").fit()
    np.testing.assert_allclose(model.coefficients[0].numpy(), reference.params[1:])
    assert model.intercept[0].item() == pytest.approx(reference.params[0], rel=1e-12)
    # out-of-sample forecast from the end of the series, by statsmodels' own recursion
    expected = reference.predict(start=len(series), end=len(series) + 7)
    window = torch.from_numpy(series[None, -5:, None])
    np.testing.assert_allclose(model.forecast(window)[0, :, 0].numpy(), expected, rtol=1e-10)
    with pytest.raises(ZooError, match="lags"):
        create_model("classic_ar", seq_len=400, pred_len=1, lags=400).fit(torch.from_numpy(series[:, None]))
    with pytest.raises(ZooError, match="lags=50 needs 1 <= lags <= seq_len=48"):
        create_model("classic_ar", seq_len=48, lags=50)


def test_classic_ar_fits_only_the_forecast_channels():
    """`MS`: the covariates before the target are inputs only; their coefficients stay zero."""
    rows = torch.randn(300, 3, dtype=torch.float64)
    model = create_model("classic_ar", seq_len=8, pred_len=2, lags=4, in_features=3)
    model.fit(rows[:, -1:])
    reference = AutoReg(rows[:, -1].numpy(), lags=4, trend="c").fit().params
    np.testing.assert_allclose(model.coefficients[-1].numpy(), reference[1:])
    assert not model.coefficients[:2].any() and not model.intercept[:2].any()


def test_metrics_match_their_formulas():
    rng = np.random.default_rng(1)
    target = rng.normal(5, 2, (6, 4, 2))
    target[0, 0, 0] = 0.0  # skipped by MAPE
    pred = target + rng.normal(0, 1, target.shape)
    scale = [1.5, 0.5]
    got = forecast_errors(torch.tensor(pred), torch.tensor(target), scale)
    err = pred - target
    nonzero = target != 0
    assert got["mse"] == pytest.approx(np.mean(err**2))
    assert got["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert got["mape"] == pytest.approx(np.mean(np.abs(err[nonzero] / target[nonzero])))
    assert got["smape"] == pytest.approx(np.mean(2 * np.abs(err) / (np.abs(pred) + np.abs(target))))
    assert got["mase"] == pytest.approx(np.mean(np.abs(err) / np.array(scale)))
