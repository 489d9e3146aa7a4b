"""Moving digits: Moving-MNIST-style clips from scikit-learn's bundled handwritten digits, no download.

The clips follow Srivastava, Mansimov & Salakhutdinov, "Unsupervised Learning of Video
Representations using LSTMs" (ICML 2015): digits bounce inside a square canvas. The
digit images are the real 8x8 scans of `sklearn.datasets.load_digits` (1,797 images,
UCI "Optical Recognition of Handwritten Digits"), upscaled bilinearly (28x28 on a 64x64
canvas, the Moving-MNIST proportions). Each clip holds 1 or 2 digits; each starts at a
random place moving in one of 8 directions at one of 3 speeds and reflects off the walls.
Overlapping digits combine by their maximum.

Images with index % 5 == 0 (360 of them) form the test split and the rest (1,437) the
train split, so test clips show digit images never seen in training. A clip is a pure
function of (seed, split, clip index, sizes): `MovingDigits` gives random access.

Each clip has a template caption naming its digits and their *initial* motion (no digit
starts close enough to a wall to bounce on its first move), e.g.
"the digit 3 moves up and to the left quickly and the digit 7 moves down slowly";
`parse_caption` reads the (digit, direction, speed) slots back, for slot accuracy.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from zoo.errors import ZooError

SPLITS = ("train", "test")
TEST_EVERY = 5  # images with index % 5 == 0 are the test split
#: (name, row step, column step); rows grow downwards, so "up" is -1.
DIRECTIONS = (
    ("right", 0, 1),
    ("up and to the right", -1, 1),
    ("up", -1, 0),
    ("up and to the left", -1, -1),
    ("left", 0, -1),
    ("down and to the left", 1, -1),
    ("down", 1, 0),
    ("down and to the right", 1, 1),
)
#: (name, pixels per frame on a 64-pixel canvas, scaled with the canvas, at least 1)
SPEEDS = (("slowly", 1), ("steadily", 2), ("quickly", 3))
MAX_DIGITS = 2


@dataclass(frozen=True)
class Clip:
    """One clip: frames (T, 1, H, W) (uint8 0-255 or float32 0-1) and what is in it."""

    frames: np.ndarray
    labels: tuple[int, ...]  # digit classes 0-9
    image_indices: tuple[int, ...]  # rows of sklearn's load_digits() used
    directions: tuple[int, ...]  # indices into DIRECTIONS, at the first frame
    speeds: tuple[int, ...]  # indices into SPEEDS
    positions: np.ndarray  # (T, n, 2) top-left (row, column) of each digit
    caption: str


def split_indices(split: str) -> np.ndarray:
    """Indices into `load_digits()` of the images of a split (deterministic, disjoint)."""
    if split not in SPLITS:
        raise ZooError(f"moving digits: unknown split {split!r}; use one of {SPLITS}")
    index = np.arange(len(_digits()[1]))
    return index[(index % TEST_EVERY == 0) == (split == "test")]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


@functools.lru_cache(maxsize=8)
def digit_images(digit_size: int) -> np.ndarray:
    """All 1,797 digits upscaled bilinearly to (N, digit_size, digit_size), float32 in [0, 1], read-only."""
    small = torch.from_numpy(_digits()[0]).unsqueeze(1)
    big = F.interpolate(small, size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    images = big[:, 0].clamp(0, 1).numpy()
    images.setflags(write=False)
    return images


def caption_for(labels, directions, speeds) -> str:
    """'the digit 3 moves up quickly and the digit 7 moves left slowly' (directions, speeds: indices)."""
    parts = [
        f"the digit {label} moves {DIRECTIONS[d][0]} {SPEEDS[s][0]}" for label, d, s in zip(labels, directions, speeds)
    ]
    return " and ".join(parts)


_DIRECTION_NAMES = "|".join(name for name, *_ in DIRECTIONS)
_SPEED_NAMES = "|".join(name for name, _ in SPEEDS)
_SLOT = re.compile(rf"the digit (\d) moves ({_DIRECTION_NAMES}) ({_SPEED_NAMES})")


def parse_caption(caption: str) -> list[tuple[int, int, int]]:
    """(digit, direction index, speed index) for each digit a caption names, in order."""
    directions = [name for name, *_ in DIRECTIONS]
    speeds = [name for name, _ in SPEEDS]
    return [(int(m[1]), directions.index(m[2]), speeds.index(m[3])) for m in _SLOT.finditer(caption)]


def _digit_range(num_digits: int | tuple[int, int]) -> tuple[int, int]:
    low, high = (num_digits, num_digits) if isinstance(num_digits, int) else tuple(num_digits)
    if not 1 <= low <= high <= MAX_DIGITS:
        raise ZooError(f"moving digits: num_digits={num_digits} must lie in 1..{MAX_DIGITS}; use 1, 2 or (1, 2)")
    return low, high


def default_digit_size(image_size: int) -> int:
    """28 on a 64-pixel canvas, scaled with it (Moving-MNIST's proportions)."""
    return max(4, round(28 * image_size / 64))


def generate_clip(
    seed: int | tuple[int, ...] = 0,
    split: str = "train",
    clip_length: int = 20,
    image_size: int = 64,
    num_digits: int | tuple[int, int] = (1, 2),
    digit_size: int | None = None,
    as_uint8: bool = True,
) -> Clip:
    """One clip, a pure function of its arguments (`seed`: an int or a tuple such as (seed, split, index))."""
    digit_size = default_digit_size(image_size) if digit_size is None else digit_size
    if clip_length < 1 or not 1 <= digit_size < image_size:
        raise ZooError(
            f"moving digits: need clip_length >= 1 and 1 <= digit_size < image_size, got clip_length={clip_length}, "
            f"digit_size={digit_size}, image_size={image_size}; enlarge the canvas or shrink the digits"
        )
    low, high = _digit_range(num_digits)
    rng = np.random.default_rng(seed)
    count = int(rng.integers(low, high + 1))
    chosen = rng.choice(split_indices(split), size=count, replace=False)
    directions = rng.integers(0, len(DIRECTIONS), size=count)
    speeds = rng.integers(0, len(SPEEDS), size=count)
    room = image_size - digit_size  # top-left coordinates lie in [0, room]
    scale = max(1, round(image_size / 64))
    velocity = np.array([DIRECTIONS[d][1:] for d in directions]) * np.array([SPEEDS[s][1] for s in speeds])[:, None]
    velocity = velocity * scale
    # Start at least one step from every wall, so the first move is the captioned one (when the room allows).
    margin = min(SPEEDS[-1][1] * scale, room // 2)
    position = rng.integers(margin, room - margin + 1, size=(count, 2))
    images, labels = digit_images(digit_size), _digits()[1]

    frames = np.zeros((clip_length, 1, image_size, image_size), np.float32)
    positions = np.zeros((clip_length, count, 2), np.int64)
    for t in range(clip_length):
        positions[t] = position
        for k in range(count):
            r, c = position[k]
            patch = frames[t, 0, r : r + digit_size, c : c + digit_size]
            np.maximum(patch, images[chosen[k]], out=patch)
        position, velocity = _bounce(position + velocity, velocity, room)
    if as_uint8:
        frames = np.round(frames * 255).astype(np.uint8)
    return Clip(
        frames=frames,
        labels=tuple(int(labels[i]) for i in chosen),
        image_indices=tuple(int(i) for i in chosen),
        directions=tuple(int(d) for d in directions),
        speeds=tuple(int(s) for s in speeds),
        positions=positions,
        caption=caption_for([labels[i] for i in chosen], directions, speeds),
    )


def _bounce(position: np.ndarray, velocity: np.ndarray, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect coordinates that left [0, room] back inside, reversing that velocity component."""
    while True:  # a step longer than the room can reflect more than once
        low, high = position < 0, position > room
        if not (low.any() or high.any()):
            return position, velocity
        position = np.where(low, -position, np.where(high, 2 * room - position, position))
        velocity = np.where(low | high, -velocity, velocity)


class MovingDigits(Dataset):
    """`num_clips` moving-digits clips of a split; item i is the same clip on every run for the same arguments.

    Items are dicts: "frames" (T, 1, H, W) float32 in [0, 1] (uint8 with `as_uint8`),
    "labels", "directions", "speeds", "image_indices" (MAX_DIGITS,) int64 padded with -1,
    "num_digits" and "caption".
    """

    def __init__(
        self,
        split: str = "train",
        num_clips: int = 1000,
        clip_length: int = 20,
        image_size: int = 64,
        num_digits: int | tuple[int, int] = (1, 2),
        seed: int = 0,
        digit_size: int | None = None,
        as_uint8: bool = False,
    ):
        if num_clips < 0:
            raise ZooError(f"moving digits: num_clips={num_clips} must be >= 0")
        split_indices(split)  # validates the split
        _digit_range(num_digits)
        self.split, self.num_clips, self.seed, self.as_uint8 = split, num_clips, seed, as_uint8
        self.clip_kwargs = dict(
            split=split, clip_length=clip_length, image_size=image_size, num_digits=num_digits, digit_size=digit_size
        )

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, index: int) -> Clip:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range for {self.num_clips} clips")
        return generate_clip((self.seed, SPLITS.index(self.split), index), as_uint8=True, **self.clip_kwargs)

    def __getitem__(self, index: int) -> dict:
        clip = self.clip(index)
        frames = torch.from_numpy(clip.frames)

        def padded(values) -> torch.Tensor:
            return torch.tensor(list(values) + [-1] * (MAX_DIGITS - len(values)), dtype=torch.int64)

        return {
            "frames": frames if self.as_uint8 else frames.float() / 255,
            "labels": padded(clip.labels),
            "directions": padded(clip.directions),
            "speeds": padded(clip.speeds),
            "image_indices": padded(clip.image_indices),
            "num_digits": len(clip.labels),
            "caption": clip.caption,
        }
