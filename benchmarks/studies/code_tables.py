"""The numbers of docs/code.md: CodeFill multitask vs value-only vs Kneser-Ney n-gram, and the encoder swap.

    python -m benchmarks.studies.code_tables [--rows multitask value_only ngram hyena xlstm mamba]
        [--epochs 4] [--max-files 80] [--threads 1] [--out code_tables.json] [--set key=value ...] [--tables-only]

Each row is one `zoo code train` run through `zoo.training.run` (the composed config of the CLI, so the
command beside each row reproduces it) on the default data: 80 files of the running interpreter's standard
library (64 train / 8 val / 8 test, split by top-level package, so every test module belongs to a package never
trained on), value BPE of 2,048 pieces, windows of 256 pieces, 100 statement-completion examples. The neural
rows train `--epochs` epochs at width 128 on one thread; each encoder is sized to the Transformer's parameter
count (+-6%). The n-gram is counted in one pass.

Results are appended to `--out` (JSON, one entry per row; rows already there are skipped, so the study can be
split over processes and resumed), then both tables are printed as markdown. CPU seconds are the process's
(training, validation and the test with its beam searches), not wall time: the machine is shared.
Never asserts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.lr_monitor=null",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
    "logger=none",
    "data.progress=false",
]
# Encoders sized to the Transformer's 0.71M parameters (embeddings and heads are shared: width 128, 2,048 values).
ROWS: dict[str, list[str]] = {
    "multitask": [],
    "value_only": ["multitask=false"],
    "ngram": ["model=ngram"],
    "hyena": ["model.kwargs.backbone=hyena", "model.kwargs.mlp_ratio=3.5"],
    "xlstm": ["model.kwargs.backbone=xlstm", "model.kwargs.depth=4"],
    "mamba": ["model.kwargs.backbone=mamba", "model.kwargs.depth=3", "+model.kwargs.backbone_kwargs.d_state=32"],
}
LABELS = {
    "multitask": "CodeFill multitask (Transformer)",
    "value_only": "CodeFill value-only (Transformer)",
    "ngram": "Kneser-Ney 4-gram",
    "hyena": "CodeFill multitask, Hyena",
    "xlstm": "CodeFill multitask, xLSTM",
    "mamba": "CodeFill multitask, Mamba (CPU reference scan)",
}


def command(row: str, args) -> str:
    extra = [f"trainer.max_epochs={args.epochs}"] if row != "ngram" else []
    if args.max_files != 80:
        extra.append(f"data.max_files={args.max_files}")
    return " ".join(["zoo code train", *ROWS[row], *extra, *args.set, f"threads={args.threads}"])


def train_row(row: str, args, runs: Path) -> dict:
    from hydra import compose, initialize_config_module

    from zoo import load_pipeline
    from zoo.training import run

    overrides = [*ROWS[row], f"data.max_files={args.max_files}", f"threads={args.threads}", *QUIET, *args.set]
    if row != "ngram":
        overrides.append(f"trainer.max_epochs={args.epochs}")
    out = runs / row
    with initialize_config_module(config_module="domains.code.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={out}", f"paths.log_dir={runs}", *overrides])
    cpu, wall = time.process_time(), time.time()
    result = run(cfg)
    cpu, wall = time.process_time() - cpu, time.time() - wall
    task = load_pipeline(result["best_checkpoint"])
    if row == "ngram":
        size = sum(len(nexts) for k in range(1, task.lm.order + 1) for nexts in task.lm.counts[k].values())
    else:
        size = sum(p.numel() for p in task.backbone.parameters())
    metrics = {k: v for k, v in result["metrics"].items() if k.startswith("test/")}
    return {"row": row, "command": command(row, args), "size": size, "cpu_s": cpu, "wall_s": wall, "metrics": metrics}


def table(results: dict[str, dict], rows: list[str], columns: list[tuple[str, str]]) -> str:
    head = "| model | size | " + " | ".join(title for title, _ in columns) + " | CPU s |"
    lines = [head, "|" + "---|" * (len(columns) + 3)]
    for row in rows:
        if row not in results:
            continue
        r = results[row]
        size = f"{r['size'] / 1e6:.2f}M params" if row != "ngram" else f"{r['size'] / 1e3:.0f}k n-grams"
        cells = [f"{100 * r['metrics'].get(key, float('nan')):.1f}" for _, key in columns]
        lines.append(f"| {LABELS[row]} | {size} | " + " | ".join(cells) + f" | {r['cpu_s']:.0f} |")
    return "\n".join(lines)


def print_tables(results: dict[str, dict]) -> None:
    token = [
        ("acc", "test/acc"),
        ("MRR@10", "test/mrr@10"),
        ("acc (cardinal)", "test/acc_cardinal"),
        ("MRR@10 (cardinal)", "test/mrr@10_cardinal"),
    ]
    rouge = [(f"ROUGE-L n={n}", f"test/rouge_l@{n}") for n in range(2, 9)]
    exact = [(f"EM n={n}", f"test/exact@{n}") for n in range(2, 9)]
    tasks, encoders = ["multitask", "value_only", "ngram"], ["multitask", "hyena", "xlstm", "mamba"]
    print("### Multitask vs value-only vs n-gram: next piece (held-out stdlib packages, %)\n")
    print(table(results, tasks, token))
    print("\n### Statement completion (ROUGE-L F, %)\n")
    print(table(results, tasks, rouge))
    print("\n### Statement completion (exact match, %)\n")
    print(table(results, tasks, exact))
    print("\n### Encoder swap at equal parameters (%)\n")
    print(table(results, encoders, token + [("ROUGE-L n=4", "test/rouge_l@4")]))
    print("\nCommands:\n")
    for row in dict.fromkeys(tasks + encoders):
        if row in results:
            print(f"- {LABELS[row]}: `{results[row]['command']}`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-files", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("code_tables.json"))
    parser.add_argument("--set", nargs="*", default=[], help="more overrides for these rows (recorded in the command)")
    parser.add_argument("--tables-only", action="store_true", help="print the tables of --out, train nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if not args.tables_only:
        with tempfile.TemporaryDirectory(prefix="code_tables_") as folder:
            for row in args.rows:
                if row in results:
                    continue
                entry = train_row(row, args, Path(folder) / "runs")
                results = json.loads(args.out.read_text()) if args.out.is_file() else {}  # other processes' rows
                results[row] = entry
                args.out.write_text(json.dumps(results, indent=2) + "\n")
                print(f"{row}: {json.dumps(entry['metrics'])}", flush=True)
    print_tables(results)


if __name__ == "__main__":
    main()
