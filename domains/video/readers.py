"""The user's videos in: video files (PyAV), GIFs (Pillow) and folders of frames, as small square uint8 clips.

`find_videos(path)` lists what a path holds: a video file or GIF is one video; a folder whose
files are images (PNG/JPG/BMP) is one video of frames in natural order (frame2 before frame10);
any other folder holds videos: its video files, GIFs and sub-folders of frames, hidden entries and
files of other types (captions, notes) ignored. `read_video` decodes one of them frame by frame:
- time sampling: `fps` keeps the frames nearest to a 1/fps grid (video files and GIFs carry
  timestamps; a folder of frames has none and is taken as it is); `max_frames` stops decoding early;
- space: the central square (`resize="crop"`) or the whole frame (`"stretch"`) is resized to
  `image_size` with antialiasing, in channels 1 (ITU-R BT.601 luma) or 3 (RGB).

Every problem is a `DataError` naming the file and the fix: a file PyAV cannot decode (truncated,
not a video at all), a video with no frames, frames of different sizes in one folder, an image
that cannot be read, an empty folder. `read_videos` applies `on_invalid` ("error" stops at the
first bad video, "skip" drops it, logs it and lists it with the reason in a rejects CSV, as
`zoo chem` does with molecules) and shows a progress bar while decoding a large folder.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import DataError
from zoo.io import atomic_path

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".webm", ".avi", ".mov", ".mkv")
GIF_SUFFIXES = (".gif",)
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
RESIZE_MODES = ("crop", "stretch")
ON_INVALID = ("error", "skip")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, what PIL's convert("L") uses
PROGRESS_FROM = 16  # show a progress bar from this many videos
CHUNK = 32  # frames resized at once
DAMAGED = "the file is damaged or not a video: re-encode it (ffmpeg -i <file> out.mp4) or remove it"


@dataclass
class Video:
    """One decoded video: frames (T, C, S, S) uint8, its id (file stem or folder name), source and frame rate."""

    id: str
    path: str
    frames: np.ndarray
    fps: float | None = None

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class VideoSet:
    """What a path held: the videos read, in name order, and those rejected with the reason."""

    path: str
    videos: list[Video]
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def natural_key(name: str) -> list:
    """frame2 sorts before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _visible(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def is_frame_folder(folder: Path) -> bool:
    """A folder whose visible files include images (and no videos) is one video of frames."""
    files = [p for p in _visible(folder) if p.is_file()]
    return any(p.suffix.lower() in FRAME_SUFFIXES for p in files) and not any(
        p.suffix.lower() in VIDEO_SUFFIXES + GIF_SUFFIXES for p in files
    )


def find_videos(path: str | os.PathLike) -> list[Path]:
    """The videos a path names: itself (a video file, a GIF, a folder of frames) or the videos in a folder."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check data.path")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in FRAME_SUFFIXES:
            raise DataError(
                f"{path}: a single image is not a video; put the frames of a clip in one folder and give "
                "data.path=<that folder>"
            )
        if suffix not in VIDEO_SUFFIXES + GIF_SUFFIXES:
            raise DataError(
                f"{path}: unknown video type {suffix or '(none)'!r}; use {', '.join(VIDEO_SUFFIXES + GIF_SUFFIXES)} "
                "or a folder of PNG/JPG frames"
            )
        return [path]
    if is_frame_folder(path):
        return [path]
    found, ignored = [], 0
    for entry in _visible(path):
        if entry.is_dir() or entry.suffix.lower() in VIDEO_SUFFIXES + GIF_SUFFIXES:
            found.append(entry)
        else:
            ignored += 1
    if ignored:
        log.info("%s: ignored %d files that are not videos, GIFs or folders of frames", path, ignored)
    if not found:
        raise DataError(
            f"{path}: no videos in this folder (looked for {', '.join(VIDEO_SUFFIXES + GIF_SUFFIXES)} files and "
            "folders of PNG/JPG frames); check data.path"
        )
    return found


# ---------------------------------------------------------------------------------------------- decoding


def _pyav_frames(path: Path) -> tuple[Iterator[tuple[np.ndarray, float | None]], float | None]:
    """(RGB frames (H, W, 3) uint8 with their time in seconds, the stream's frame rate)."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot open as a video ({_short(err)}); {DAMAGED}") from None
    stream = next((s for s in container.streams if s.type == "video"), None)
    if stream is None:
        container.close()
        raise DataError(f"{path}: the file holds no video stream; give a file with video in it, or remove it")
    rate = float(stream.average_rate) if stream.average_rate else None

    def frames() -> Iterator[tuple[np.ndarray, float | None]]:
        count = 0
        try:
            for frame in container.decode(stream):
                count += 1
                yield frame.to_ndarray(format="rgb24"), frame.time
        except (av.FFmpegError, OSError, ValueError) as err:
            raise DataError(f"{path}: decoding failed after {count} frames ({_short(err)}); {DAMAGED}") from None
        finally:
            container.close()

    return frames(), rate


def _gif_frames(path: Path) -> tuple[Iterator[tuple[np.ndarray, float | None]], float | None]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: cannot read as a GIF ({_short(err)}); {DAMAGED}") from None

    def frames() -> Iterator[tuple[np.ndarray, float | None]]:
        clock = 0.0
        try:
            for frame in ImageSequence.Iterator(image):  # Pillow composes each frame over the ones before
                yield np.asarray(frame.convert("RGB")), clock
                clock += float(frame.info.get("duration") or 100) / 1000.0
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{path}: the GIF is damaged ({_short(err)}); {DAMAGED}") from None
        finally:
            image.close()

    duration = image.info.get("duration")
    return frames(), (1000.0 / duration if duration else None)


def _folder_frames(path: Path) -> tuple[Iterator[tuple[np.ndarray, float | None]], float | None]:
    from PIL import Image, UnidentifiedImageError

    files = [p for p in _visible(path) if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]

    def frames() -> Iterator[tuple[np.ndarray, float | None]]:
        size = None
        for file in files:
            try:
                with Image.open(file) as image:
                    rgb = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
                raise DataError(f"{file}: cannot read this frame ({_short(err)}); replace or remove it") from None
            if size is None:
                size, first = rgb.shape[:2], file.name
            elif rgb.shape[:2] != size:
                raise DataError(
                    f"{file}: frame is {rgb.shape[1]}x{rgb.shape[0]} but {first} is {size[1]}x{size[0]}; "
                    "give every frame of a folder the same size"
                )
            yield rgb, None

    return frames(), None


def _short(err: BaseException) -> str:
    """The reason alone (PyAV's messages repeat the file name)."""
    text = " ".join(str(getattr(err, "strerror", None) or err).split()) or type(err).__name__
    return text if len(text) < 160 else text[:157] + "..."


def resize_frames(frames: np.ndarray, image_size: int, channels: int, resize: str = "crop") -> np.ndarray:
    """RGB frames (N, H, W, 3) uint8 -> (N, channels, image_size, image_size) uint8."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if resize == "crop":
        height, width = x.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        x = x[..., top : top + side, left : left + side]
    if tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    if channels == 1:
        x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def read_video(
    path: str | os.PathLike,
    image_size: int = 32,
    channels: int = 1,
    fps: float | None = None,
    max_frames: int | None = None,
    resize: str = "crop",
) -> Video:
    """Decode one video file, GIF or folder of frames into (T, channels, image_size, image_size) uint8."""
    path = Path(path)
    if channels not in (1, 3):
        raise DataError(f"in_channels={channels}: videos are read as 1 (grey) or 3 (RGB) channels")
    if resize not in RESIZE_MODES:
        raise DataError(f"data.resize={resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    if fps is not None and fps <= 0:
        raise DataError(f"data.fps={fps}: give a positive frame rate, or null for every frame")
    if path.is_dir():
        frames, rate = _folder_frames(path)
    elif path.suffix.lower() in GIF_SUFFIXES:
        frames, rate = _gif_frames(path)
    else:
        frames, rate = _pyav_frames(path)
    kept, chunk, next_time = [], [], None
    for rgb, time in frames:
        if fps is not None and time is not None:  # keep the first frame at or after each tick of a 1/fps grid
            if next_time is not None and time < next_time - 1e-6:
                continue
            next_time = (time if next_time is None else next_time) + 1.0 / fps
            while next_time <= time:
                next_time += 1.0 / fps
        chunk.append(rgb)
        if len(chunk) == CHUNK:
            kept.append(resize_frames(np.stack(chunk), image_size, channels, resize))
            chunk = []
        if max_frames and sum(map(len, kept)) + len(chunk) >= max_frames:
            break
    if chunk:
        kept.append(resize_frames(np.stack(chunk), image_size, channels, resize))
    if not kept:
        raise DataError(f"{path}: the video has no frames; re-encode it or remove it")
    name = path.stem if path.is_file() else path.name
    out_fps = rate if fps is None or rate is None else min(fps, rate)
    return Video(id=name, path=str(path), frames=np.concatenate(kept), fps=out_fps)


def read_videos(
    path: str | os.PathLike,
    image_size: int = 32,
    channels: int = 1,
    fps: float | None = None,
    max_frames: int | None = None,
    resize: str = "crop",
    min_frames: int = 2,
    on_invalid: str = "error",
    rejects_path: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> VideoSet:
    """Every video under `path`, each with at least `min_frames` frames after sampling (see module doc)."""
    from tqdm.auto import tqdm

    if on_invalid not in ON_INVALID:
        raise DataError(f"data.on_invalid={on_invalid!r}; choose error or skip")
    sources = find_videos(path)
    show = len(sources) >= PROGRESS_FROM if progress is None else progress
    videos, rejected = [], []
    for source in tqdm(sources, desc=f"decoding {Path(path).name}", unit="video", disable=not show, leave=False):
        try:
            video = read_video(source, image_size, channels, fps, max_frames, resize)
            if len(video) < min_frames:
                raise DataError(
                    f"{source}: {len(video)} frames, fewer than the {min_frames} needed (context + 1); give longer "
                    "videos or lower context"
                )
        except DataError as err:
            if on_invalid == "error":
                raise DataError(f"{err}; or set data.on_invalid=skip to leave it out") from None
            rejected.append((str(source), str(err).split(": ", 1)[-1]))
            continue
        videos.append(video)
    if not videos:
        raise DataError(f"{path}: no usable videos (skipped {len(rejected)}: {rejected[0][1] if rejected else ''})")
    ids = [v.id for v in videos]
    if len(set(ids)) < len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{path}: two videos are named {twice!r} (ids are file stems); rename one of them")
    found = VideoSet(str(path), videos, rejected)
    _report(found, rejects_path)
    return found


def _report(found: VideoSet, rejects_path: str | os.PathLike | None) -> None:
    if not found.rejected:
        return
    target = Path(rejects_path) if rejects_path else Path(Path(found.path).name.split(".")[0] + ".rejected.csv")
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "reason"])
        writer.writerows(found.rejected)
    log.warning(
        "%s: skipped %d invalid videos (on_invalid=skip); they are listed in %s",
        found.path,
        len(found.rejected),
        target,
    )
