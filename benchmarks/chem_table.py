"""The chemistry results table (docs/chem.md): Chem-xLSTM vs Transformer vs LSTM on RDKit's embedded data.

For each model, `zoo chem` commands run as subprocesses exactly as a user would
type them (each run's metrics.json is read back):

1. `zoo chem train model=M ...`: SMILES language model on the NCI molecules -> test loss.
2. `zoo chem sample ckpt_path=<1> ... fcd=true`: molecules at temperature 1 ->
   validity, uniqueness, novelty, IntDiv, descriptor distances, and FCD when
   the `fcd` package (which ships ChemNet's weights) is importable.
3. `zoo chem train experiment=property model=M ...`: pIC50 regression from
   scratch on the embedded ChEMBL set, scaffold split -> test RMSE.
4. `zoo chem finetune model=M weights=<1> ...`: the same regression from the LM.
5. `zoo chem train experiment=incontext model=M weights=<1> ...`: the LM
   trained further on families of `--context-size` nearest-neighbour molecules
   joined by `<sep>`; then, in this process, in-context generation is measured
   (`steering`): prompts of three related *test* molecules against the same
   model unprompted.

References computed here: for the property columns, on the same scaffold
split, predicting the training mean and ridge regression on Morgan
fingerprints (alpha chosen on the validation split); for in-context
generation, the similarity to each prompt of real relatives (the anchor's next
three test neighbours). Steps run in the order 1, 2, 5, 3, 4 for every model in
turn at each step, so an interrupted run has whole columns. Nothing is timed; it prints a Markdown table and writes
`<runs>/table.json`. A run whose metrics.json exists is reused, so an
interrupted benchmark continues where it stopped.

    python -m benchmarks.chem_table [--lm-epochs 3] [--property-epochs 10] [--incontext-epochs 1]
        [--runs runs/chem_table]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

MODELS = ("chem_xlstm", "transformer", "lstm")
QUIET = ["trainer.enable_progress_bar=false", "logger=csv"]
MAX_TOKENS = 64


def zoo(args: list[str], runs: Path, run_id: str) -> dict:
    """Run `zoo chem ...` in a subprocess (or reuse its finished run); return its metrics.json."""
    done = runs / "chem" / args[0] / run_id / "metrics.json"
    print("$ zoo chem " + " ".join(args), flush=True)
    if not done.is_file():
        env = {
            **os.environ,
            "ZOO_RUNS_DIR": str(runs),
            "ZOO_RUN_ID": run_id,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        }
        subprocess.run(
            [sys.executable, "-m", "cli.main", "chem", *args, *QUIET], env=env, check=True, stdout=subprocess.DEVNULL
        )
    return json.loads(done.read_text())


def parameters(ckpt: str) -> int:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return sum(v.numel() for k, v in state.items() if k.startswith("backbone."))


def reference_rmse(seed: int) -> dict[str, float]:
    """Mean predictor and Morgan-fingerprint ridge regression on the embedded pIC50 scaffold split."""
    from domains.chem.data import PropertyDataModule
    from domains.chem.families import fingerprint_matrix

    dm = PropertyDataModule(seed=seed)
    y = [np.array([m.targets["pIC50"] for m in part]) for part in dm.splits]
    x = [fingerprint_matrix([m.smiles for m in part]).numpy().astype(np.float64) for part in dm.splits]
    rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))
    mean = y[0].mean()

    def ridge(alpha: float) -> np.ndarray:
        return np.linalg.solve(x[0].T @ x[0] + alpha * np.eye(x[0].shape[1]), x[0].T @ (y[0] - mean))

    best = min((10.0**k for k in range(-1, 4)), key=lambda a: rmse(x[1] @ ridge(a) + mean, y[1]))
    return {"mean": rmse(np.full_like(y[2], mean), y[2]), "ridge": rmse(x[2] @ ridge(best) + mean, y[2]), "alpha": best}


def steering(ckpt: str, seed: int, limit: int | None, prompts: int = 20, per_prompt: int = 32) -> dict[str, float]:
    """In-context generation on held-out families: prompted vs unprompted samples of one model.

    Each prompt is a test molecule and its two most similar test molecules (Morgan
    Tanimoto). For the prompted samples and for as many unprompted samples of the
    same model, `prompt_similarity` is the mean best Tanimoto similarity to that
    prompt; `copies` the fraction of valid samples that repeat a prompt molecule.
    """
    from domains.chem.data import SmilesDataModule
    from domains.chem.families import nearest_neighbours
    from domains.chem.metrics import generation_metrics
    from domains.chem.sampling import canonical_or_none, sample
    from domains.chem.tasks import SmilesLMTask

    task = SmilesLMTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    model, tokenizer = task.backbone.eval(), task.tokenizer
    dm = SmilesDataModule(max_tokens=MAX_TOKENS, limit=limit, seed=seed)
    test = dm.test_smiles
    neighbours = nearest_neighbours(test, 2)
    anchors = np.random.default_rng(seed).choice(len(test), min(prompts, len(test)), replace=False)
    free = sample(model, tokenizer, len(anchors) * per_prompt, batch_size=128, seed=seed, max_tokens=100)
    scores: dict[str, list[float]] = {}
    for k, anchor in enumerate(anchors):
        prompt = [test[anchor], *(test[j] for j in neighbours[anchor])]
        drawn = sample(
            model, tokenizer, per_prompt, batch_size=per_prompt, seed=seed + 1 + k, prompt=prompt, max_tokens=100
        )
        for name, samples in (("prompted", drawn), ("unprompted", free[k * per_prompt : (k + 1) * per_prompt])):
            texts = [s.text if s.finished else "" for s in samples]
            metrics = generation_metrics(texts, training=dm.train_smiles, prompt=prompt)
            valid = [c for c in map(canonical_or_none, texts) if c]
            for key in ("validity", "prompt_similarity", "novelty"):
                scores.setdefault(f"{name}_{key}", []).append(metrics.get(key, float("nan")))
            scores.setdefault(f"{name}_copies", []).append(
                sum(c in prompt for c in valid) / len(valid) if valid else float("nan")
            )
    return {key: float(np.nanmean(values)) for key, values in scores.items()}


def family_similarity(seed: int, limit: int | None, prompts: int = 20) -> float:
    """What real relatives score: each `steering` prompt's similarity to the anchor's next three test neighbours."""
    from domains.chem.data import SmilesDataModule
    from domains.chem.families import nearest_neighbours
    from domains.chem.metrics import max_similarity, to_mol

    test = SmilesDataModule(max_tokens=MAX_TOKENS, limit=limit, seed=seed).test_smiles
    neighbours = nearest_neighbours(test, 5)
    anchors = np.random.default_rng(seed).choice(len(test), min(prompts, len(test)), replace=False)  # as in steering
    scores = [
        max_similarity([to_mol(test[j]) for j in neighbours[a][2:]], [to_mol(test[j]) for j in [a, *neighbours[a][:2]]])
        for a in anchors
    ]
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm-epochs", type=int, default=3)
    parser.add_argument("--property-epochs", type=int, default=10)
    parser.add_argument("--incontext-epochs", type=int, default=1)
    parser.add_argument("--context-size", type=int, default=4)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=None, help="molecules read from each embedded set (a quick check)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--runs", default="runs/chem_table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = Path(args.runs).resolve()
    data = [f"data.max_tokens={MAX_TOKENS}", f"seed={args.seed}"] + ([f"data.limit={args.limit}"] if args.limit else [])
    prop = [f"seed={args.seed}", f"trainer.max_epochs={args.property_epochs}"] + (
        [f"data.limit={args.limit}"] if args.limit else []
    )
    rows: dict[str, dict] = {model: {} for model in args.models}
    save = lambda **extra: (runs / "table.json").write_text(
        json.dumps({"args": vars(args), "rows": rows, **extra}, indent=2) + "\n"
    )
    # Generation, then in-context, then property, every model at each stage (see the docstring).
    for model, row in rows.items():
        lm = zoo(
            ["train", f"model={model}", *data, f"trainer.max_epochs={args.lm_epochs}", "task.eval_samples=0"],
            runs,
            f"{model}_lm",
        )
        row["lm"], row["ckpt"], row["parameters"] = (
            lm["metrics"],
            lm["best_checkpoint"],
            parameters(lm["best_checkpoint"]),
        )
        row["sample"] = zoo(
            [
                "sample",
                f"model={model}",
                f"ckpt_path={row['ckpt']}",
                *data,
                f"data.num_samples={args.samples}",
                "data.sample_batch_size=128",
                "fcd=true",
            ],
            runs,
            f"{model}_sample",
        )["metrics"]
        save()
    for model, row in rows.items():
        icl = zoo(
            [
                "train",
                "experiment=incontext",
                f"model={model}",
                f"weights={row['ckpt']}",
                *data,
                f"data.context_size={args.context_size}",
                f"trainer.max_epochs={args.incontext_epochs}",
                "task.eval_samples=0",
            ],
            runs,
            f"{model}_incontext",
        )
        cached = Path(icl["output_dir"]) / "steering.json"
        if not cached.is_file():
            cached.write_text(json.dumps(steering(icl["best_checkpoint"], args.seed, args.limit), indent=2) + "\n")
        row["incontext"] = {"test/loss": icl["metrics"]["test/loss"], **json.loads(cached.read_text())}
        save()
    for model, row in rows.items():
        row["scratch"] = zoo(["train", "experiment=property", f"model={model}", *prop], runs, f"{model}_property")[
            "metrics"
        ]
        row["finetune"] = zoo(
            ["finetune", f"model={model}", f"weights={row['ckpt']}", *prop], runs, f"{model}_finetune"
        )["metrics"]
        save()
    reference = {**reference_rmse(args.seed), "family_similarity": family_similarity(args.seed, args.limit)}
    save(reference=reference)
    print_tables(rows, reference)


def print_tables(rows: dict[str, dict], reference: dict[str, float]) -> None:
    def cell(row: dict, part: str, key: str, digits: int = 3) -> str:
        value = row.get(part, {}).get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    print(
        "\n| model | parameters | validity | uniqueness | novelty | IntDiv1 | FCD | test loss (nats/token) | "
        "pIC50 RMSE scratch | pIC50 RMSE fine-tuned |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, row in rows.items():
        generation = " | ".join(
            cell(row, "sample", key) for key in ("validity", "uniqueness", "novelty", "internal_diversity")
        )
        print(
            f"| {model} | {row['parameters'] / 1e6:.2f}M | {generation} | {cell(row, 'sample', 'fcd', 2)} | "
            f"{cell(row, 'lm', 'test/loss')} | "
            f"{cell(row, 'scratch', 'test/rmse')} | {cell(row, 'finetune', 'test/rmse')} |"
        )
    print(
        "\n| model | in-context test loss | similarity to prompt, prompted | unprompted | copies of a prompt "
        "molecule | validity prompted | unprompted |"
    )
    print("|---|---|---|---|---|---|---|")
    for model, row in rows.items():
        keys = (
            "test/loss",
            "prompted_prompt_similarity",
            "unprompted_prompt_similarity",
            "prompted_copies",
            "prompted_validity",
            "unprompted_validity",
        )
        print(f"| {model} | " + " | ".join(cell(row, "incontext", key) for key in keys) + " |")
    print(
        "\nSimilarity to the prompt of real relatives (the anchor's next three test neighbours): "
        f"{reference['family_similarity']:.3f}"
    )
    print(
        f"pIC50 test RMSE, same scaffold split: training mean {reference['mean']:.3f}; "
        f"Morgan-fingerprint ridge (alpha={reference['alpha']:g}) {reference['ridge']:.3f}"
    )


if __name__ == "__main__":
    main()
