"""Informer (Zhou et al., AAAI 2021) on an ETT file beside DLinear, NLinear and the baselines, through `zoo timeseries`.

The dataset is named from the file name: ETTh1, ETTh2, ETTm1 or ETTm2 (case aside), else the
file's stem. Each known dataset gets the window lengths and ProbSparse factor of the official
Informer2020 script of that name (`scripts/ETTh1.sh`, `ETTh2.sh`, `ETTm1.sh`; ETTm1's horizons
are 24, 48, 96, 288, 672 steps of 15 minutes) and, beside ours, Informer's MSE/MAE for that
dataset in the paper (Table 1 univariate, Table 2 multivariate). The paper has no ETTm2 and the
repository no ETTm2 script: ETTm2 runs at ETTm1's windows, without a paper column. A file of any
other name runs at ETTh1's windows, without a paper column; the table's header says both.
ETTh2's script also deepens Informer (3 encoder and 2 decoder layers at M 168/336/720 and
S 336/720); the paper-size config (`--informer informer_paper`) follows it there.

Every run is the product's own `zoo.training.run` on the composed `timeseries` config
with `experiment=informer_ett` (Adam lr 1e-4 halved per epoch after the second, batch 32,
6 epochs, early stopping patience 3, the 12/4/4-month split, training-split scaling).
DLinear and NLinear (Zeng et al., AAAI 2023) use the same windows with their paper's
ETTh1 settings on every dataset (Adam lr 0.005, 10 epochs, the same halving and patience);
repeat-last, seasonal naive (one day) and classic AR (least squares, p = seq_len, capped by
--ar-lags) need no training. MSE/MAE are on the standardised test windows (every window:
none is dropped), as the paper reports them.

Each run writes `<out>/<features>_<horizon>_<model>/` (metrics.json, logs/metrics.csv);
a finished run is skipped when the command is repeated, an interrupted one resumes from its
`checkpoints/last.ckpt` (optimizer, learning-rate schedule and early stopping restored; its
log keeps the epochs before the checkpoint), and `<out>/table.md` is re-rendered after every
run from all run folders in `<out>` and in `--also` folders, so several invocations (e.g.
Informer alone, then the cheap models) make one table. `<out>/dataset.txt` records the
dataset, so `--render` names it and one folder never mixes two datasets (a folder without
the record is ETTh1's, the only dataset of earlier versions). A resumed run is not
bit-identical to one run straight through: the shuffle order of the epochs after the
checkpoint differs.

    python -m benchmarks.timeseries_ett --data /path/ETTh1.csv [--features M S] [--horizons 24 48]
        [--models informer dlinear] [--override trainer=gpu]
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

from zoo.errors import ZooError

#: the official Informer2020 scripts/<dataset>.sh: features -> horizon -> (seq_len, label_len, ProbSparse factor)
WINDOWS = {
    "ETTh1": {
        "M": {24: (48, 48, 3), 48: (96, 48, 5), 168: (168, 168, 5), 336: (168, 168, 5), 720: (336, 336, 5)},
        "S": {24: (720, 168, 5), 48: (720, 168, 5), 168: (720, 336, 5), 336: (720, 336, 5), 720: (720, 336, 5)},
    },
    "ETTh2": {
        "M": {24: (48, 48, 5), 48: (96, 96, 5), 168: (336, 336, 5), 336: (336, 168, 5), 720: (720, 336, 5)},
        "S": {24: (48, 48, 3), 48: (96, 96, 5), 168: (336, 336, 5), 336: (336, 168, 5), 720: (336, 336, 5)},
    },
    "ETTm1": {
        "M": {24: (672, 96, 5), 48: (96, 48, 5), 96: (384, 384, 5), 288: (672, 288, 5), 672: (672, 384, 5)},
        "S": {24: (96, 48, 5), 48: (96, 48, 5), 96: (384, 384, 5), 288: (384, 384, 5), 672: (384, 384, 5)},
    },
}
#: (encoder, decoder) layers where an official script departs from main_informer.py's 2 and 1
LAYERS = {("ETTh2", "M", h): (3, 2) for h in (168, 336, 720)} | {("ETTh2", "S", h): (3, 2) for h in (336, 720)}
#: Informer's MSE/MAE in the AAAI 2021 paper (Table 1: univariate, Table 2: multivariate); ETTm2 is not in it.
PAPER = {
    "ETTh1": {
        "M": {24: (0.577, 0.549), 48: (0.685, 0.625), 168: (0.931, 0.752), 336: (1.128, 0.873), 720: (1.215, 0.896)},
        "S": {24: (0.098, 0.247), 48: (0.158, 0.319), 168: (0.183, 0.346), 336: (0.222, 0.387), 720: (0.269, 0.435)},
    },
    "ETTh2": {
        "M": {24: (0.720, 0.665), 48: (1.457, 1.001), 168: (3.489, 1.515), 336: (2.723, 1.340), 720: (3.467, 1.473)},
        "S": {24: (0.093, 0.240), 48: (0.155, 0.314), 168: (0.232, 0.389), 336: (0.263, 0.417), 720: (0.277, 0.431)},
    },
    "ETTm1": {
        "M": {24: (0.323, 0.369), 48: (0.494, 0.503), 96: (0.678, 0.614), 288: (1.056, 0.786), 672: (1.192, 0.926)},
        "S": {24: (0.030, 0.137), 48: (0.069, 0.203), 96: (0.194, 0.372), 288: (0.401, 0.554), 672: (0.512, 0.644)},
    },
}
#: the ETT files, with the steps in one day (seasonal naive's season)
STEPS_PER_DAY = {"ETTh1": 24, "ETTh2": 24, "ETTm1": 96, "ETTm2": 96}
MODELS = ("informer", "dlinear", "nlinear", "repeat_last", "seasonal_naive", "classic_ar")
RECORD = "dataset.txt"


def dataset_name(data: str | Path) -> str:
    """ETTh1, ETTh2, ETTm1 or ETTm2 from the file name (any case, any suffix), else the file's stem."""
    stem = Path(data).name.split(".")[0]
    return next((name for name in STEPS_PER_DAY if name.lower() == stem.lower()), stem)


