"""Kneser-Ney n-gram baseline: a proper distribution, the continuation-count effect, perplexity, save/load."""

from __future__ import annotations

import math

import pytest

from domains.code.corpus import stdlib_root
from domains.code.ngram import KneserNeyLM
from domains.code.streams import extract_streams
from zoo.errors import ZooError


@pytest.fixture(scope="module")
def stdlib_values():
    paths = ["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py", "heapq.py", "json/decoder.py"]
    return [extract_streams((stdlib_root() / p).read_text()).values for p in paths]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one(stdlib_values, order):
    lm = KneserNeyLM(order).fit(stdlib_values[:-1])
    for context in ([], ["def"], ["self", "."], ["never", "seen", "("], ["return", "heap", "["]):
        assert lm.distribution(context).sum() == pytest.approx(1.0, abs=1e-9)
        assert sum(lm.prob(w, context) for w in lm.vocab) == pytest.approx(1.0, abs=1e-9)
        assert lm.prob("<s>", context) == 0.0 and lm.prob("an unseen token", context) > 0.0
    for k in range(1, order + 1):
        d1, d2, d3 = lm.discounts[k]
        assert 0 <= d1 <= 1 and 0 <= d2 <= 2 and 0 <= d3 <= 3


def test_kneser_ney_beats_unigram_perplexity(stdlib_values):
    train, held_out = stdlib_values[:-1], stdlib_values[-1:]
    unigram = KneserNeyLM(1).fit(train).perplexity(held_out)
    trigram = KneserNeyLM(3).fit(train).perplexity(held_out)
    assert trigram < 0.5 * unigram


def test_continuation_counts_not_raw_counts_drive_the_lower_order():
    # "francisco" is frequent but only ever follows "san"; "glasses" is rarer but follows many words.
    sentences = [["san", "francisco"]] * 20 + [[w, "glasses"] for w in ("reading", "sun", "wine", "safety")]
    lm = KneserNeyLM(2).fit(sentences)
    assert lm.prob("francisco", ["unseen"]) < lm.prob("glasses", ["unseen"])
    assert lm.prob("francisco", ["san"]) > 0.9


def test_topk_rank_and_statement_completion(stdlib_values):
    lm = KneserNeyLM(3).fit(stdlib_values)
    top = lm.topk(["self", "."], k=5)
    assert len(top) == 5 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert lm.rank(top[0][0], ["self", "."]) == 1 and lm.rank("never seen", ["x"]) == lm.vocab_size + 1
    hyps = lm.complete_statement(["<NEWLINE>", "import"], beam_size=3, max_steps=8, stop_tokens=["<NEWLINE>"])
    assert len(hyps) == 3 and hyps[0][1] >= hyps[1][1] >= hyps[2][1]
    assert all("<s>" not in tokens and "<unk>" not in tokens for tokens, _ in hyps)


def test_save_load_round_trip(stdlib_values, tmp_path):
    lm = KneserNeyLM(3).fit(stdlib_values)
    path = lm.save(tmp_path / "ngram.json")
    loaded = KneserNeyLM.load(path)
    assert loaded.vocab == lm.vocab and loaded.discounts == lm.discounts
    for context in ([], ["def"], ["self", "."]):
        assert (loaded.distribution(context) == lm.distribution(context)).all()
    piece_lm = KneserNeyLM(2).fit([[3, 5, 7, 3, 5]])  # integer tokens (BPE piece ids) survive JSON too
    assert KneserNeyLM.load(piece_lm.save(tmp_path / "p.json")).prob(5, [3]) == piece_lm.prob(5, [3])
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ZooError, match="not a Kneser-Ney"):
        KneserNeyLM.load(tmp_path / "bad.json")
    with pytest.raises(ZooError):
        KneserNeyLM(0)
    assert math.isfinite(lm.log_prob(stdlib_values[0][:50]))
