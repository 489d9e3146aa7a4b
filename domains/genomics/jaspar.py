"""Transcription-factor motifs from the JASPAR database shipped inside `pyjaspar`, and a PWM scanner.

JASPAR (Rauluseviciute et al., "JASPAR 2024", Nucleic Acids Res. 2024) holds
position frequency matrices (PFMs) of binding sites measured by ChIP-seq,
SELEX and similar assays. The `pyjaspar` package ships each release as an
SQLite file; it is read here with `sqlite3` (no network). A PFM becomes a
position weight matrix (log-odds against a background, Wasserman & Sandelin,
Nat. Rev. Genet. 2004) for the training-free scanner used as the ceiling of
the embedded task: score every window on both strands, keep the best per motif.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import ZooError

JASPAR_RELEASE = "JASPAR2024"
# CORE vertebrate matrices: CTCF, GATA1, SP1, TP53 (the newest version in the release is used).
DEFAULT_MOTIFS = ("MA0139", "MA0035", "MA0079", "MA0106")
BASES = "ACGT"


@dataclass(frozen=True)
class Motif:
    matrix_id: str  # e.g. MA0139.2
    name: str
    counts: np.ndarray  # (4, W), rows A C G T

    @property
    def width(self) -> int:
        return self.counts.shape[1]

    def probabilities(self, pseudocount: float = 0.8) -> np.ndarray:
        """Column frequencies with a pseudocount split over the four bases (JASPAR's default 0.8)."""
        counts = self.counts + pseudocount / 4
        return counts / counts.sum(0, keepdims=True)

    def log_odds(self, background: Sequence[float] = (0.25,) * 4, pseudocount: float = 0.8) -> np.ndarray:
        return np.log2(self.probabilities(pseudocount) / np.asarray(background, dtype=float)[:, None])


def database_path(release: str = JASPAR_RELEASE) -> Path:
    path = Path(str(resources.files("pyjaspar") / "data" / f"{release}.sqlite"))
    if not path.is_file():
        raise ZooError(
            f"pyjaspar has no {release}.sqlite; install pyjaspar>=4 (it ships JASPAR2014-2026) or set "
            "data.jaspar_release"
        )
    return path


def load_motifs(base_ids: Sequence[str] = DEFAULT_MOTIFS, release: str = JASPAR_RELEASE) -> list[Motif]:
    """The newest version in `release` of each matrix (`MA0139` or an exact `MA0139.1`)."""
    with sqlite3.connect(f"file:{database_path(release)}?mode=ro", uri=True) as db:
        motifs = []
        for requested in base_ids:
            base, _, version = requested.partition(".")
            query = "SELECT ID, BASE_ID, VERSION, NAME FROM MATRIX WHERE BASE_ID = ?" + (
                " AND VERSION = ?" if version else ""
            )
            row = db.execute(
                query + " ORDER BY VERSION DESC LIMIT 1", (base, int(version)) if version else (base,)
            ).fetchone()
            if row is None:
                raise ZooError(f"JASPAR matrix {requested!r} is not in {release}; give CORE ids such as MA0139 (CTCF)")
            internal_id, base_id, version_no, name = row
            cells = db.execute("SELECT row, col, val FROM MATRIX_DATA WHERE ID = ?", (internal_id,)).fetchall()
            width = max(col for _, col, _ in cells)
            counts = np.zeros((4, width))
            for base_letter, col, value in cells:
                counts[BASES.index(base_letter.upper()), col - 1] = value
            motifs.append(Motif(f"{base_id}.{version_no}", name.upper(), counts))
    return motifs


def one_hot(sequences: Sequence[str]) -> torch.Tensor:
    """(N, 4, L) float one-hot of equal-length sequences; N and ambiguity codes are all zero."""
    codes = np.frombuffer("".join(sequences).upper().encode("ascii"), dtype=np.uint8).reshape(len(sequences), -1)
    lookup = np.full(256, 4, dtype=np.int64)
    for i, base in enumerate(BASES):
        lookup[ord(base)] = i
    hot = F.one_hot(torch.from_numpy(lookup[codes]), 5)[..., :4]
    return hot.permute(0, 2, 1).float()


def scan(sequences: Sequence[str], motifs: Sequence[Motif], background: Sequence[float] = (0.25,) * 4) -> np.ndarray:
    """(N, K) best log-odds score of each motif over every position and both strands."""
    x = one_hot(sequences)
    scores = []
    for motif in motifs:
        pwm = torch.from_numpy(motif.log_odds(background)).float()
        forward = F.conv1d(x, pwm[None]).amax(-1)
        reverse = F.conv1d(x, pwm.flip(0, 1)[None]).amax(-1)  # A<->T, C<->G is the row flip of ACGT; then reverse
        scores.append(torch.maximum(forward, reverse)[:, 0])
    return torch.stack(scores, 1).numpy()


def scanner_predictions(sequences: Sequence[str], motifs: Sequence[Motif]) -> np.ndarray:
    """Class = the motif with the highest best-site log-odds score (a uniform background)."""
    return scan(sequences, motifs).argmax(1)
