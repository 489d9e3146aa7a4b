"""Full-catalogue ranking metrics and the two model-free baselines.

Metrics (as the official Recformer `Ranker`, over every catalogue item, none sampled):
- rank = the number of items scored above the target, plus the number of *other* items scored equal
  to it: ties count against the target. The official code counts only strictly higher scores, which
  gives a constant scorer (an untrained model, popularity's many zero counts) a perfect rank.
- NDCG@10 = 1 / log2(rank + 2) if rank < 10 else 0; Recall@10 (= HR@10, one target) = [rank < 10];
  MRR = 1 / (rank + 1); averaged over cases.
- History items are not masked by default, as in the official evaluation: a user may consume an item
  again (in MovieLens-100k no user rates a movie twice, so masking would only make the numbers easier to
  compare with papers that mask). `exclude` masks given items (e.g. the history) when wanted; padding
  never takes part (scores have exactly one column per catalogue item).

Baselines:
- `popularity_scores`: training interaction counts (the same ranking for every user).
- `TfidfTextBaseline`, the ID-free text baseline: each item is the TF-IDF vector of its flattened
  sentence (`key value ...`, lower-cased word tokens, smooth idf, L2-normalised); a user is the mean of the
  history items' vectors; score = cosine. TF-IDF rather than the untrained encoder, whose random
  embeddings carry no text similarity to measure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import torch

from domains.recsys.sentences import item_sentence

K = 10


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of each target among all columns (ties against the target). `exclude` (B, N) bool
    masks items out (never the target)."""
    scores = scores.float()
    if exclude is not None:
        exclude = exclude.clone()
        exclude[torch.arange(len(targets)), targets] = False
        scores = scores.masked_fill(exclude, -math.inf)
    target = scores.gather(1, targets[:, None])
    above = (scores > target).sum(1)
    ties = (scores == target).sum(1) - 1
    return above + ties


def ranking_metrics(ranks: torch.Tensor, k: int = K) -> dict[str, float]:
    """Mean NDCG@k, Recall@k, MRR of 0-based ranks."""
    ranks = ranks.double()
    hit = (ranks < k).double()
    return {
        f"ndcg@{k}": float((hit / torch.log2(ranks + 2)).mean()),
        f"recall@{k}": float(hit.mean()),
        "mrr": float((1 / (ranks + 1)).mean()),
    }


class RankingMetrics:
    """Accumulates ranks batch by batch (a task's validation loop): `update(scores, targets)`, `compute()`."""

    def __init__(self, k: int = K):
        self.k, self.ranks = k, []

    def update(self, scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> None:
        self.ranks.append(target_ranks(scores.detach(), targets.to(scores.device), exclude).cpu())

    def compute(self) -> dict[str, float]:
        if not self.ranks:
            raise ValueError("no cases were scored")
        return ranking_metrics(torch.cat(self.ranks), self.k)

    def reset(self) -> None:
        self.ranks = []


def history_mask(histories: Sequence[Sequence[int]], num_items: int) -> torch.Tensor:
    """(B, N) True on each case's history items (for `exclude`)."""
    mask = torch.zeros(len(histories), num_items, dtype=torch.bool)
    for row, history in enumerate(histories):
        mask[row, list(history)] = True
    return mask


def evaluate(
    score_fn: Callable[[list[list[int]]], torch.Tensor],
    cases: Sequence[tuple[Sequence[int], int]],
    batch_size: int = 256,
    k: int = K,
    mask_history: bool = False,
) -> dict[str, float]:
    """Metrics of `score_fn(histories) -> (B, N)` over (history, target) cases."""
    metrics = RankingMetrics(k)
    for start in range(0, len(cases), batch_size):
        chunk = cases[start : start + batch_size]
        histories = [list(h) for h, _ in chunk]
        scores = score_fn(histories)
        exclude = history_mask(histories, scores.shape[1]).to(scores.device) if mask_history else None
        metrics.update(scores, torch.tensor([t for _, t in chunk], device=scores.device), exclude)
    return metrics.compute()


def random_expectation(num_items: int, k: int = K) -> dict[str, float]:
    """Metrics of a random ranking (the target's rank uniform over 0..N-1)."""
    ranks = torch.arange(num_items)
    return ranking_metrics(ranks, k)


def popularity_scores(train: Sequence[Sequence[int]], num_items: int) -> torch.Tensor:
    """(N,) interaction counts in the training sequences."""
    counts = torch.zeros(num_items)
    for seq in train:
        counts += torch.bincount(torch.tensor(list(seq), dtype=torch.long), minlength=num_items).float()
    return counts


def popularity_baseline(train: Sequence[Sequence[int]], num_items: int) -> Callable[[list[list[int]]], torch.Tensor]:
    counts = popularity_scores(train, num_items)
    return lambda histories: counts.expand(len(histories), -1)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


class TfidfTextBaseline:
    """ID-free text baseline (module docstring): mean TF-IDF of the history vs each item's TF-IDF."""

    def __init__(self, attributes: Sequence[Mapping[str, str]], max_attr_num: int = 3):
        docs = [words(item_sentence(a, max_attr_num)) for a in attributes]
        vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
        df = Counter(w for d in docs for w in set(d))
        idf = torch.tensor([math.log((1 + len(docs)) / (1 + df[w])) + 1 for w in vocab])
        vectors = torch.zeros(len(docs), len(vocab))
        for row, doc in enumerate(docs):
            for w, count in Counter(doc).items():
                vectors[row, vocab[w]] = count
        self.item_vectors = torch.nn.functional.normalize(vectors * idf, dim=1)

    def __call__(self, histories: list[list[int]]) -> torch.Tensor:
        users = torch.stack(
            [self.item_vectors[h].mean(0) if h else torch.zeros(self.item_vectors.shape[1]) for h in histories]
        )
        return torch.nn.functional.normalize(users, dim=1) @ self.item_vectors.T
