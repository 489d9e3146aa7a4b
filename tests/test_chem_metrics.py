"""Generation and property metrics against hand counts and independent references; the structure grid."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchmetrics.functional as tmf
from rdkit import DataStructs
from rdkit.Chem import Descriptors

from domains.chem.drawing import draw_grid
from domains.chem.metrics import (
    fcd_available,
    generation_metrics,
    internal_diversity,
    morgan_fingerprints,
    property_metrics,
    roc_auc,
    to_mol,
    wasserstein_1d,
)


def test_validity_uniqueness_novelty_by_hand():
    generated = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "CCN", "XX"]  # OCC == CCO; C1CC unclosed ring; '' = unfinished
    metrics = generation_metrics(generated, training=["CCO"])
    assert metrics["validity"] == pytest.approx(4 / 7)
    assert metrics["uniqueness"] == pytest.approx(3 / 4)  # CCO, c1ccccc1, CCN
    assert metrics["novelty"] == pytest.approx(2 / 3)  # CCO was in training (written differently)


def test_internal_diversity_equals_brute_force_pairs():
    smiles = ["CCO", "CCN", "c1ccccc1", "c1ccncc1", "CC(=O)O"]
    mols = [to_mol(s) for s in smiles]
    fps = morgan_fingerprints(mols)
    pairs = [DataStructs.TanimotoSimilarity(a, b) for a, b in itertools.combinations(fps, 2)]
    assert internal_diversity(mols) == pytest.approx(1 - np.mean(pairs))
    assert internal_diversity([to_mol("CCO")] * 3) == pytest.approx(0.0)


def test_wasserstein_matches_a_shift_and_the_quantile_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    assert wasserstein_1d(a, a + 2.5) == pytest.approx(2.5)  # a pure shift moves every unit of mass by 2.5
    b = rng.normal(size=500) * 2
    quantile_form = np.abs(np.sort(a) - np.sort(b)).mean()  # equal sizes: W1 is the mean gap of sorted samples
    assert wasserstein_1d(a, b) == pytest.approx(quantile_form)


def test_descriptor_distance_is_zero_against_itself_and_grows_with_size():
    small = ["CCO", "CCN", "CC"]
    large = ["CCCCCCCCCCO", "CCCCCCCCCCN", "CCCCCCCCCC"]
    same = generation_metrics(small, reference=small)
    assert all(same[f"w1_{k}"] == pytest.approx(0.0) for k in ("mw", "logp", "qed", "tpsa"))
    shifted = generation_metrics(small, reference=large)
    mw_gap = np.mean([Descriptors.MolWt(to_mol(s)) for s in large]) - np.mean(
        [Descriptors.MolWt(to_mol(s)) for s in small]
    )
    assert shifted["w1_mw"] == pytest.approx(mw_gap)  # every small molecule is lighter than every large one


def test_prompt_similarity_prefers_the_prompt_family():
    prompt = ["c1ccccc1O", "c1ccccc1N"]
    close = generation_metrics(["c1ccccc1Cl", "c1ccccc1C"], prompt=prompt)["prompt_similarity"]
    far = generation_metrics(["CCCCCC", "CC(C)CO"], prompt=prompt)["prompt_similarity"]
    assert close > far + 0.2


def test_roc_auc_is_the_pairwise_ranking_probability_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.random(300) > 0.6
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounding makes many ties
    pos, neg = scores[labels][:, None], scores[~labels][None]
    pairwise = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    assert roc_auc(labels, scores) == pytest.approx(pairwise, abs=1e-12)
    reference = tmf.auroc(torch.tensor(scores, dtype=torch.float32), torch.tensor(labels).long(), task="binary").item()
    assert roc_auc(labels, scores) == pytest.approx(reference, abs=1e-6)
    assert np.isnan(roc_auc(np.ones(4, bool), np.arange(4.0)))


def test_property_metrics_ignore_missing_labels():
    y = np.array([[1.0, 0.0], [2.0, np.nan], [3.0, 1.0], [np.nan, 1.0]])
    p = np.array([[1.5, 0.2], [2.0, 0.9], [2.5, 0.7], [9.0, 0.1]])
    regression = property_metrics(y[:, :1], p[:, :1], ["a"], "regression")
    assert regression["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 0.25) / 3))
    assert regression["mae"] == pytest.approx(1 / 3)
    assert regression["r2"] == pytest.approx(1 - 0.5 / 2)
    classification = property_metrics(y[:, 1:], p[:, 1:], ["b"], "classification")
    assert classification["roc_auc"] == pytest.approx(0.5) and classification["accuracy"] == pytest.approx(2 / 3)
    both = property_metrics(y, np.c_[p[:, :1], p[:, :1]], ["a", "c"], "regression")
    assert set(both) >= {"rmse", "rmse_a", "rmse_c"}


def test_grid_png_draws_only_valid_molecules(tmp_path):
    path = draw_grid(["CCO", "C1CC", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"], tmp_path / "grid.png", per_row=2, size=100)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(path).size == (200, 200)  # three valid molecules in rows of two
    assert draw_grid(["C1CC"], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(not fcd_available(), reason="the fcd package (ChemNet weights) is not installed")
def test_fcd_is_near_zero_for_identical_sets_and_larger_for_different_ones():
    a = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "CCOC"] * 5
    b = ["CCCl", "CCBr", "c1ccncc1", "CC(=O)N", "CCCN", "COC"] * 5
    assert abs(generation_metrics(a, reference=a, fcd=True)["fcd"]) < 1e-3
    assert generation_metrics(a, reference=b, fcd=True)["fcd"] > 1.0
