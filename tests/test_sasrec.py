"""SASRec: padding helpers by hand, causality, left-padding invariance, equal size, save -> load, and a short
training run on an ML-100k subset that beats popularity."""

from __future__ import annotations

import random

import pytest
import torch

from domains.recsys.metrics import evaluate, popularity_baseline, random_expectation
from domains.recsys.movielens import leave_one_out, load_movielens_100k, most_popular_items
from zoo import create_model, from_pretrained
from zoo.hub import save_pretrained
from zoo.models.sasrec import equal_size_kwargs, pad_histories, training_pairs


def model(**kw):
    torch.manual_seed(0)
    return create_model("test_sasrec", dropout=0.0, **kw).eval()


def test_pad_histories_and_training_pairs_by_hand():
    assert pad_histories([[4, 0, 2], [7]], max_len=5).tolist() == [[5, 1, 3], [0, 0, 8]]
    assert pad_histories([[1, 2, 3, 4]], max_len=2).tolist() == [[4, 5]]  # the most recent max_len
    assert pad_histories([[]], max_len=3).tolist() == [[0]]
    inputs, targets = training_pairs([[0, 1, 2], [5, 6]], max_len=10)
    assert inputs.tolist() == [[1, 2], [0, 6]] and targets.tolist() == [[2, 3], [0, 7]]


def test_causal_and_left_padding_invariant():
    m = model()
    x = torch.tensor([[3, 9, 4, 7, 1]])
    changed = x.clone()
    changed[0, 3] = 50
    torch.testing.assert_close(m.forward_features(changed)[:, :3], m.forward_features(x)[:, :3], rtol=0, atol=1e-6)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), x], 1)
    torch.testing.assert_close(m.next_item_scores(padded), m.next_item_scores(x), rtol=0, atol=1e-5)
    assert m.next_item_scores(x).shape == (1, 100)


def test_bce_loss_with_sampled_negatives_runs():
    m = model().train()
    inputs, targets = training_pairs([[0, 1, 2, 3], [5, 6]], max_len=10)
    loss = m.training_loss(inputs, targets, loss="bce", generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 0
    with pytest.raises(ValueError, match="choose"):
        m.training_loss(inputs, targets, loss="hinge")


def test_equal_size_to_a_recformer():
    recformer = create_model("test_recformer")
    kwargs = equal_size_kwargs(recformer)
    assert kwargs == {"dim": 32, "depth": 2, "num_heads": 2, "mlp_dim": 64}
    assert equal_size_kwargs({"dim": 256, "depth": 4}) == {"dim": 256, "depth": 4, "num_heads": 12, "mlp_dim": 3072}
    sasrec = create_model("test_sasrec", **kwargs)
    assert sasrec.num_features == recformer.num_features and len(sasrec.blocks) == len(recformer.blocks)


def test_save_load_identical(tmp_path):
    m = model(num_items=40)
    save_pretrained(m, tmp_path / "s")
    x = pad_histories([[1, 2, 3], [4]], 50)
    torch.testing.assert_close(
        from_pretrained(tmp_path / "s").next_item_scores(x), m.next_item_scores(x), rtol=0, atol=0
    )


def test_short_training_on_movielens_beats_popularity():
    """400 users x the 300 most rated movies, test_sasrec (dropout 0.2), 100 steps of batch 32, lr 3e-3,
    full-softmax loss: the loss falls and test NDCG@10 beats popularity (measured 0.061 vs 0.017)."""
    torch.manual_seed(0)
    data = most_popular_items(load_movielens_100k(max_users=400), 300)
    split = leave_one_out(data)
    m = create_model("test_sasrec", num_items=len(data.catalogue), max_len=50, dropout=0.2)
    optimizer = torch.optim.Adam(m.parameters(), lr=3e-3)
    rng, losses = random.Random(0), []
    for _ in range(100):
        loss = m.training_loss(*training_pairs(rng.sample(split.train, 32), 50))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3
    m.eval()
    with torch.no_grad():
        ours = evaluate(lambda hs: m.next_item_scores(pad_histories(hs, 50)), split.test)
    assert ours["ndcg@10"] > evaluate(popularity_baseline(split.train, 300), split.test)["ndcg@10"]
    assert ours["ndcg@10"] > 2 * random_expectation(300)["ndcg@10"]
