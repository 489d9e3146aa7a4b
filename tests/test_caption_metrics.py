"""Caption metrics: pycocoevalcap's BLEU/CIDEr-D/ROUGE-L on fixed strings, known values, the nearest-neighbour
baseline, and slot parsing / accuracy on the moving-digits caption template."""

from __future__ import annotations

import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from domains.video.caption_metrics import (
    Slot,
    caption_scores,
    mean_frame_features,
    nearest_neighbour_captions,
    parse_motion_slots,
    slot_accuracy,
)
from domains.video.captions import normalize_caption
from zoo.errors import ZooError

PREDICTIONS = {
    "v1": "A man is playing a guitar.",
    "v2": "a woman cooks pasta in a kitchen",
    "v3": "two dogs run on the beach",
}
REFERENCES = {
    "v1": ["a man plays the guitar", "Someone is playing a guitar on stage!"],
    "v2": ["a woman is cooking in the kitchen", "a lady makes pasta"],
    "v3": ["dogs are running on a beach", "two dogs play in the sand", "puppies run by the sea"],
}


def test_scores_are_pycocoevalcaps_on_our_tokenisation():
    res = {k: [normalize_caption(v)] for k, v in PREDICTIONS.items()}
    gts = {k: [normalize_caption(r) for r in v] for k, v in REFERENCES.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    scores = caption_scores(PREDICTIONS, REFERENCES)
    assert [scores[f"bleu{n}"] for n in range(1, 5)] == bleu
    assert scores["cider_d"] == cider and scores["rouge_l"] == rouge
    # The values pycocoevalcap 1.2 gives for these strings (a change in the scorer or the tokenisation shows here).
    expected = {
        "bleu1": 0.8421052631135734,
        "bleu2": 0.5619514869166673,
        "bleu3": 0.3648895542286352,
        "bleu4": 0.2640104231380913,
        "cider_d": 1.9546690352265694,
        "rouge_l": 0.5656898656898656,
    }
    assert scores == pytest.approx(expected, rel=1e-12)


def test_known_values():
    same = caption_scores({"a": "The cat sat on the mat."}, {"a": ["the cat sat on the mat"]})
    assert same["bleu4"] == pytest.approx(1.0, abs=1e-8) and same["rouge_l"] == 1.0
    # CIDEr-D takes idf from the evaluated references: with one clip every n-gram has idf log(1/1) = 0.
    assert same["cider_d"] == 0.0
    # Two clips, each candidate equal to its only reference: cosine 1 per n-gram, no length penalty, x10 ...
    refs = {"a": ["the cat sat down"], "b": ["a dog barks loudly"]}
    two = caption_scores({"a": "the cat sat down", "b": "a dog barks loudly"}, refs)
    assert two["cider_d"] == pytest.approx(10.0, rel=1e-12) and two["bleu4"] == pytest.approx(1.0, abs=1e-8)
    # ... except that a 3-word caption has no 4-gram: its n = 4 term is 0, so it scores 10 * 3/4.
    short = caption_scores({"a": "the cat sat", "b": "a dog barks loudly"}, {"a": ["the cat sat"], "b": refs["b"]})
    assert short["cider_d"] == pytest.approx((7.5 + 10) / 2, rel=1e-12)
    # By hand: LCS("the cat sat on the mat", "the cat is on the mat") = 5, so P = R = F = 5/6;
    # BLEU-2 = sqrt(5/6 * 3/5) (same length: no brevity penalty).
    one = caption_scores({"a": "the cat sat on the mat"}, {"a": ["the cat is on the mat"]})
    assert one["rouge_l"] == pytest.approx(5 / 6, rel=1e-12)
    assert one["bleu2"] == pytest.approx((5 / 6 * 3 / 5) ** 0.5, rel=1e-8)
    # CIDEr-D's Gaussian length penalty (sigma 6): a right but longer candidate scores less.
    longer = caption_scores({"a": "the cat sat down the cat sat down", "b": "a dog barks loudly"}, refs)
    assert longer["cider_d"] < two["cider_d"]


def test_mismatched_clips_are_an_error():
    with pytest.raises(ZooError, match="without a prediction"):
        caption_scores({"a": "x"}, {"a": ["x"], "b": ["y"]})
    with pytest.raises(ZooError, match="no non-empty reference"):
        caption_scores({"a": "x"}, {"a": ["!!"]})


def test_nearest_neighbour_baseline_copies_the_closest_training_caption():
    torch.manual_seed(0)
    train = torch.rand(3, 4, 3, 8, 8) * 0.1
    train[1] += 0.5
    train[2] += 0.9
    captions = ["dark clip", "grey clip", "bright clip"]
    queries = torch.stack([train[2] + 0.01, train[0] - 0.01, train[1]])
    found = nearest_neighbour_captions(mean_frame_features(train), captions, mean_frame_features(queries), chunk=2)
    assert found == ["bright clip", "dark clip", "grey clip"]
    assert mean_frame_features(train).shape == (3, 3 * 8 * 8)
    with pytest.raises(ZooError, match="captions"):
        nearest_neighbour_captions(mean_frame_features(train), captions[:2], mean_frame_features(queries))


def test_template_captions_parse_back():
    assert parse_motion_slots("the digit 3 moves up and to the left quickly") == [Slot(3, "up-left", "fast")]
    two = "the digit 3 moves up and to the left quickly and the digit 7 moves down slowly"
    assert parse_motion_slots(two) == [Slot(3, "up-left", "fast"), Slot(7, "down", "slow")]
    # Tolerant forms.
    assert parse_motion_slots("Digits 3 and 7 move right.") == [Slot(3, "right"), Slot(7, "right")]
    assert parse_motion_slots("digit 5 moves up-left fast") == [Slot(5, "up-left", "fast")]
    assert parse_motion_slots("digit 5 moving towards the lower right") == [Slot(5, "down-right")]
    assert parse_motion_slots("the digit 8 moves steadily") == [Slot(8, "", "steady")]
    assert parse_motion_slots("a blurry scene") == []


def test_every_caption_the_generator_writes_parses_back():
    moving_digits = pytest.importorskip("domains.video.moving_digits")
    canonical = ["right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right"]
    assert len(moving_digits.DIRECTIONS) == len(canonical)
    speeds = {"slowly": "slow", "steadily": "steady", "quickly": "fast"}
    for d in range(len(moving_digits.DIRECTIONS)):
        for s, (speed_word, _) in enumerate(moving_digits.SPEEDS):
            caption = moving_digits.caption_for([4, 9], [d, (d + 3) % 8], [s, s])
            expected = [Slot(4, canonical[d], speeds[speed_word]), Slot(9, canonical[(d + 3) % 8], speeds[speed_word])]
            assert parse_motion_slots(caption) == expected, caption


def test_slot_accuracy_counts_matches_over_the_larger_side():
    references = [
        "the digit 3 moves up quickly",
        "the digit 1 moves left slowly and the digit 7 moves down slowly",
        "the digit 5 moves right steadily",
    ]
    predictions = [
        "the digit 3 moves up slowly",  # digit and direction right (speed is not scored)
        "the digit 1 moves down slowly",  # one of two digits; direction 'down' belongs to the 7
        "the digit 5 moves right and the digit 6 moves right",  # an extra digit: denominator 2
    ]
    acc = slot_accuracy(predictions, references)
    # matches / sum(max(#ref, #pred)) = (1 + 1 + 1) / (1 + 2 + 2) for digits; directions (1 + 1 + 1) / 5;
    # (digit, direction) pairs (1 + 0 + 1) / 5; exact clips: the first only.
    assert acc == pytest.approx({"digit": 3 / 5, "direction": 3 / 5, "slot": 2 / 5, "exact": 1 / 3})
    assert slot_accuracy(references, references) == {"digit": 1.0, "direction": 1.0, "slot": 1.0, "exact": 1.0}
    with pytest.raises(ZooError, match="names no digit"):
        slot_accuracy(["x"], ["a cat"])
