"""n-gram baseline: interpolated modified Kneser-Ney over value tokens.

The classic code-completion baseline CodeFill (Izadi, Gismondi, Gousios, ICSE
2022) compares against. Smoothing after Chen & Goodman, "An Empirical Study of
Smoothing Techniques for Language Modeling" (1998), section 3.5:

    P_k(w | h) = max(c_k(h w) - D_k(c), 0) / c_k(h .) + gamma_k(h) P_{k-1}(w | h')
    gamma_k(h) = (D_k1 N1(h .) + D_k2 N2(h .) + D_k3+ N3+(h .)) / c_k(h .)

where c_n are raw counts at the highest order n and continuation counts
(distinct left neighbours) below it, h' drops the oldest token of h, an unseen h
gives P_k = P_{k-1}, and P_0 is uniform over the vocabulary. The discounts come
from each order's count-of-counts: Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1,
D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3, each clamped to [0, its count] so the
distribution sums to 1 exactly. Contexts are padded with `<s>`; tokens unseen in
training map to `<unk>`. Tokens can be any JSON-able values (piece ids to compare
with CodeFill on equal terms, or source-token strings).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.io import write_text_atomic

BOS, UNK = "<s>", "<unk>"
FORMAT = "longzoo-kneser-ney"


class KneserNeyLM:
    """Interpolated modified Kneser-Ney n-gram model (`order=1`: a smoothed unigram model)."""

    def __init__(self, order: int = 4):
        if order < 1:
            raise ZooError(f"n-gram order={order}; give 1 or more")
        self.order = order
        self.vocab: list = [BOS, UNK]
        self.index: dict[Hashable, int] = {BOS: 0, UNK: 1}
        # counts[k][context tuple of k-1 ids] = Counter(next id -> count), k = 1..order
        self.counts: list[dict[tuple, Counter]] = [{} for _ in range(order + 1)]
        self.discounts: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * (order + 1)
        self._stats: list[dict[tuple, tuple[float, float]]] = [{} for _ in range(order + 1)]
        self._arrays: dict[tuple[int, tuple], tuple[np.ndarray, np.ndarray]] = {}

    # -------------------------------------------------------------------------- training
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def ids(self, tokens: Iterable[Hashable]) -> list[int]:
        return [self.index.get(t, 1) for t in tokens]

    def fit(self, sequences: Iterable[Sequence[Hashable]]) -> KneserNeyLM:
        """Count the n-grams of every sequence (the vocabulary is what they contain)."""
        n = self.order
        highest: dict[tuple, Counter] = defaultdict(Counter)
        left: list[dict[tuple, set]] = [defaultdict(set) for _ in range(n)]  # k-gram -> distinct left neighbours
        for seq in sequences:
            ids = []
            for tok in seq:
                if tok not in self.index:
                    self.index[tok] = len(self.vocab)
                    self.vocab.append(tok)
                ids.append(self.index[tok])
            padded = [0] * (n - 1) + ids
            for i in range(n - 1, len(padded)):
                gram = tuple(padded[i - n + 1 : i + 1])
                highest[gram[:-1]][gram[-1]] += 1
                for k in range(1, n):  # the k-gram ending at i and its left neighbour
                    left[k][gram[n - k :]].add(gram[n - k - 1])
        self.counts[n] = dict(highest)
        for k in range(1, n):
            table: dict[tuple, Counter] = defaultdict(Counter)
            for gram, neighbours in left[k].items():
                table[gram[:-1]][gram[-1]] = len(neighbours)
            self.counts[k] = dict(table)
        self._finish()
        return self

    def _finish(self) -> None:
        self._arrays.clear()
        for k in range(1, self.order + 1):
            count_of_counts = Counter()
            for nexts in self.counts[k].values():
                count_of_counts.update(c for c in nexts.values() if c <= 4)
            self.discounts[k] = _discounts(*(count_of_counts[i] for i in (1, 2, 3, 4)))
            d1, d2, d3 = self.discounts[k]
            stats = {}
            for context, nexts in self.counts[k].items():
                total = sum(nexts.values())
                n1 = sum(1 for c in nexts.values() if c == 1)
                n2 = sum(1 for c in nexts.values() if c == 2)
                n3 = len(nexts) - n1 - n2
                stats[context] = (float(total), (d1 * n1 + d2 * n2 + d3 * n3) / total)
            self._stats[k] = stats

    def _discount(self, k: int, count: int) -> float:
        d1, d2, d3 = self.discounts[k]
        return 0.0 if count == 0 else d1 if count == 1 else d2 if count == 2 else d3

    # -------------------------------------------------------------------------- probabilities
    def _context_ids(self, context: Sequence[Hashable]) -> tuple[int, ...]:
        ids = self.ids(list(context)[max(len(context) - self.order + 1, 0) :]) if self.order > 1 else []
        return tuple([0] * (self.order - 1 - len(ids)) + ids)

    def prob(self, token: Hashable, context: Sequence[Hashable] = ()) -> float:
        """P(token | context): `context` is the preceding tokens (the last order-1 are used)."""
        w = self.index.get(token, 1)
        if w == 0:
            return 0.0
        h = self._context_ids(context)
        p = 1.0 / (self.vocab_size - 1)  # uniform over everything but <s>
        for k in range(1, self.order + 1):
            ctx = h[len(h) - (k - 1) :] if k > 1 else ()
            stats = self._stats[k].get(ctx)
            if stats is None:
                continue
            total, gamma = stats
            c = self.counts[k][ctx].get(w, 0)
            p = max(c - self._discount(k, c), 0.0) / total + gamma * p
        return p

    def _level(self, k: int, ctx: tuple) -> tuple[np.ndarray, np.ndarray]:
        key = (k, ctx)
        if key not in self._arrays:
            nexts = self.counts[k][ctx]
            ids = np.fromiter(nexts.keys(), dtype=np.int64, count=len(nexts))
            counts = np.fromiter(nexts.values(), dtype=np.float64, count=len(nexts))
            d1, d2, d3 = self.discounts[k]
            discount = np.where(counts == 1, d1, np.where(counts == 2, d2, d3))
            self._arrays[key] = (ids, np.maximum(counts - discount, 0.0) / self._stats[k][ctx][0])
        return self._arrays[key]

    def distribution(self, context: Sequence[Hashable] = ()) -> np.ndarray:
        """P(. | context) over the vocabulary ids (`vocab[i]`); `<s>` has probability 0."""
        h = self._context_ids(context)
        p = np.full(self.vocab_size, 1.0 / (self.vocab_size - 1))
        p[0] = 0.0
        for k in range(1, self.order + 1):
            ctx = h[len(h) - (k - 1) :] if k > 1 else ()
            stats = self._stats[k].get(ctx)
            if stats is None:
                continue
            ids, mass = self._level(k, ctx)
            p *= stats[1]
            p[ids] += mass
        return p

    def topk(self, context: Sequence[Hashable] = (), k: int = 10) -> list[tuple[Hashable, float]]:
        """The k most probable next tokens with their probabilities (`<unk>` left out)."""
        p = self.distribution(context)
        p[1] = -1.0
        best = np.argpartition(-p, min(k, len(p) - 1))[:k]
        best = best[np.argsort(-p[best], kind="stable")]
        return [(self.vocab[i], float(p[i])) for i in best if p[i] > 0]

    def rank(self, token: Hashable, context: Sequence[Hashable] = ()) -> int:
        """1-based rank of `token` under P(. | context) (ties in its favour); unknown tokens rank last."""
        p = self.distribution(context)
        w = self.index.get(token)
        if w is None:
            return self.vocab_size + 1
        return int((p > p[w]).sum()) + 1

    def ranks(self, sequence: Sequence[Hashable]) -> list[int]:
        """Rank of every token of a sequence given the tokens before it (for accuracy and MRR)."""
        back = self.order - 1
        return [self.rank(tok, sequence[max(i - back, 0) : i]) for i, tok in enumerate(sequence)]

    def log_prob(self, sequence: Sequence[Hashable]) -> float:
        back = self.order - 1
        return sum(math.log(self.prob(tok, sequence[max(i - back, 0) : i])) for i, tok in enumerate(sequence))

    def perplexity(self, sequences: Iterable[Sequence[Hashable]]) -> float:
        total, count = 0.0, 0
        for seq in sequences:
            total += self.log_prob(seq)
            count += len(seq)
        return math.exp(-total / max(count, 1))

    # -------------------------------------------------------------------------- statements
    def complete_statement(
        self,
        context: Sequence[Hashable],
        beam_size: int = 5,
        max_steps: int = 32,
        stop_tokens: Sequence[Hashable] = (),
        length_penalty: float = 0.0,
    ) -> list[tuple[list, float]]:
        """Beam search (the one CodeFill uses) for the tokens that finish a statement: [(tokens, log-prob)]."""
        from zoo.models.codefill import beam_search

        stops = [self.index[t] for t in stop_tokens if t in self.index]
        context = list(context)

        def step(hyps):
            rows = [self.distribution(context + [self.vocab[i] for i in h.tokens]) for h in hyps]
            log_p = torch.from_numpy(np.log(np.maximum(np.stack(rows), 1e-300)))
            log_p[:, :2] = float("-inf")  # never generate <s> or <unk>
            return log_p, lambda n, v: 0

        hyps = beam_search(step, beam_size, max_steps, stops, length_penalty)
        return [([self.vocab[i] for i in h.tokens], h.score) for h in hyps]

    # -------------------------------------------------------------------------- saving
    def to_dict(self) -> dict:
        counts = []
        for k in range(1, self.order + 1):
            counts.append([[*ctx, w, c] for ctx, nexts in self.counts[k].items() for w, c in nexts.items()])
        return {"format": FORMAT, "order": self.order, "vocab": self.vocab, "counts": counts}

    @classmethod
    def from_dict(cls, data: dict) -> KneserNeyLM:
        if data.get("format") != FORMAT:
            raise ZooError(f"not a Kneser-Ney n-gram file (format {data.get('format')!r}); save one with .save()")
        model = cls(int(data["order"]))
        model.vocab = [tuple(t) if isinstance(t, list) else t for t in data["vocab"]]
        model.index = {t: i for i, t in enumerate(model.vocab)}
        for k, rows in enumerate(data["counts"], 1):
            table: dict[tuple, Counter] = defaultdict(Counter)
            for row in rows:
                table[tuple(row[: k - 1])][row[k - 1]] = row[k]
            model.counts[k] = dict(table)
        model._finish()
        return model

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> KneserNeyLM:
        path = Path(path)
        if not path.is_file():
            raise ZooError(f"{path}: no n-gram file; train one (KneserNeyLM(order).fit(...).save(path))")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ZooError(f"{path}: unreadable n-gram file ({exc}); save it again with .save()") from None


def _discounts(n1: int, n2: int, n3: int, n4: int) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from the count-of-counts, clamped to [0, 1], [0, 2], [0, 3]."""
    if n1 == 0 or n2 == 0:  # too little data for the estimate: fixed discounts that still leave backoff mass
        return 0.5, 1.0, 1.5
    y = n1 / (n1 + 2 * n2)
    d1 = 1 - 2 * y * n2 / n1
    d2 = 2 - 3 * y * n3 / n2
    d3 = 3 - 4 * y * n4 / n3 if n3 else 1.5
    return min(max(d1, 0.0), 1.0), min(max(d2, 0.0), 2.0), min(max(d3, 0.0), 3.0)
