"""AR-Net's sparse study (Triebe et al. 2019, Sec. 4.1.1): AR(3) fitted with p = 3 ... 1000 lags.

Data as in the paper: an AR(3) process with coefficients [0.2, 0.3, -0.5] and unit Gaussian
noise, a new noise draw per seed, split into train and test (paper: 100,000 / 25,000).
For each model order p, both fit the same series:
- Classic-AR: least squares with intercept (statsmodels `AutoReg`),
- AR-Net: `zoo.models.arnet.ARNet` (one linear layer), MSE + the paper's sparsity
  regulariser with expected sparsity 3/p (none at p=3), c1=c2=3, lambda ramped
  quadratically to 0.01 (1/s - 1) by half of training; Adam with a one-cycle schedule.
Reported: sTPE of the coefficients against the true ones (0 beyond lag 3), one-step test
MSE (the noise variance, 1.0, is the floor) and fitting time, averaged over seeds.

    python -m benchmarks.timeseries_arnet [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from zoo.models.arnet import ARNet, sparsity_lambda

TRUE_AR = [0.2, 0.3, -0.5]


def stpe(estimate: np.ndarray, true: np.ndarray) -> float:
    return float(100.0 * np.abs(estimate - true).sum() / (np.abs(estimate).sum() + np.abs(true).sum()))


def ar3_series(n: int, seed: int) -> np.ndarray:
    from statsmodels.tsa.arima_process import ArmaProcess

    series = ArmaProcess.from_coeffs(TRUE_AR, []).generate_sample(n, scale=1.0, burnin=1000, distrvs=np.random.default_rng(seed).standard_normal)
    return series - series.mean()


def one_step_mse(coefficients: np.ndarray, intercept: float, series: np.ndarray) -> float:
    """Test MSE of y_t = c + sum_i w_i y_{t-i}; coefficients lag 1 first."""
    p = len(coefficients)
    lags = np.lib.stride_tricks.sliding_window_view(series[:-1], p)[:, ::-1]  # row t: y_{t-1} ... y_{t-p}
    return float(np.mean((series[p:] - intercept - lags @ coefficients) ** 2))


def fit_classic(train: np.ndarray, p: int) -> tuple[np.ndarray, float]:
    from statsmodels.tsa.ar_model import AutoReg

    params = AutoReg(train, lags=p, trend="c").fit().params
    return params[1:], float(params[0])


def fit_arnet(train: np.ndarray, p: int, epochs: int, batch_size: int, lr: float, seed: int) -> tuple[np.ndarray, float]:
    torch.manual_seed(seed)
    windows = torch.tensor(train, dtype=torch.float32).unfold(0, p + 1, 1)  # a view: no p-fold copy
    model = ARNet(ar_order=p)
    optimizer = torch.optim.Adam(model.parameters())
    per_epoch = len(windows) // batch_size
    steps = epochs * per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    sparsity = 3 / p if p > 3 else None
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(windows))
        for i in range(per_epoch):
            batch = windows[order[i * batch_size : (i + 1) * batch_size]]
            loss = torch.nn.functional.mse_loss(model.forecast(batch[:, :p, None]), batch[:, p:])
            lam = sparsity_lambda(step / steps, sparsity)
            if lam:
                loss = loss + lam * model.regularizer(3.0, 3.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
    return model.ar_coefficients()[0, :, 0].numpy().astype(np.float64), float(model.ar.bias.item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k/2.5k samples, p <= 300, 2 seeds, 5 epochs")
    parser.add_argument("--orders", type=int, nargs="+")
    parser.add_argument("--n-train", type=int)
    parser.add_argument("--n-test", type=int)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = dict(orders=[3, 10, 30, 100, 300], n_train=10_000, n_test=2_500, seeds=2, epochs=5)
    full = dict(orders=[3, 10, 30, 100, 300, 1000], n_train=100_000, n_test=25_000, seeds=3, epochs=10)
    settings = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in (quick if args.quick else full).items()}

    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for seed in range(settings["seeds"]):
        series = ar3_series(settings["n_train"] + settings["n_test"], seed)
        train, test = series[: settings["n_train"]], series[settings["n_train"] :]
        for p in settings["orders"]:
            true = np.array(TRUE_AR + [0.0] * (p - 3))
            for name in ("classic", "arnet"):
                start = time.perf_counter()
                if name == "classic":
                    coefficients, intercept = fit_classic(train, p)
                else:
                    coefficients, intercept = fit_arnet(train, p, settings["epochs"], args.batch_size, args.lr, seed)
                seconds = time.perf_counter() - start
                row = (stpe(coefficients, true), one_step_mse(coefficients, intercept, test), seconds)
                results.setdefault((name, p), []).append(row)
                print(f"seed {seed} p {p} {name}: sTPE {row[0]:.2f} MSE {row[1]:.4f} {seconds:.1f}s", flush=True)

    print(f"\n{settings['n_train']:,} train / {settings['n_test']:,} test samples, {settings['seeds']} seeds, "
          f"AR-Net {settings['epochs']} epochs, batch {args.batch_size}, max lr {args.lr}, {args.threads} thread(s)\n")
    print("| p | sparsity 3/p | Classic-AR sTPE | AR-Net sTPE | Classic-AR test MSE | AR-Net test MSE | Classic-AR fit s | AR-Net fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for p in settings["orders"]:
        c, a = (np.mean(results[name, p], axis=0) for name in ("classic", "arnet"))
        print(f"| {p} | {3 / p:.3f} | {c[0]:.2f} | {a[0]:.2f} | {c[1]:.4f} | {a[1]:.4f} | {c[2]:.2f} | {a[2]:.1f} |")


if __name__ == "__main__":
    main()