def windows_of(dataset: str) -> dict[str, dict[int, tuple[int, int, int]]]:
    """The official windows of `dataset`; ETTm2 borrows ETTm1's, any other file ETTh1's."""
    return WINDOWS.get(dataset) or WINDOWS["ETTm1" if dataset == "ETTm2" else "ETTh1"]


def window(dataset: str, features: str, horizon: int) -> tuple[int, int, int]:
    """(seq_len, label_len, factor) of one cell; a horizon without official windows is a `ZooError`."""
    found = windows_of(dataset)[features]
    if horizon not in found:
        raise ZooError(
            f"--horizons {horizon}: {dataset} has official windows for horizons {', '.join(map(str, found))}; "
            "choose among those"
        )
    return found[horizon]


def dataset_notes(dataset: str, informer: str) -> str:
    """What the table's header says about windows, architecture and paper numbers that are not the plain case."""
    notes = []
    if dataset not in WINDOWS:
        borrowed = "ETTm1" if dataset == "ETTm2" else "ETTh1"
        why = "Informer2020 has no ETTm2 script" if dataset == "ETTm2" else "not an ETT file name"
        notes.append(f"windows: {borrowed}'s official ones ({why})")
    if dataset not in PAPER:
        known = "the Informer paper's ETT rows are ETTh1, ETTh2 and ETTm1"
        why = f"{dataset} is not in the Informer paper" if dataset in STEPS_PER_DAY else "not an ETT file name"
        notes.append(f"no paper column: {why} ({known})")
    if informer == "informer_paper" and any(key[0] == dataset for key in LAYERS):
        cells = ", ".join(f"{f} {h}" for d, f, h in LAYERS if d == dataset)
        notes.append(f"Informer with 3 encoder and 2 decoder layers at {cells}, as scripts/{dataset}.sh")
    return "".join(f"; {note}" for note in notes)


def model_overrides(
    name: str, features: str, horizon: int, args: argparse.Namespace, dataset: str = "ETTh1"
) -> list[str]:
    seq_len, _, factor = window(dataset, features, horizon)
    limit = f"+trainer.limit_train_batches={args.limit_train_batches}"
    layers = []
    if args.informer == "informer_paper" and (dataset, features, horizon) in LAYERS:
        encoder, decoder = LAYERS[dataset, features, horizon]
        layers = [f"++model.kwargs.e_layers={encoder}", f"++model.kwargs.d_layers={decoder}"]
    day = STEPS_PER_DAY.get(dataset)  # other files: one day from the data's frequency
    return {
        "informer": [
            f"model={args.informer}",
            f"trainer.max_epochs={args.epochs}",
            limit,
            f"++model.kwargs.factor={factor}",
            *layers,
        ],
        "dlinear": ["model=dlinear", "task.optimizer.lr=0.005", "trainer.max_epochs=10", limit],
        "nlinear": ["model=nlinear", "task.optimizer.lr=0.005", "trainer.max_epochs=10", limit],
        "repeat_last": ["model=repeat_last"],
        "seasonal_naive": ["model=seasonal_naive", *([f"model.kwargs.season={day}"] if day else [])],
        "classic_ar": ["model=classic_ar", f"++model.kwargs.lags={min(seq_len, args.ar_lags)}"],
    }[name]


