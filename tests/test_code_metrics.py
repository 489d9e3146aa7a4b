"""Code-completion metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from domains.code.metrics import (
    StatementMetrics,
    TokenCompletionMetrics,
    exact_match,
    lcs_length,
    mrr_at,
    ranks_from_topk,
    rouge_l,
    target_ranks,
)


def test_ranks_and_mrr_by_hand():
    # Vocabulary of 12; targets end up at ranks 1, 3, 11 and 2 (a tie with the truth counts in its favour).
    scores = torch.arange(12, dtype=torch.float).flip(0).repeat(4, 1)  # id 0 scores highest
    scores[3, 5] = scores[3, 1]  # id 5 ties with id 1
    targets = torch.tensor([0, 2, 10, 5])
    ranks = target_ranks(scores, targets)
    assert ranks.tolist() == [1, 3, 11, 2]
    metric = TokenCompletionMetrics()
    mask = torch.tensor([True, True, True, True])
    cardinal = torch.tensor([False, True, True, False])
    metric.update(scores.unsqueeze(0), targets.unsqueeze(0), mask.unsqueeze(0), cardinal.unsqueeze(0))
    out = metric.compute()
    assert out["acc"] == pytest.approx(1 / 4)
    assert out["mrr@10"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)  # rank 11 is outside the top 10
    assert out["acc_cardinal"] == 0.0 and out["mrr@10_cardinal"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["n"] == 4 and out["n_cardinal"] == 2


def test_masked_positions_and_precomputed_ranks():
    metric = TokenCompletionMetrics()
    ranks = torch.tensor([[1, 2, 4, 1]])
    metric.update(None, None, torch.tensor([[True, True, True, False]]), None, ranks=ranks)
    out = metric.compute()
    assert out["n"] == 3 and out["acc"] == pytest.approx(1 / 3)
    assert out["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    assert ranks_from_topk([["a", "b", "c"], ["x", "y"], ["q"]], ["b", "z", "q"]) == [2, None, 1]
    assert mrr_at([2, None, 1]) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert mrr_at([11]) == 0.0


def test_lcs_and_rouge_l_by_hand():
    assert lcs_length("ABCBDAB", "BDCABA") == 4  # the textbook example (BCBA)
    assert lcs_length([], [1]) == 0
    score = rouge_l(["a", "b", "c", "d"], ["a", "c", "d", "e"])  # LCS "a c d"
    assert score == pytest.approx({"precision": 0.75, "recall": 0.75, "f": 0.75})
    score = rouge_l(["a", "b"], ["b", "a", "c"])  # LCS 1: P 1/2, R 1/3, F = 2PR / (P + R) = 0.4
    assert score["precision"] == 0.5 and score["recall"] == pytest.approx(1 / 3) and score["f"] == pytest.approx(0.4)
    assert rouge_l(["x"], ["y"])["f"] == 0.0
    assert rouge_l(list("ab"), list("ab"), beta=2.0)["f"] == pytest.approx(1.0)
    assert exact_match(["a", "b"], ("a", "b")) == 1.0 and exact_match(["a"], ["a", "b"]) == 0.0


def test_statement_metrics_cut_both_sides_to_n():
    metrics = StatementMetrics(ns=(2, 3, 4))
    metrics.update(["self", ".", "x", "=", "1"], ["self", ".", "y"])  # counts for n = 2, 3 only
    metrics.update(["return"], ["return", "x", "+", "1"])  # a short prediction, all n
    out = metrics.compute()
    assert out["n@2"] == 2 and out["n@3"] == 2 and out["n@4"] == 1
    # n=2: exact + ROUGE-L(["return"], ["return", "x"]) = 2 * 1 * 0.5 / 1.5
    assert out["exact@2"] == pytest.approx(0.5) and out["rouge_l@2"] == pytest.approx((1 + 2 / 3) / 2)
    # n=3: LCS 2 of 3 (F 2/3) and P 1, R 1/3 (F 0.5)
    assert out["exact@3"] == 0.0 and out["rouge_l@3"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert out["rouge_l@4"] == pytest.approx(2 * 1 * 0.25 / 1.25)
