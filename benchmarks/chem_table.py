"""The chemistry results table (docs/chem.md): Chem-xLSTM vs Transformer vs LSTM on RDKit's embedded data.

For each model, three `zoo chem` commands, run as subprocesses exactly as a user
would type them (each run's metrics.json is read back):

1. `zoo chem train model=M ...`: SMILES language model on the NCI molecules;
   the test step samples molecules -> validity, uniqueness, novelty, diversity.
2. `zoo chem train experiment=property model=M ...`: pIC50 regression from
   scratch on the embedded ChEMBL set, scaffold split -> test RMSE.
3. `zoo chem finetune model=M weights=<1's checkpoint> ...`: the same
   regression starting from the language model.

Two reference points on the same scaffold split are computed here: predicting
the training mean, and ridge regression on Morgan fingerprints (alpha chosen on
the validation split). Nothing is timed; it prints a Markdown table.

    python -m benchmarks.chem_table [--lm-epochs 3] [--property-epochs 10] [--runs runs/chem_table]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

MODELS = ("chem_xlstm", "transformer", "lstm")
QUIET = ["trainer.enable_progress_bar=false", "logger=csv"]


def zoo(args: list[str], runs: Path, run_id: str) -> dict:
    """Run `zoo chem ...` in a subprocess; return its metrics.json."""
    env = {**os.environ, "ZOO_RUNS_DIR": str(runs), "ZOO_RUN_ID": run_id, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "cli.main", "chem", *args, *QUIET]
    print("$ zoo chem " + " ".join(args), flush=True)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    verb = "train" if args[0] == "train" else args[0]
    return json.loads((runs / "chem" / verb / run_id / "metrics.json").read_text())


def reference_rmse(seed: int) -> dict[str, float]:
    """Mean predictor and Morgan-fingerprint ridge regression on the embedded pIC50 scaffold split."""
    from domains.chem.data import PropertyDataModule
    from domains.chem.families import fingerprint_matrix

    dm = PropertyDataModule(seed=seed)
    train, val, test = ([m.smiles for m in part] for part in dm.splits)
    y = [np.array([m.targets["pIC50"] for m in part]) for part in dm.splits]
    x = [fingerprint_matrix(part).numpy().astype(np.float64) for part in (train, val, test)]
    rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    mean = y[0].mean()

    def ridge(alpha: float) -> np.ndarray:
        centred = y[0] - mean
        return np.linalg.solve(x[0].T @ x[0] + alpha * np.eye(x[0].shape[1]), x[0].T @ centred)

    best = min((10.0 ** k for k in range(-1, 4)), key=lambda a: rmse(x[1] @ ridge(a) + mean, y[1]))
    return {"mean": rmse(np.full_like(y[2], mean), y[2]), "ridge": rmse(x[2] @ ridge(best) + mean, y[2]), "alpha": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm-epochs", type=int, default=3)
    parser.add_argument("--property-epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--runs", default="runs/chem_table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = Path(args.runs).resolve()
    rows = {}
    for model in args.models:
        lm = zoo(["train", f"model={model}", "data.max_tokens=64", f"trainer.max_epochs={args.lm_epochs}",
                  f"task.eval_samples={args.samples}", f"seed={args.seed}"], runs, f"{model}_lm")
        rows[model] = {"lm": lm["metrics"], "ckpt": lm["best_checkpoint"]}
    for model in args.models:
        scratch = zoo(["train", "experiment=property", f"model={model}", f"trainer.max_epochs={args.property_epochs}",
                       f"seed={args.seed}"], runs, f"{model}_property")
        rows[model]["scratch"] = scratch["metrics"]
    for model in args.models:
        tuned = zoo(["finetune", f"model={model}", f"weights={rows[model]['ckpt']}", f"trainer.max_epochs={args.property_epochs}",
                     f"seed={args.seed}"], runs, f"{model}_finetune")
        rows[model]["finetune"] = tuned["metrics"]
    reference = reference_rmse(args.seed)
    (runs / "table.json").write_text(json.dumps({"rows": rows, "reference": reference}, indent=2) + "\n")
    print("\n| model | validity | uniqueness | novelty | IntDiv | test loss (nats/token) | pIC50 RMSE scratch | pIC50 RMSE fine-tuned |")
    print("|---|---|---|---|---|---|---|---|")
    for model, row in rows.items():
        lm = row["lm"]
        print(f"| {model} | {lm['test/validity']:.3f} | {lm['test/uniqueness']:.3f} | {lm['test/novelty']:.3f} | "
              f"{lm.get('test/internal_diversity', float('nan')):.3f} | {lm['test/loss']:.3f} | "
              f"{row['scratch']['test/rmse']:.3f} | {row['finetune']['test/rmse']:.3f} |")
    print(f"\npIC50 test RMSE, same scaffold split: training mean {reference['mean']:.3f}; "
          f"Morgan-fingerprint ridge (alpha={reference['alpha']:g}) {reference['ridge']:.3f}")


if __name__ == "__main__":
    main()
