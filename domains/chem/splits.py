"""Train/val/test splits of molecules: random, or by Bemis-Murcko scaffold.

A scaffold split keeps every molecule sharing a Bemis-Murcko scaffold (Bemis &
Murcko, J. Med. Chem. 1996) in one split, so the test set holds chemotypes the
model never saw: a harder and more honest estimate than a random split. Groups
are assigned as in chemprop's balanced scaffold split (Yang et al., J. Chem.
Inf. Model. 2019): scaffold sets too big for val/test go to train first, the
rest in seeded random order, filling train, then val, then test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

from zoo.errors import ZooError

SPLITS = ("random", "scaffold")


def murcko_scaffold(smiles: str) -> str:
    """Canonical Bemis-Murcko scaffold SMILES; '' for acyclic molecules."""
    mol = Chem.MolFromSmiles(smiles)
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False) if mol is not None else ""


def _sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ZooError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) and sum below 1"
        )
    return int(round(n * val_fraction)), int(round(n * test_fraction))


def random_split(
    n: int, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int], list[int]]:
    n_val, n_test = _sizes(n, val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(n).tolist()
    return sorted(order[n_val + n_test :]), sorted(order[:n_val]), sorted(order[n_val : n_val + n_test])


def scaffold_split(
    smiles: Sequence[str], val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int], list[int]]:
    """Index lists (train, val, test); no scaffold appears in two of them."""
    n = len(smiles)
    n_val, n_test = _sizes(n, val_fraction, test_fraction)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    sets = list(groups.values())
    big = [g for g in sets if len(g) > max(n_val, n_test) / 2]
    small = [g for g in sets if len(g) <= max(n_val, n_test) / 2]
    rng = np.random.default_rng(seed)
    small = [small[i] for i in rng.permutation(len(small))]
    big.sort(key=len, reverse=True)
    n_train = n - n_val - n_test
    train, val, test = [], [], []
    for group in big + small:
        if len(train) + len(group) <= n_train:
            train += group
        elif len(val) + len(group) <= n_val:
            val += group
        else:
            test += group
    return sorted(train), sorted(val), sorted(test)


def split_indices(
    smiles: Sequence[str], how: str, val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    if how == "random":
        return random_split(len(smiles), val_fraction, test_fraction, seed)
    if how == "scaffold":
        return scaffold_split(smiles, val_fraction, test_fraction, seed)
    raise ZooError(f"split={how!r}; choose one of {', '.join(SPLITS)}")
