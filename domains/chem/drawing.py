"""A PNG grid of 2-D structure drawings (RDKit's depiction), written atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rdkit.Chem import Draw

from domains.chem.metrics import to_mol
from zoo.io import atomic_path


def draw_grid(
    smiles: Sequence[str],
    path: str | os.PathLike,
    legends: Sequence[str] | None = None,
    per_row: int = 6,
    max_molecules: int = 48,
    size: int = 220,
) -> Path | None:
    """Draw the valid molecules among `smiles` (at most `max_molecules`); None when there are none."""
    legends = list(legends) if legends is not None else [""] * len(smiles)
    pairs = [(m, legend) for m, legend in zip(map(to_mol, smiles), legends) if m is not None][:max_molecules]
    if not pairs:
        return None
    mols, labels = zip(*pairs)
    image = Draw.MolsToGridImage(
        list(mols),
        molsPerRow=min(per_row, len(mols)),
        subImgSize=(size, size),
        legends=[str(x) for x in labels],
        returnPNG=False,
    )
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
