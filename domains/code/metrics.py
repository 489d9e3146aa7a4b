"""Code-completion metrics as CodeFill reports them.

Izadi, Gismondi, Gousios, "CodeFill" (ICSE 2022) score single-token completion
by accuracy and mean reciprocal rank over the top 10 (MRR@10: 1/rank of the
true token when it is among the first 10, else 0), on all tokens and at the
cardinal completion points; statement completion by ROUGE-L (Lin, "ROUGE",
2004: F-measure of the longest common subsequence, beta = 1) and exact match of
the first n predicted tokens against the first n true tokens, n = 2..8, over
statements that have at least n tokens left.

Ranks count the candidates scored strictly higher than the truth, plus one (ties
are resolved in the truth's favour). Token metrics here are over BPE pieces
(the unit the model and the n-gram baseline predict); statement metrics are over
source tokens (decoded words).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

STATEMENT_NS = tuple(range(2, 9))


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target among its row's scores: `(..., V)`, `(...)` -> `(...)` long."""
    true = scores.gather(-1, targets.clamp_min(0).unsqueeze(-1))
    return (scores > true).sum(-1) + 1


def reciprocal_rank_at(ranks: torch.Tensor, k: int = 10) -> torch.Tensor:
    return torch.where(ranks <= k, 1.0 / ranks.double(), torch.zeros((), dtype=torch.float64))


def ranks_from_topk(predictions: Sequence[Sequence], targets: Sequence) -> list[int | None]:
    """1-based rank of each target in its ranked candidate list (None when absent), for list-based predictors."""
    out = []
    for ranked, target in zip(predictions, targets):
        out.append(next((i + 1 for i, p in enumerate(ranked) if p == target), None))
    return out


def mrr_at(ranks: Sequence[int | None], k: int = 10) -> float:
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / max(len(ranks), 1)


class TokenCompletionMetrics(Metric):
    """Accuracy and MRR@k of next-piece prediction, on all targets and at cardinal points.

    update(scores (B, L, V) logits or log-probs, targets (B, L), mask (B, L) bool, cardinal (B, L) bool),
    or update(None, None, mask, cardinal, ranks=(B, L) 1-based ranks) for list-based predictors.
    compute() -> {"acc", "mrr@10", "acc_cardinal", "mrr@10_cardinal", "n", "n_cardinal"}.
    """

    full_state_update = False

    def __init__(self, k: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        for name in ("hits", "rr", "count", "hits_c", "rr_c", "count_c"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        scores: torch.Tensor | None,
        targets: torch.Tensor | None,
        mask: torch.Tensor,
        cardinal: torch.Tensor | None = None,
        ranks: torch.Tensor | None = None,
    ) -> None:
        """Scores `(B, L, V)` and targets `(B, L)`, or precomputed 1-based `ranks` `(B, L)` (a baseline's)."""
        if ranks is None:
            ranks = target_ranks(scores.detach(), targets)
        ranks, mask = ranks.to(self.hits.device), mask.to(self.hits.device).bool()
        rr = reciprocal_rank_at(ranks, self.k)
        hit = (ranks == 1).double()
        self.hits += hit[mask].sum()
        self.rr += rr[mask].sum()
        self.count += mask.sum()
        if cardinal is not None:
            c = mask & cardinal.to(mask.device).bool()
            self.hits_c += hit[c].sum()
            self.rr_c += rr[c].sum()
            self.count_c += c.sum()

    def compute(self) -> dict[str, float]:
        n, nc = self.count.clamp_min(1), self.count_c.clamp_min(1)
        return {
            "acc": float(self.hits / n),
            f"mrr@{self.k}": float(self.rr / n),
            "acc_cardinal": float(self.hits_c / nc),
            f"mrr@{self.k}_cardinal": float(self.rr_c / nc),
            "n": int(self.count),
            "n_cardinal": int(self.count_c),
        }


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (dynamic programming, O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: Sequence, reference: Sequence, beta: float = 1.0) -> dict[str, float]:
    """ROUGE-L of two token sequences: LCS precision, recall and F-measure (Lin 2004, eq. 2-4)."""
    lcs = lcs_length(prediction, reference)
    if lcs == 0:
        return {"precision": 0.0, "recall": 0.0, "f": 0.0}
    precision, recall = lcs / len(prediction), lcs / len(reference)
    f = (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    return {"precision": precision, "recall": recall, "f": f}


def exact_match(prediction: Sequence, reference: Sequence) -> float:
    return float(list(prediction) == list(reference))


class StatementMetrics:
    """ROUGE-L (F) and exact match of the first n tokens, for each n in `ns`, averaged over statements.

    A statement counts for n when its reference has at least n tokens; the prediction is cut to n tokens
    (a shorter prediction is compared as it is).
    """

    def __init__(self, ns: Sequence[int] = STATEMENT_NS):
        self.ns = tuple(ns)
        self.rouge = dict.fromkeys(self.ns, 0.0)
        self.exact = dict.fromkeys(self.ns, 0.0)
        self.count = dict.fromkeys(self.ns, 0)

    def update(self, prediction: Sequence, reference: Sequence) -> None:
        for n in self.ns:
            if len(reference) < n:
                continue
            p, r = list(prediction[:n]), list(reference[:n])
            self.rouge[n] += rouge_l(p, r)["f"]
            self.exact[n] += exact_match(p, r)
            self.count[n] += 1

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for n in self.ns:
            c = max(self.count[n], 1)
            out[f"rouge_l@{n}"] = self.rouge[n] / c
            out[f"exact@{n}"] = self.exact[n] / c
            out[f"n@{n}"] = self.count[n]
        return out
