"""Data sets that ship inside RDKit, so `zoo chem train` runs with no download.

- `nci`: the first 4,999 structures of the NCI open database (RDKit
  `Data/NCI/first_5K.smi`): real, diverse small molecules; the default for
  language-model training.
- `chembl_pic50`: 1,017 molecules with *measured* pIC50 values from one ChEMBL
  document (CHEMBL2321810), shipped as the Free-Wilson example in RDKit
  `Contrib/FreeWilson/data`; the default property-regression set. The file
  is sorted by activity, so it is read in a fixed shuffled order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from rdkit import Chem, RDConfig

from domains.chem.readers import Molecule, MoleculeTable, read_molecules
from zoo.errors import DataError

EMBEDDED = ("nci", "chembl_pic50")


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(
            f"{path}: this RDKit installation lacks the embedded data file; reinstall rdkit from PyPI or give "
            "data.path=<your file>"
        )
    return path


def embedded_path(name: str) -> Path:
    if name == "nci":
        return _require(Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi")
    if name == "chembl_pic50":
        return _require(Path(RDConfig.RDContribDir) / "FreeWilson" / "data" / "CHEMBL2321810.smi")
    raise DataError(f"unknown embedded data set {name!r}; choose one of {', '.join(EMBEDDED)} or give data.path=<file>")


def load_embedded(name: str, canonical: bool = True, dedupe: bool = True, limit: int | None = None) -> MoleculeTable:
    """An embedded set as a MoleculeTable; `chembl_pic50` molecules carry the target `pIC50`.

    The few NCI records RDKit cannot parse (valence errors) are skipped with a log line.
    """
    path = embedded_path(name)
    if name == "nci":
        return read_molecules(
            path, canonical=canonical, dedupe=dedupe, limit=limit, on_invalid="skip", write_rejects=False
        )
    with open(_require(path.with_name("CHEMBL2321810_act.csv")), newline="") as handle:
        labels = {row["Name"]: float(row["Act"]) for row in csv.DictReader(handle)}
    table = read_molecules(path, canonical=False, dedupe=False, on_invalid="skip", write_rejects=False)
    # The file is sorted by activity; a fixed shuffle keeps `limit` from taking only the weakest compounds.
    order = np.random.default_rng(0).permutation(len(table.molecules))
    molecules, seen = [], set()
    for molecule in (table.molecules[i] for i in order):
        smiles = Chem.CanonSmiles(molecule.smiles) if canonical else molecule.smiles
        if molecule.id not in labels or (dedupe and smiles in seen):
            continue
        seen.add(smiles)
        molecules.append(Molecule(molecule.id, smiles, {"pIC50": labels[molecule.id]}))
        if limit and len(molecules) >= limit:
            break
    return MoleculeTable(str(path), molecules, table.rejected)
