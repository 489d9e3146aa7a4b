"""Generated frames out: a GIF and an MP4 of the prediction beside the ground truth, and a PNG strip.

Frames come as float tensors (T, C, H, W) in [0, 1]. `side_by_side` puts the truth on the
left and the prediction on the right of each frame, with a grey bar between them; frames with no
truth (a rollout past the end of a clip) show black on the left. Small frames are enlarged
by an integer factor with nearest-neighbour upsampling so a 32x32 clip is visible. `write_gif`
uses Pillow; `write_mp4` uses PyAV (H.264 when FFmpeg has it, else MPEG-4 Part 2) and returns
False when neither works, so an MP4 is a bonus, never a failure. `write_strip` draws two rows
(truth, prediction) of every k-th frame. Every file is written to a temporary name and renamed
when complete (`zoo.io.atomic_path`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from zoo.io import atomic_path

log = logging.getLogger(__name__)

GAP = 2  # pixels of grey between the truth and the prediction
GREY = 128
TARGET_SIDE = 128  # enlarge frames to about this many pixels


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) floats in [0, 1] -> (T, H, W, 3) uint8 RGB (grey frames repeated over 3 channels)."""
    x = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def enlarge(frames: np.ndarray, side: int = TARGET_SIDE) -> np.ndarray:
    """(T, H, W, 3) -> nearest-neighbour upscaled by the integer factor that brings H near `side`."""
    factor = max(1, side // frames.shape[1])
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def side_by_side(truth: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """truth (Tt, C, H, W), pred (T, C, H, W) -> (T, H', 2 W' + gap, 3) uint8, truth left, black past its end."""
    steps = pred.shape[0]
    left = torch.zeros_like(pred)
    left[: min(steps, truth.shape[0])] = truth[:steps]
    left, right = enlarge(to_uint8(left)), enlarge(to_uint8(pred))
    gap = np.full((*left.shape[:2], GAP * max(1, left.shape[1] // 64), 3), GREY, np.uint8)
    return np.concatenate([left, gap, right], axis=2)


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 5.0) -> Path:
    """(T, H, W, 3) uint8 -> an endlessly looping GIF."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return Path(path)


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 5.0) -> bool:
    """(T, H, W, 3) uint8 -> an MP4; False (and nothing written) when PyAV or an encoder is missing."""
    try:
        import av
    except ImportError:
        return False
    height, width = (n - n % 2 for n in frames.shape[1:3])  # yuv420p needs even sides
    for codec in ("libx264", "mpeg4"):
        if codec not in av.codecs_available:
            continue
        try:
            with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
                stream = container.add_stream(codec, rate=max(1, round(fps)))
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                for frame in frames:
                    image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
                    container.mux(stream.encode(image))
                container.mux(stream.encode())
            return True
        except (av.FFmpegError, OSError, ValueError) as err:
            log.debug("MP4 with %s failed (%s); trying the next encoder", codec, err)
    return False


def write_strip(path: str | Path, truth: torch.Tensor, pred: torch.Tensor, max_columns: int = 10) -> Path:
    """A PNG of two rows, truth over prediction, every k-th generated frame (at most `max_columns`)."""
    from PIL import Image

    steps = pred.shape[0]
    every = max(1, -(-steps // max_columns))
    picked = list(range(every - 1, steps, every)) or [steps - 1]
    known = torch.zeros_like(pred)
    known[: min(steps, truth.shape[0])] = truth[:steps]
    rows = []
    for frames in (known[picked], pred[picked]):
        tiles = enlarge(to_uint8(frames), side=64)
        gap = np.full((tiles.shape[1], GAP, 3), GREY, np.uint8)
        row = [part for tile in tiles for part in (tile, gap)][:-1]
        rows.append(np.concatenate(row, axis=1))
    bar = np.full((GAP, rows[0].shape[1], 3), GREY, np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate([rows[0], bar, rows[1]], axis=0)).save(tmp, format="PNG")
    return Path(path)