def run_one(data: str, features: str, horizon: int, model: list[str], folder: Path) -> dict:
    from hydra import compose, initialize_config_module

    from zoo.training import run

    seq_len, label_len, _ = window(dataset_name(data), features, horizon)
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


def run_cell(data: str, features: str, horizon: int, model: list[str], folder: Path) -> dict:
    """`run_one`, resumed from `checkpoints/last.ckpt` when an earlier run of this cell was stopped.

    The core's CSV logger continues the metrics.csv it finds, without the rows of the epoch cut
    short (logged after the checkpoint).
    """
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        shutil.rmtree(folder, ignore_errors=True)  # stopped in its first epoch: nothing to keep
        return run_one(data, features, horizon, model, folder)
    state = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
    print(f"{folder.name}: resuming after epoch {state['epoch'] + 1} from {last}", flush=True)
    return run_one(data, features, horizon, [*model, f"ckpt_path={last}"], folder)


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


def recorded_dataset(folder: Path) -> str | None:
    record = folder / RECORD
    return record.read_text().strip() if record.is_file() else None


def table_dataset(data: str | None, folders: list[Path]) -> str:
    """The dataset of one table: --data's, else the folders' record, else ETTh1; two different ones are an error."""
    found = {folder: name for folder in folders if (name := recorded_dataset(folder))}
    dataset = dataset_name(data) if data else next(iter(found.values()), "ETTh1")
    for folder, name in found.items():
        if name != dataset:
            raise ZooError(
                f"{folder / RECORD} says {name}, but this table is {dataset}'s: "
                "give each dataset its own --out (and --also) folders"
            )
    return dataset


def render(results: dict[tuple[str, int, str], dict], dataset: str = "ETTh1") -> str:
    """One row per (features, horizon): MSE / MAE of each model, the paper's Informer beside ours when it has one."""
    cell = lambda r: f"{r['mse']:.3f} / {r['mae']:.3f}" if r else "not run"
    paper = PAPER.get(dataset)
    season = "seasonal naive (24 h)" if dataset in STEPS_PER_DAY else "seasonal naive (1 day)"
    columns = ["features", "horizon", "seq_len", "Informer (ours)", "epochs run (best)"]
    columns += ["Informer (paper)"] * bool(paper) + ["DLinear", "NLinear", "repeat last", season, "classic AR"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for features in ("M", "S"):
        for horizon, (seq_len, _, _) in windows_of(dataset)[features].items():
            row = {m: results.get((features, horizon, m)) for m in MODELS}
            if not any(row.values()):
                continue
            informer = row["informer"]
            cells = [features, horizon, seq_len, cell(informer), informer["epochs"] if informer else ""]
            if paper:
                cells.append("{:.3f} / {:.3f}".format(*paper[features][horizon]))
            lines.append("| " + " | ".join(map(str, [*cells, *(cell(row[m]) for m in MODELS[1:])])) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="ETTh1.csv, ETTh2.csv, ETTm1.csv, ETTm2.csv or a file in their layout")
    parser.add_argument("--features", nargs="+", default=["M", "S"], choices=["M", "S"])
    parser.add_argument(
        "--horizons", type=int, nargs="+", default=None, help="default: the dataset's five official horizons"
    )
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
    dataset = table_dataset(None if args.render else args.data, folders)
    horizons = args.horizons or list(windows_of(dataset)["M"])
    for features in [] if args.render else args.features:
        for horizon in horizons:
            window(dataset, features, horizon)  # every horizon is checked before the first run starts
    if not args.render:
        (out / RECORD).write_text(dataset + "\n")
    table = out / "table.md"
    header = (
        f"{dataset}; Informer = model={args.informer}, at most {args.epochs} epoch(s), "
        f"limit_train_batches={args.limit_train_batches}; "
        f"{args.threads} thread(s); MSE / MAE on the standardised test windows"
        f"{dataset_notes(dataset, args.informer)}\n\n"
    )
    for features in [] if args.render else args.features:
        for horizon in horizons:
            for name in args.models:
                folder = out / f"{features}_{horizon}_{name}"
                if (folder / "metrics.json").is_file():
                    continue  # finished earlier: keep it
                run_cell(
                    args.data,
                    features,
                    horizon,
                    [*model_overrides(name, features, horizon, args, dataset), *args.override],
                    folder,
                )
                table.write_text(
                    header + render(collect(folders), dataset)
                )  # after every run: a long grid's rows survive
    table.write_text(header + render(collect(folders), dataset))
    print(table.read_text())


if __name__ == "__main__":
    main()
