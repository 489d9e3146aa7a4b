"""Generation metrics computed with RDKit, following the MOSES benchmark.

Validity, uniqueness, novelty, internal diversity and property-distribution
distances after Polykovskiy et al., "Molecular Sets (MOSES)" (Front.
Pharmacol. 2020): validity is the fraction of samples RDKit parses; uniqueness
the fraction of distinct canonical SMILES among the valid ones; novelty the
fraction of those not in the training set; internal diversity IntDiv1 = 1 - mean
Tanimoto similarity of Morgan fingerprints (radius 2, 2048 bits) over distinct
pairs of the unique valid molecules; and for MW, logP (Crippen), QED and TPSA
the 1-D Wasserstein distance between the unique valid molecules and the
reference. Two departures from the MOSES code, so the numbers are not directly
comparable with MOSES tables: MOSES's IntDiv averages over all pairs of valid
samples (self-pairs and repeats included) with 1024-bit fingerprints, and its
descriptor distances use all valid samples.

FCD (Preuer et al., J. Chem. Inf. Model. 2018) is added when the `fcd` package,
which ships its ChemNet weights, is installed; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors

log = logging.getLogger(__name__)

DESCRIPTORS: dict[str, Callable[[Chem.Mol], float]] = {
    "mw": Descriptors.MolWt,
    "logp": Crippen.MolLogP,
    "qed": QED.qed,
    "tpsa": rdMolDescriptors.CalcTPSA,
}


def to_mol(smiles: str) -> Chem.Mol | None:
    """The RDKit molecule of a valid, non-empty SMILES, else None (RDKit's own error print silenced)."""
    if not smiles:
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def canonical_set(smiles: Sequence[str]) -> set[str]:
    return {Chem.MolToSmiles(m) for m in map(to_mol, smiles) if m is not None}


def morgan_fingerprints(mols: Sequence[Chem.Mol], radius: int = 2, bits: int = 2048) -> list:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    return [generator.GetFingerprint(m) for m in mols]


def internal_diversity(mols: Sequence[Chem.Mol], max_molecules: int = 1000, seed: int = 0) -> float:
    """1 - mean Tanimoto similarity over all distinct pairs (IntDiv1); nan for fewer than two molecules."""
    if len(mols) > max_molecules:
        keep = np.random.default_rng(seed).choice(len(mols), max_molecules, replace=False)
        mols = [mols[i] for i in keep]
    if len(mols) < 2:
        return float("nan")
    fps = morgan_fingerprints(mols)
    total = sum(sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1 :])) for i in range(len(fps) - 1))
    pairs = len(fps) * (len(fps) - 1) / 2
    return 1.0 - total / pairs


def max_similarity(mols: Sequence[Chem.Mol], reference: Sequence[Chem.Mol]) -> float:
    """Mean over `mols` of the highest Tanimoto similarity to any reference molecule."""
    if not mols or not reference:
        return float("nan")
    ref = morgan_fingerprints(reference)
    return float(np.mean([max(DataStructs.BulkTanimotoSimilarity(fp, ref)) for fp in morgan_fingerprints(mols)]))


def wasserstein_1d(a: Sequence[float], b: Sequence[float]) -> float:
    """Earth mover's distance between two 1-D samples: the integral of |F_a - F_b|."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if not len(a) or not len(b):
        return float("nan")
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def descriptor_values(mols: Sequence[Chem.Mol]) -> dict[str, list[float]]:
    return {name: [fn(m) for m in mols] for name, fn in DESCRIPTORS.items()}


def fcd_available() -> bool:
    return importlib.util.find_spec("fcd") is not None


def generation_metrics(
    generated: Sequence[str],
    training: Sequence[str] = (),
    reference: Sequence[str] = (),
    prompt: Sequence[str] = (),
    fcd: bool = False,
) -> dict[str, float]:
    """MOSES-style metrics of generated SMILES strings (invalid and empty ones included as samples).

    training: for novelty. reference: for descriptor distances and FCD (e.g. the test set).
    prompt: in-context examples; adds `prompt_similarity`, the mean best Tanimoto to them.
    """
    mols = [to_mol(s) for s in generated]
    valid = [m for m in mols if m is not None]
    unique: dict[str, Chem.Mol] = {}
    for m in valid:
        unique.setdefault(Chem.MolToSmiles(m), m)
    metrics = {
        "samples": float(len(generated)),
        "validity": len(valid) / len(generated) if generated else float("nan"),
        "uniqueness": len(unique) / len(valid) if valid else float("nan"),
    }
    if training:
        known = canonical_set(training)
        metrics["novelty"] = sum(s not in known for s in unique) / len(unique) if unique else float("nan")
    metrics["internal_diversity"] = internal_diversity(list(unique.values()))
    if reference:
        ref_mols = [m for m in map(to_mol, reference) if m is not None]
        ours, theirs = descriptor_values(list(unique.values())), descriptor_values(ref_mols)
        for name in DESCRIPTORS:
            metrics[f"w1_{name}"] = wasserstein_1d(ours[name], theirs[name])
        if fcd and fcd_available() and len(valid) > 1:
            from fcd import get_fcd

            # As MOSES: over all valid samples, duplicates included.
            metrics["fcd"] = float(
                get_fcd([Chem.MolToSmiles(m) for m in valid], [Chem.MolToSmiles(m) for m in ref_mols], device="cpu")
            )
        elif fcd:
            log.warning("FCD skipped: install the `fcd` package (it ships the ChemNet weights) to compute it")
    if prompt:
        metrics["prompt_similarity"] = max_similarity(
            list(unique.values()), [m for m in map(to_mol, prompt) if m is not None]
        )
    return metrics


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney U statistic (ties count one half); nan for one class."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties so equal scores contribute 1/2.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    for start, stop in zip(np.r_[0, boundaries], np.r_[boundaries, len(scores)]):
        ranks[order[start:stop]] = (start + stop + 1) / 2
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def property_metrics(
    targets: np.ndarray, predictions: np.ndarray, names: Sequence[str], task_type: str
) -> dict[str, float]:
    """Per-target and mean metrics over labelled entries: RMSE/MAE/R² (regression) or ROC-AUC/accuracy."""
    targets, predictions = np.atleast_2d(targets), np.atleast_2d(predictions)
    per_target: dict[str, dict[str, float]] = {}
    for j, name in enumerate(names):
        seen = ~np.isnan(targets[:, j])
        y, p = targets[seen, j], predictions[seen, j]
        if not len(y):
            continue
        if task_type == "regression":
            residual = ((y - p) ** 2).sum()
            spread = ((y - y.mean()) ** 2).sum()
            per_target[name] = {
                "rmse": float(np.sqrt(residual / len(y))),
                "mae": float(np.abs(y - p).mean()),
                "r2": float(1 - residual / spread) if spread > 0 else float("nan"),
            }
        else:
            per_target[name] = {"roc_auc": roc_auc(y, p), "accuracy": float(((p >= 0.5) == (y > 0.5)).mean())}
    metrics: dict[str, float] = {}
    for key in sorted({k for values in per_target.values() for k in values}):
        metrics[key] = float(np.nanmean([values[key] for values in per_target.values()]))
        if len(per_target) > 1:
            metrics.update({f"{key}_{name}": values[key] for name, values in per_target.items()})
    return metrics
