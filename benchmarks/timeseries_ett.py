"""Informer on ETTh1 (Zhou et al., AAAI 2021) beside DLinear and the baselines, through `zoo timeseries`.

Every run is the product's own `zoo.training.run` on the composed `timeseries` config
with `experiment=informer_ett` (Adam lr 1e-4 halved per epoch after the second, batch 32,
6 epochs, early stopping patience 3, the 12/4/4-month split, training-split scaling),
window lengths and ProbSparse factor from the official `scripts/ETTh1.sh`:
multivariate (M) seq_len 48/96/168/168/336, univariate (S, target OT) seq_len 720.
DLinear (Zeng et al. 2023) uses the same windows with its paper's ETTh1 settings
(lr 0.005, 10 epochs); repeat-last, seasonal naive (24 h) and classic AR (least squares,
p = seq_len, capped by --ar-lags) need no training. MSE/MAE are on the standardised data,
as the paper reports them.

    python -m benchmarks.timeseries_ett --data /path/ETTh1.csv [--quick] [--features M S] [--horizons 24 48]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from zoo.training import run

#: official scripts/ETTh1.sh: horizon -> (seq_len, label_len, factor)
WINDOWS = {
    "M": {24: (48, 48, 3), 48: (96, 48, 5), 168: (168, 168, 5), 336: (168, 168, 5), 720: (336, 336, 5)},
    "S": {24: (720, 168, 5), 48: (720, 168, 5), 168: (720, 336, 5), 336: (720, 336, 5), 720: (720, 336, 5)},
}
#: Informer's ETTh1 MSE/MAE in the AAAI 2021 paper (Table 1: univariate, Table 2: multivariate).
PAPER = {
    "M": {24: (0.577, 0.549), 48: (0.685, 0.625), 168: (0.931, 0.752), 336: (1.128, 0.873), 720: (1.215, 0.896)},
    "S": {24: (0.098, 0.247), 48: (0.158, 0.319), 168: (0.183, 0.346), 336: (0.222, 0.387), 720: (0.269, 0.435)},
}


def run_one(data: str, features: str, horizon: int, model: list[str], folder: Path) -> dict:
    seq_len, label_len, _ = WINDOWS[features][horizon]
    overrides = [
        "experiment=informer_ett", f"data.path={data}", f"data.features={features}", "data.target=OT",
        f"seq_len={seq_len}", f"label_len={label_len}", f"horizon={horizon}",
        f"paths.output_dir={folder}", f"paths.log_dir={folder.parent}", "trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false", *model,
    ]
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    start = time.perf_counter()
    metrics = run(cfg)["metrics"]
    return {"mse": metrics["test/mse"], "mae": metrics["test/mae"], "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="ETTh1.csv")
    parser.add_argument("--features", nargs="+", default=["M", "S"], choices=["M", "S"])
    parser.add_argument("--horizons", type=int, nargs="+", default=[24, 48, 168, 336, 720])
    parser.add_argument("--informer", default="informer_paper", help="model config: informer_paper (the paper's size) or informer (tiny)")
    parser.add_argument("--epochs", type=int, default=6, help="Informer epochs (paper: 6)")
    parser.add_argument("--limit-train-batches", type=float, default=1.0, help="fraction (<=1) or number of training batches per epoch")
    parser.add_argument("--ar-lags", type=int, default=720)
    parser.add_argument("--models", nargs="+", default=["informer", "dlinear", "repeat_last", "seasonal_naive", "classic_ar"])
    parser.add_argument("--quick", action="store_true", help="the tiny Informer config, 1 epoch of 50 batches, M only, horizons 24 48")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="folder for the run folders and table.md (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.informer, args.epochs, args.limit_train_batches, args.features, args.horizons = "informer", 1, 50, ["M"], [24, 48]
    limit = int(args.limit_train_batches) if args.limit_train_batches > 1 else args.limit_train_batches
    runs = Path(args.out or tempfile.mkdtemp(prefix="ett_"))
    settings = {
        "informer": [f"model={args.informer}", f"trainer.max_epochs={args.epochs}", f"+trainer.limit_train_batches={limit}"],
        "dlinear": ["model=dlinear", "task.optimizer.lr=0.005", "trainer.max_epochs=10", f"+trainer.limit_train_batches={limit}"],
        "repeat_last": ["model=repeat_last"], "seasonal_naive": ["model=seasonal_naive", "model.kwargs.season=24"],
        "classic_ar": ["model=classic_ar"],
    }
    lines = [
        f"ETTh1 ({args.data}); Informer = model={args.informer}, {args.epochs} epoch(s), limit_train_batches={limit}; {args.threads} thread(s)\n",
        "| features | horizon | seq_len | model | MSE | MAE | paper Informer MSE | paper Informer MAE | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table = runs / "table.md"  # grows row by row, so a long run's finished rows survive
    runs.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines) + "\n")
    for features in args.features:
        for horizon in args.horizons:
            seq_len, _, factor = WINDOWS[features][horizon]
            for name in args.models:
                extra = list(settings[name])
                if name == "informer":
                    extra.append(f"++model.kwargs.factor={factor}")
                if name == "classic_ar":
                    extra.append(f"++model.kwargs.lags={min(seq_len, args.ar_lags)}")
                result = run_one(args.data, features, horizon, extra, runs / f"{features}_{horizon}_{name}")
                paper = PAPER[features][horizon] if name == "informer" else ("", "")
                lines.append(f"| {features} | {horizon} | {seq_len} | {name} | {result['mse']:.3f} | {result['mae']:.3f} | {paper[0]} | {paper[1]} | {result['seconds']:.0f} |")
                with table.open("a") as handle:
                    handle.write(lines[-1] + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
