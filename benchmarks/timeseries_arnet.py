"""AR-Net's sparse study (Triebe et al. 2019, Sec. 4.1.1): AR(3) fitted with p = 3 ... 1000 lags.

Data as in the paper: an AR(3) process with coefficients [0.2, 0.3, -0.5] and unit Gaussian
noise, a new noise draw per seed, split into train and test (paper: 100,000 / 25,000).
For each model order p, both fit the same series:
- Classic-AR: least squares with intercept (statsmodels `AutoReg`),
- AR-Net: `zoo.models.arnet.ARNet` (one linear layer), MSE + the paper's sparsity
  regulariser with expected sparsity 3/p (none at p=3), c1=c2=2 (the official code's
  defaults), lambda ramped quadratically to 0.01 (1/s - 1) by half of training; Adam with
  a one-cycle schedule (25% warm-up, as the official `fit_one_cycle` call) whose maximum
  is chosen as the official code chooses it: an LR range test (`find_lr`), or `--lr`.
Reported: sTPE of the coefficients against the true ones (0 beyond lag 3), one-step test
MSE (the noise variance, 1.0, is the floor), the learning rate and the fitting time (the
range test included), averaged over seeds.

    python -m benchmarks.timeseries_arnet [--quick] [--threads 1] [--lr 0.01]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from zoo.models.arnet import ARNet, sparsity_lambda

TRUE_AR = [0.2, 0.3, -0.5]


def stpe(estimate: np.ndarray, true: np.ndarray) -> float:
    return float(100.0 * np.abs(estimate - true).sum() / (np.abs(estimate).sum() + np.abs(true).sum()))


def ar3_series(n: int, seed: int) -> np.ndarray:
    from statsmodels.tsa.arima_process import ArmaProcess

    series = ArmaProcess.from_coeffs(TRUE_AR, []).generate_sample(
        n, scale=1.0, burnin=1000, distrvs=np.random.default_rng(seed).standard_normal
    )
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


def lag_windows(train: np.ndarray, p: int) -> torch.Tensor:
    """Rows of p lags followed by the next value, `(n - p, p + 1)`: a view, no p-fold copy."""
    return torch.tensor(train, dtype=torch.float32).unfold(0, p + 1, 1)


def find_lr(windows: torch.Tensor, p: int, batch_size: int, seed: int, iterations: int = 200) -> float:
    """AR-Net's learning rate, chosen as its official code chooses it (`ARNet.find_lr`).

    That is fastai's LR range test from 1e-6 to 1 over 200 batches on a fresh model,
    the loss smoothed (exponential average, beta 0.98, debiased) and the test stopped
    once it exceeds 4x its minimum; fastai suggests the learning rate at the minimum
    of the smoothed loss over 10, skipping the first 10% and the last 5 points, and
    AR-Net divides that by 10 again.
    """
    torch.manual_seed(seed)
    model = ARNet(ar_order=p)
    optimizer = torch.optim.Adam(model.parameters())
    passes = math.ceil(iterations * batch_size / len(windows))  # a short series is reused, reshuffled
    order = torch.cat([torch.randperm(len(windows)) for _ in range(passes)])
    rates, smoothed, average = [], [], 0.0
    for i in range(iterations):
        rate = 1e-6 * (1.0 / 1e-6) ** (i / (iterations - 1))
        for group in optimizer.param_groups:
            group["lr"] = rate
        batch = windows[order[i * batch_size : (i + 1) * batch_size]]
        loss = torch.nn.functional.mse_loss(model.forecast(batch[:, :p, None]), batch[:, p:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        average = 0.98 * average + 0.02 * loss.item()
        rates.append(rate)
        smoothed.append(average / (1 - 0.98 ** (i + 1)))
        if not np.isfinite(smoothed[-1]) or smoothed[-1] > 4 * min(smoothed):
            break
    kept = slice(iterations // 10, -5)
    return float(rates[kept][int(np.argmin(smoothed[kept]))]) / 100


def fit_arnet(
    train: np.ndarray,
    p: int,
    epochs: int,
    batch_size: int = 32,
    lr: float | None = None,
    seed: int = 0,
    sparsity: float | None = None,
    reg_c: float = 2.0,
) -> tuple[np.ndarray, float, float]:
    """(coefficients lag 1 first, intercept, the maximum learning rate used); `sparsity` None: no regulariser."""
    windows = lag_windows(train, p)
    lr = lr or find_lr(windows, p, batch_size, seed)
    torch.manual_seed(seed)
    model = ARNet(ar_order=p)
    optimizer = torch.optim.Adam(model.parameters())
    per_epoch = len(windows) // batch_size
    steps = epochs * per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.25)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(windows))
        for i in range(per_epoch):
            batch = windows[order[i * batch_size : (i + 1) * batch_size]]
            loss = torch.nn.functional.mse_loss(model.forecast(batch[:, :p, None]), batch[:, p:])
            lam = sparsity_lambda(step / steps, sparsity)
            if lam:
                loss = loss + lam * model.regularizer(reg_c, reg_c)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
    return model.ar_coefficients()[0, :, 0].numpy().astype(np.float64), float(model.ar.bias.item()), lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k/2.5k samples, p <= 300, 2 seeds, 5 epochs")
    parser.add_argument("--orders", type=int, nargs="+")
    parser.add_argument("--n-train", type=int)
    parser.add_argument("--n-test", type=int)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--lr", type=float, default=None, help="AR-Net's maximum learning rate (default: the official LR range test)"
    )
    parser.add_argument(
        "--reg-c", type=float, default=2.0, help="the regulariser's c1 = c2 (official code: 2, the paper: 3)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = dict(orders=[3, 10, 30, 100, 300], n_train=10_000, n_test=2_500, seeds=2, epochs=5)
    full = dict(orders=[3, 10, 30, 100, 300, 1000], n_train=100_000, n_test=25_000, seeds=3, epochs=10)
    settings = {
        k: getattr(args, k) if getattr(args, k) is not None else v for k, v in (quick if args.quick else full).items()
    }

    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for seed in range(settings["seeds"]):
        series = ar3_series(settings["n_train"] + settings["n_test"], seed)
        train, test = series[: settings["n_train"]], series[settings["n_train"] :]
        for p in settings["orders"]:
            true = np.array(TRUE_AR + [0.0] * (p - 3))
            for name in ("classic", "arnet"):
                start = time.perf_counter()
                if name == "classic":
                    (coefficients, intercept), lr = fit_classic(train, p), float("nan")
                else:
                    coefficients, intercept, lr = fit_arnet(
                        train,
                        p,
                        settings["epochs"],
                        args.batch_size,
                        args.lr,
                        seed,
                        3 / p if p > 3 else None,
                        args.reg_c,
                    )
                seconds = time.perf_counter() - start
                row = (stpe(coefficients, true), one_step_mse(coefficients, intercept, test), seconds, lr)
                results.setdefault((name, p), []).append(row)
                print(
                    f"seed {seed} p {p} {name}: sTPE {row[0]:.2f} MSE {row[1]:.4f} {seconds:.1f}s lr {lr:.2e}",
                    flush=True,
                )

    print(
        f"\n{settings['n_train']:,} train / {settings['n_test']:,} test samples, {settings['seeds']} seeds, "
        f"AR-Net {settings['epochs']} epochs, batch {args.batch_size}, max lr {args.lr or 'from the LR range test'}, "
        f"c1 = c2 = {args.reg_c:g}, {args.threads} thread(s)\n"
    )
    print(
        "| p | sparsity 3/p | Classic-AR sTPE | AR-Net sTPE | Classic-AR test MSE | AR-Net test MSE | AR-Net "
        "max lr | Classic-AR fit s | AR-Net fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for p in settings["orders"]:
        c, a = (np.mean(results[name, p], axis=0) for name in ("classic", "arnet"))
        print(
            f"| {p} | {3 / p:.3f} | {c[0]:.2f} | {a[0]:.2f} | {c[1]:.4f} | {a[1]:.4f} | {a[3]:.1e} | {c[2]:.2f} "
            f"| {a[2]:.1f} |"
        )


if __name__ == "__main__":
    main()
