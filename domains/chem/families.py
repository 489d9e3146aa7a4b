"""Molecule families for in-context training: which molecules share a context.

Bio-xLSTM's in-context (ICST) data concatenates molecules from one domain (an
assay's actives, a compound library) into one sequence (Schmidinger et al.,
2024, arXiv:2411.04165). A user file can name each molecule's family in a
column (`group_column`); otherwise a family is a molecule and its nearest
neighbours by Tanimoto similarity of Morgan fingerprints, so the model learns
to continue a set of related molecules with another one like them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from rdkit import DataStructs

from domains.chem.metrics import morgan_fingerprints, to_mol


def fingerprint_matrix(smiles: Sequence[str], bits: int = 2048) -> torch.Tensor:
    """Morgan fingerprints (radius 2) as a dense `(N, bits)` 0/1 float matrix."""
    matrix = np.zeros((len(smiles), bits), dtype=np.float32)
    for row, fp in zip(matrix, morgan_fingerprints([to_mol(s) for s in smiles], bits=bits)):
        DataStructs.ConvertToNumpyArray(fp, row)
    return torch.from_numpy(matrix)


def nearest_neighbours(smiles: Sequence[str], k: int, chunk: int = 1024) -> list[list[int]]:
    """For each molecule the indices of its `k` most similar others by Tanimoto (most similar first)."""
    # Tanimoto = |a & b| / (|a| + |b| - |a & b|); the intersections of 0/1 vectors are one matrix product.
    bits = fingerprint_matrix(smiles)
    counts = bits.sum(1)
    k = min(k, len(smiles) - 1)
    out: list[list[int]] = []
    for start in range(0, len(smiles), chunk):
        inter = bits[start : start + chunk] @ bits.T
        sim = inter / (counts[start : start + chunk, None] + counts[None] - inter).clamp_min(1.0)
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + start] = -1.0  # never its own neighbour
        out += sim.topk(k, dim=1).indices.tolist()
    return out


def group_members(groups: Sequence[str | None]) -> list[list[int]]:
    """For each molecule the other members of its group (a missing group: alone)."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        if g:
            members[g].append(i)
    return [[j for j in members[g] if j != i] if g else [] for i, g in enumerate(groups)]


def families(smiles: Sequence[str], groups: Sequence[str | None] | None, neighbours: int) -> list[list[int]]:
    if groups is not None and any(groups):
        return group_members(groups)
    return nearest_neighbours(smiles, neighbours)


def draw_context(anchor: int, family: Sequence[int], size: int, rng: np.random.Generator) -> list[int]:
    """`size` molecules: the anchor plus others from its family, in random order."""
    others = list(family)
    picked = [others[j] for j in rng.permutation(len(others))[: size - 1]] if others else []
    context = [anchor, *picked]
    return [context[j] for j in rng.permutation(len(context))]
