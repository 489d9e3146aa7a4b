"""The embedded moving-digits generator: determinism, split disjointness, bouncing, captions that match the clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from domains.video.moving_digits import (
    DIRECTIONS,
    SPEEDS,
    MovingDigits,
    digit_images,
    generate_clip,
    parse_caption,
    split_indices,
)
from zoo.errors import ZooError


def test_same_arguments_same_clips():
    a, b = generate_clip(7, clip_length=12), generate_clip(7, clip_length=12)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert (a.labels, a.directions, a.speeds, a.caption) == (b.labels, b.directions, b.speeds, b.caption)
    assert not np.array_equal(a.frames, generate_clip(8, clip_length=12).frames)
    first, again = MovingDigits(num_clips=5, seed=3), MovingDigits(num_clips=5, seed=3)
    for i in (0, 4, 2):  # random access: an item does not depend on what was read before
        torch.testing.assert_close(first[i]["frames"], again[i]["frames"], rtol=0, atol=0)
        assert first[i]["caption"] == again[i]["caption"]
    assert not torch.equal(first[0]["frames"], MovingDigits(num_clips=5, seed=4)[0]["frames"])


def test_test_split_uses_digit_images_never_seen_in_training():
    train, test = set(split_indices("train")), set(split_indices("test"))
    assert not train & test and len(train | test) == 1797 and len(test) == 360
    for split, allowed in (("train", train), ("test", test)):
        data = MovingDigits(split, num_clips=40, clip_length=2, seed=0)
        used = {int(i) for k in range(len(data)) for i in data[k]["image_indices"] if i >= 0}
        assert used <= allowed and len(used) > 30


def test_frames_are_the_digits_at_their_positions():
    clip = generate_clip(11, clip_length=6, image_size=64, num_digits=2)
    images, targets = digit_images(28), load_digits().target
    assert clip.labels == tuple(int(targets[i]) for i in clip.image_indices)
    for t in range(6):
        canvas = np.zeros((64, 64), np.float32)
        for k, index in enumerate(clip.image_indices):
            r, c = clip.positions[t, k]
            np.maximum(canvas[r : r + 28, c : c + 28], images[index], out=canvas[r : r + 28, c : c + 28])
        np.testing.assert_array_equal(clip.frames[t, 0], np.round(canvas * 255).astype(np.uint8))


@pytest.mark.parametrize("seed", range(12))
def test_caption_matches_metadata_and_motion(seed):
    clip = generate_clip(seed, clip_length=30, image_size=64)
    assert parse_caption(clip.caption) == list(zip(clip.labels, clip.directions, clip.speeds))
    assert clip.caption.startswith(f"the digit {clip.labels[0]} moves {DIRECTIONS[clip.directions[0]][0]}")
    for k in range(len(clip.labels)):
        _, dy, dx = DIRECTIONS[clip.directions[k]]
        speed = SPEEDS[clip.speeds[k]][1]
        # the first move is the captioned one ...
        np.testing.assert_array_equal(clip.positions[1, k] - clip.positions[0, k], [dy * speed, dx * speed])
        # ... and every later move keeps the speed, only flipping signs at walls; digits never leave the canvas
        moves = np.abs(np.diff(clip.positions[:, k], axis=0))
        assert moves.max() <= speed
        assert clip.positions[:, k].min() >= 0 and clip.positions[:, k].max() <= 64 - 28


def test_digits_bounce_off_the_walls():
    clip = generate_clip(0, clip_length=200, image_size=32, num_digits=1)  # 14-pixel digits, 18 pixels of room
    rows, cols = clip.positions[:, 0, 0], clip.positions[:, 0, 1]
    _, dy, dx = DIRECTIONS[clip.directions[0]]
    moving = [axis for axis, d in ((rows, dy), (cols, dx)) if d]
    for axis in moving:  # a moving coordinate reaches both walls' side and turns around
        steps = np.diff(axis)
        assert (steps > 0).any() and (steps < 0).any()
        assert axis.min() >= 0 and axis.max() <= 18


def test_dataset_items_other_canvas_sizes_and_batching():
    data = MovingDigits("test", num_clips=6, clip_length=5, image_size=32, num_digits=(1, 2), seed=1)
    item = data[0]
    assert item["frames"].shape == (5, 1, 32, 32) and item["frames"].dtype == torch.float32
    assert item["frames"].min() >= 0 and item["frames"].max() <= 1 and item["frames"].max() > 0.5
    counts = {data[i]["num_digits"] for i in range(6)}
    assert counts == {1, 2}  # both counts occur in these six clips
    for i in range(6):
        labels = data[i]["labels"]
        assert (labels[data[i]["num_digits"] :] == -1).all() and (labels[: data[i]["num_digits"]] >= 0).all()
    batch = next(iter(DataLoader(data, batch_size=3)))
    assert batch["frames"].shape == (3, 5, 1, 32, 32) and len(batch["caption"]) == 3
    raw = MovingDigits("test", num_clips=1, clip_length=2, image_size=32, as_uint8=True)[0]["frames"]
    assert raw.dtype == torch.uint8


def test_bad_arguments_raise_one_line():
    with pytest.raises(ZooError, match="unknown split 'val'"):
        MovingDigits("val")
    with pytest.raises(ZooError, match="num_digits"):
        MovingDigits(num_digits=3)
    with pytest.raises(ZooError, match="digit_size < image_size"):
        generate_clip(0, image_size=16, digit_size=16)
    with pytest.raises(IndexError):
        MovingDigits(num_clips=2).clip(2)
