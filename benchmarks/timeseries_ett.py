"""Informer on ETTh1 (Zhou et al., AAAI 2021) beside DLinear, NLinear and the baselines, through `zoo timeseries`.

Every run is the product's own `zoo.training.run` on the composed `timeseries` config
with `experiment=informer_ett` (Adam lr 1e-4 halved per epoch after the second, batch 32,
6 epochs, early stopping patience 3, the 12/4/4-month split, training-split scaling),
window lengths and ProbSparse factor from the official `scripts/ETTh1.sh`:
multivariate (M) seq_len 48/96/168/168/336, univariate (S, target OT) seq_len 720.
DLinear and NLinear (Zeng et al., AAAI 2023) use the same windows with their paper's
ETTh1 settings (Adam lr 0.005, 10 epochs, the same halving and patience); repeat-last,
seasonal naive (24 h) and classic AR (least squares, p = seq_len, capped by --ar-lags)
need no training. MSE/MAE are on the standardised test windows (every window: none is
dropped), as the paper reports them.

Each run writes `<out>/<features>_<horizon>_<model>/` (metrics.json, logs/metrics.csv);
a finished run is skipped when the command is repeated, an interrupted one resumes from its
`checkpoints/last.ckpt` (optimizer, learning-rate schedule and early stopping restored; its
log keeps the epochs before the checkpoint), and `<out>/table.md` is re-rendered after every
run from all run folders in `<out>` and in `--also` folders, so several invocations (e.g.
Informer alone, then the cheap models) make one table. A resumed run is not bit-identical to
one run straight through: the shuffle order of the epochs after the checkpoint differs.

    python -m benchmarks.timeseries_ett --data /path/ETTh1.csv [--features M S] [--horizons 24 48] [--models informer dlinear] [--override trainer=gpu]
    python -m benchmarks.timeseries_ett --render --out runs_a --also runs_b     # the table only
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

import torch

from zoo.io import atomic_path

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
MODELS = ("informer", "dlinear", "nlinear", "repeat_last", "seasonal_naive", "classic_ar")


def model_overrides(name: str, features: str, horizon: int, args: argparse.Namespace) -> list[str]:
    seq_len, _, factor = WINDOWS[features][horizon]
    limit = f"+trainer.limit_train_batches={args.limit_train_batches}"
    return {
        "informer": [
            f"model={args.informer}",
            f"trainer.max_epochs={args.epochs}",
            limit,
            f"++model.kwargs.factor={factor}",
        ],
        "dlinear": ["model=dlinear", "task.optimizer.lr=0.005", "trainer.max_epochs=10", limit],
        "nlinear": ["model=nlinear", "task.optimizer.lr=0.005", "trainer.max_epochs=10", limit],
        "repeat_last": ["model=repeat_last"],
        "seasonal_naive": ["model=seasonal_naive", "model.kwargs.season=24"],
        "classic_ar": ["model=classic_ar", f"++model.kwargs.lags={min(seq_len, args.ar_lags)}"],
    }[name]


def run_one(data: str, features: str, horizon: int, model: list[str], folder: Path) -> dict:
    from hydra import compose, initialize_config_module

    from zoo.training import run

    seq_len, label_len, _ = WINDOWS[features][horizon]
    overrides = [
        "experiment=informer_ett",
        f"data.path={data}",
        f"data.features={features}",
        "data.target=OT",
        f"seq_len={seq_len}",
        f"label_len={label_len}",
        f"horizon={horizon}",
        f"paths.output_dir={folder}",
        f"paths.log_dir={folder.parent}",
        "trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false",
        *model,
    ]
    with initialize_config_module(config_module="domains.timeseries.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return run(cfg)


def read_log(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def write_log(path: Path, rows: list[dict[str, str]]) -> None:
    columns = sorted(set().union(*rows)) if rows else []
    with atomic_path(path) as tmp, tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def run_cell(data: str, features: str, horizon: int, model: list[str], folder: Path) -> dict:
    """`run_one`, resumed from `checkpoints/last.ckpt` when an earlier run of this cell was stopped.

    Lightning's CSV logger deletes the metrics.csv it finds, so the rows logged before the
    checkpoint are set aside first (those of the epoch cut short are dropped) and put back after.
    """
    last, log = folder / "checkpoints" / "last.ckpt", folder / "logs" / "metrics.csv"
    kept = log.with_name("metrics.before_resume.csv")
    if not last.is_file():
        shutil.rmtree(folder, ignore_errors=True)  # stopped in its first epoch: nothing to keep
        return run_one(data, features, horizon, model, folder)
    state = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
    print(f"{folder.name}: resuming after epoch {state['epoch'] + 1} from {last}", flush=True)
    # the checkpoint's global_step counts the batches before it; rows logged at a later step are lost work
    write_log(kept, [row for row in read_log(kept) + read_log(log) if int(row["step"]) < state["global_step"]])
    result = run_one(data, features, horizon, [*model, f"ckpt_path={last}"], folder)
    write_log(log, read_log(kept) + read_log(log))
    kept.unlink()
    return result


def epochs_run(folder: Path) -> str:
    """'run (best)' epochs from the run's metrics.csv, e.g. '5 (2)'; '' for untrained baselines."""
    log = folder / "logs" / "metrics.csv"
    if not log.is_file():
        return ""
    val = [(int(r["epoch"]), float(r["val/loss"])) for r in csv.DictReader(log.open()) if r.get("val/loss")]
    return f"{len(val)} ({min(val, key=lambda v: v[1])[0] + 1})" if val else ""


