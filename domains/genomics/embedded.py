"""The embedded default data: real JASPAR motifs planted into synthetic background DNA.

What it is, honestly: a *synthetic* benchmark. The motifs are real (JASPAR CORE
matrices of CTCF, GATA1, SP1 and TP53, shipped by `pyjaspar`); each example is
one site sampled base by base from a motif's frequency matrix and planted into
background drawn from an order-1 Markov chain whose transitions are rounded,
illustrative values close to human dinucleotide frequencies (AT-rich, CpG
depleted). The label is which factor's site the sequence holds (chance 0.25).

Held-out checks keep it honest:
- `train`/`val` plant the site in the first half of the sequence, `test` in the
  second half, so a model must find the motif wherever it is, not memorise a place;
- `test_rc` plants the reverse complement (training sites are all on the forward
  strand), so it measures whether a model learned the other strand;
- `shuffle_labels` (in the datamodule) permutes the training labels: accuracy must
  fall to chance, or the task leaks;
- the training-free PWM scanner (`jaspar.scanner_predictions`) is the ceiling.

The same background and motifs make a small genome (`synthetic_genome`) for
next-nucleotide pre-training and per-base labelling (sites as BED-like regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from domains.genomics.jaspar import BASES, DEFAULT_MOTIFS, JASPAR_RELEASE, Motif, load_motifs
from domains.genomics.records import Example, Region

# P(next base | previous base), rows and columns A C G T: AT-rich with CpG depletion.
TRANSITIONS = np.array(
    [
        [0.33, 0.17, 0.24, 0.26],
        [0.35, 0.26, 0.05, 0.34],
        [0.29, 0.21, 0.26, 0.24],
        [0.22, 0.20, 0.25, 0.33],
    ]
)
REGIONS = {"first": (0.0, 0.5), "second": (0.5, 1.0), "any": (0.0, 1.0)}


def stationary() -> np.ndarray:
    values, vectors = np.linalg.eig(TRANSITIONS.T)
    p = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    return p / p.sum()


def entropy_rate() -> float:
    """Nats per base of the background chain: the best loss any next-nucleotide model can reach on it."""
    return float(-(stationary()[:, None] * TRANSITIONS * np.log(TRANSITIONS)).sum())


def background(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(n, length) base indices of the Markov chain (one vectorised step per position)."""
    out = np.empty((n, length), dtype=np.int64)
    out[:, 0] = rng.choice(4, size=n, p=stationary())
    cumulative = TRANSITIONS.cumsum(1)
    draws = rng.random((n, length))
    for t in range(1, length):
        out[:, t] = np.minimum((draws[:, t, None] > cumulative[out[:, t - 1]]).sum(1), 3)
    return out


def sample_site(motif: Motif, rng: np.random.Generator, reverse: bool = False) -> np.ndarray:
    """Base indices of one site drawn column by column from the motif's frequencies."""
    probabilities = motif.probabilities()
    site = (rng.random(motif.width)[None] > probabilities.cumsum(0)).sum(0).clip(max=3)
    return 3 - site[::-1] if reverse else site  # ACGT order: complement of index i is 3 - i


def to_text(indices: np.ndarray) -> str:
    return np.frombuffer(BASES.encode(), dtype=np.uint8)[indices].tobytes().decode("ascii")


@dataclass(frozen=True)
class MotifTask:
    """Sizes of the embedded classification data; `splits()` builds all four sets deterministically."""

    length: int = 100
    n_train: int = 2000
    n_val: int = 400
    n_test: int = 800
    motif_ids: Sequence[str] = DEFAULT_MOTIFS
    release: str = JASPAR_RELEASE
    seed: int = 0

    def motifs(self) -> list[Motif]:
        return load_motifs(self.motif_ids, self.release)

    def examples(self, split: str, n: int, region: str, reverse: bool, seed: int) -> list[Example]:
        rng = np.random.default_rng(seed)
        motifs = self.motifs()
        widest = max(m.width for m in motifs)
        if self.length < 2 * widest + 2:
            raise ValueError(
                f"data.length={self.length} is too short for motifs of width {widest}; use {2 * widest + 2} or more"
            )
        labels = rng.permutation(np.arange(n) % len(motifs))
        seqs = background(n, self.length, rng)
        lo_frac, hi_frac = REGIONS[region]
        out = []
        for i, k in enumerate(labels):
            site = sample_site(motifs[k], rng, reverse)
            lo, hi = int(lo_frac * self.length), int(hi_frac * self.length) - len(site)
            start = int(rng.integers(lo, hi + 1))
            seqs[i, start : start + len(site)] = site
            out.append(Example(f"{split}_{i:05d}", to_text(seqs[i]), motifs[k].name))
        return out

    def splits(self) -> dict[str, list[Example]]:
        s = self.seed * 10
        return {
            "train": self.examples("train", self.n_train, "first", False, s + 1),
            "val": self.examples("val", self.n_val, "first", False, s + 2),
            "test": self.examples("test", self.n_test, "second", False, s + 3),
            "test_rc": self.examples("test_rc", self.n_test, "second", True, s + 4),
        }


def synthetic_genome(
    motifs: Sequence[Motif], records: int = 4, length: int = 50_000, mean_gap: int = 150, seed: int = 0
) -> tuple[dict[str, str], list[Region]]:
    """Chromosome-like records with motif sites every ~`mean_gap` bases on either strand, and the sites.

    Region.name is the motif's factor name; Region.strand '+' or '-'."""
    rng = np.random.default_rng(seed)
    seqs = background(records, length, rng)
    regions: list[Region] = []
    for r in range(records):
        position = int(rng.integers(0, mean_gap))
        while True:
            k = int(rng.integers(len(motifs)))
            reverse = bool(rng.integers(2))
            site = sample_site(motifs[k], rng, reverse)
            if position + len(site) > length:
                break
            seqs[r, position : position + len(site)] = site
            regions.append(
                Region(f"chr{r + 1}", position, position + len(site), motifs[k].name, "-" if reverse else "+")
            )
            position += len(site) + int(rng.integers(mean_gap // 2, 3 * mean_gap // 2))
    return {f"chr{r + 1}": to_text(seqs[r]) for r in range(records)}, regions