def collect(folders: list[Path]) -> dict[tuple[str, int, str], dict]:
    results = {}
    for root in folders:
        for metrics in sorted(root.glob("*_*_*/metrics.json")):
            features, horizon, model = metrics.parent.name.split("_", 2)
            found = json.loads(metrics.read_text())["metrics"]
            results[features, int(horizon), model] = {
                "mse": found["test/mse"],
                "mae": found["test/mae"],
                "epochs": epochs_run(metrics.parent),
            }
    return results


def render(results: dict[tuple[str, int, str], dict]) -> str:
    """One row per (features, horizon): MSE / MAE of each model, the paper's Informer beside ours."""
    cell = lambda r: f"{r['mse']:.3f} / {r['mae']:.3f}" if r else "not run"
    lines = [
        "| features | horizon | seq_len | Informer (ours) | epochs run (best) | Informer (paper) | DLinear | NLinear | repeat last | seasonal naive (24 h) | classic AR |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for features in ("M", "S"):
        for horizon, (seq_len, _, _) in WINDOWS[features].items():
            row = {m: results.get((features, horizon, m)) for m in MODELS}
            if not any(row.values()):
                continue
            paper = PAPER[features][horizon]
            informer = row["informer"]
            lines.append(
                f"| {features} | {horizon} | {seq_len} | {cell(informer)} | {informer['epochs'] if informer else ''} | "
                f"{paper[0]:.3f} / {paper[1]:.3f} | " + " | ".join(cell(row[m]) for m in MODELS[1:]) + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="ETTh1.csv")
    parser.add_argument("--features", nargs="+", default=["M", "S"], choices=["M", "S"])
    parser.add_argument("--horizons", type=int, nargs="+", default=[24, 48, 168, 336, 720])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--informer",
        default="informer_paper",
        help="model config: informer_paper (the paper's size) or informer (tiny)",
    )
    parser.add_argument("--epochs", type=int, default=6, help="Informer epochs (paper: 6)")
    parser.add_argument(
        "--limit-train-batches", type=float, default=1.0, help="fraction (<=1) or number of training batches per epoch"
    )
    parser.add_argument("--ar-lags", type=int, default=720)
    parser.add_argument(
        "--quick", action="store_true", help="the tiny Informer config, 1 epoch of 50 batches, M only, horizons 24 48"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", default=None, help="folder for the run folders and table.md (default: a temporary one)"
    )
    parser.add_argument("--also", nargs="*", default=[], help="more run folders whose results join the table")
    parser.add_argument("--render", action="store_true", help="only (re)write table.md from the run folders")
    parser.add_argument(
        "--override", nargs="*", default=[], help="extra Hydra overrides for every run, e.g. trainer=gpu"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.informer, args.epochs, args.limit_train_batches, args.features, args.horizons = (
            "informer",
            1,
            50,
            ["M"],
            [24, 48],
        )
    if args.limit_train_batches > 1:
        args.limit_train_batches = int(args.limit_train_batches)
    if not args.render and not args.data:
        parser.error("--data is required unless --render")
    out = Path(args.out or tempfile.mkdtemp(prefix="ett_"))
    out.mkdir(parents=True, exist_ok=True)
    folders = [out, *map(Path, args.also)]
    table = out / "table.md"
    header = (
        f"ETTh1; Informer = model={args.informer}, at most {args.epochs} epoch(s), limit_train_batches={args.limit_train_batches}; "
        f"{args.threads} thread(s); MSE / MAE on the standardised test windows\n\n"
    )
    for features in [] if args.render else args.features:
        for horizon in args.horizons:
            for name in args.models:
                folder = out / f"{features}_{horizon}_{name}"
                if (folder / "metrics.json").is_file():
                    continue  # finished earlier: keep it
                run_cell(
                    args.data,
                    features,
                    horizon,
                    [*model_overrides(name, features, horizon, args), *args.override],
                    folder,
                )
                table.write_text(header + render(collect(folders)))  # after every run, so a long grid's rows survive
    table.write_text(header + render(collect(folders)))
    print(table.read_text())


if __name__ == "__main__":
    main()
