"""Clips for frame prediction: the embedded moving digits, or the user's own videos.

`VideoDataModule` with `path=None` serves `MovingDigits` (domains/video/moving_digits.py, no
download): training clips of `clip_length` frames from the train digit images, validation
clips from the same images but other clips (a different seed), test and predict clips of
`context + horizon` frames from the *test* digit images, never seen in training.

With `path` (a video file, a GIF, a folder of frames, or a folder of any of these; see
`domains/video/readers.py`) every video is decoded once, resized to `image_size` squares
of `in_channels` channels, sampled in time at `fps`, and cut into clips:
- `sampling="dense"`: consecutive frames, a window every `stride` frames (default: the window);
- `sampling="uniform"`: one clip per video, its frames spread evenly over the whole video.
Training windows hold `clip_length` frames, evaluation windows `context + horizon`; a video
shorter than a window gives one clip of its own length, and one with fewer than `context + 1`
frames is invalid (`on_invalid`). With three or more videos the split is by video
(`val_fraction`, `test_fraction`, seeded); with fewer, every split uses every video (a warning
says so). `predict_path` names other videos to predict (default: the test split).

Items are {"id", "frames" (T, C, H, W) float in [0, 1], "length"}; a batch pads clips to
its longest with zero frames and keeps "length", and carries "horizon", how many frames
`predict` generates. The frame size, channels and context must match the model's
(`accept_contract`): a model is never fed frames it was not built for.

`CaptionDataModule` (experiment=captioning) serves clips with captions for SwinBERT: the moving digits
with their template captions, or the user's videos with an MSR-VTT-style JSON or a video,caption CSV.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from domains.video.moving_digits import MovingDigits
from domains.video.readers import Video, read_videos
from zoo.errors import DataError
from zoo.training import BaseDataModule

log = logging.getLogger(__name__)

SAMPLINGS = ("dense", "uniform")


class EmbeddedClips(Dataset):
    """Moving-digits clips as items (grey frames repeated when the model wants more channels)."""

    def __init__(self, digits: MovingDigits, in_channels: int, prefix: str):
        self.digits, self.in_channels, self.prefix = digits, in_channels, prefix

    def __len__(self) -> int:
        return len(self.digits)

    def __getitem__(self, i: int) -> dict[str, Any]:
        frames = self.digits[i]["frames"]
        if self.in_channels != 1:
            frames = frames.expand(-1, self.in_channels, -1, -1)
        return {"id": f"{self.prefix}-{i:05d}", "frames": frames, "length": len(frames)}


def clip_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of the windows of `window` frames every `stride` frames; one clip (start 0) if the video is shorter."""
    if length <= window:
        return [0]
    return list(range(0, length - window + 1, stride))


class VideoClips(Dataset):
    """Clips cut from decoded videos: item = (video, frame indices)."""

    def __init__(self, videos: list[Video], window: int, sampling: str = "dense", stride: int | None = None):
        self.videos, self.index = videos, []
        for v, video in enumerate(videos):
            length = len(video)
            if sampling == "uniform":
                count = min(window, length)
                self.index.append((v, np.linspace(0, length - 1, count).round().astype(np.int64), ""))
            else:
                for start in clip_starts(length, window, stride or window):
                    span = np.arange(start, min(start + window, length))
                    self.index.append((v, span, f"@{start}" if length > window else ""))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v, frames, suffix = self.index[i]
        video = self.videos[v]
        clip = torch.from_numpy(video.frames[frames]).float() / 255
        return {"id": video.id + suffix, "frames": clip, "length": len(clip)}


def pad_clips(items: list[dict[str, Any]], horizon: int = 0) -> dict[str, Any]:
    """Items -> {"id": [...], "frames": (B, T, C, H, W) zero-padded, "length": (B,), "horizon": int}."""
    longest = max(item["length"] for item in items)
    first = items[0]["frames"]
    frames = first.new_zeros(len(items), longest, *first.shape[1:])
    for row, item in zip(frames, items):
        row[: item["length"]] = item["frames"]
    lengths = torch.tensor([item["length"] for item in items], dtype=torch.long)
    return {"id": [item["id"] for item in items], "frames": frames, "length": lengths, "horizon": horizon}


def split_by_video(
    videos: list, val_fraction: float, test_fraction: float, seed: int, source: str | None
) -> dict[str, list]:
    """{"train", "val", "test"}: a seeded split by video, each in name order; fewer than 3 videos: all in each."""
    if len(videos) < 3:
        log.warning(
            "%s: %d video(s): training, validation and test all use every video, so val/test measure fit, "
            "not generalisation; give 3 or more videos for a split by video",
            source,
            len(videos),
        )
        return {"train": videos, "val": videos, "test": videos}
    order = np.random.default_rng(seed).permutation(len(videos))
    n_test = max(1, round(test_fraction * len(videos))) if test_fraction else 0
    n_val = max(1, round(val_fraction * len(videos))) if val_fraction else 0
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    pick = lambda ids: [videos[i] for i in sorted(ids)]
    test_videos = pick(test) or pick(train)  # no test fraction: test on the training videos
    return {"train": pick(train), "val": pick(val) or test_videos, "test": test_videos}


class VideoSourceDataModule(BaseDataModule):
    """What both video data modules share: how the user's videos are read, and the split fractions."""

    image_size: int
    in_channels: int

    def keep_source_settings(
        self, fps, max_frames, resize, on_invalid, rejects_path, progress, val_fraction, test_fraction, num_predict
    ) -> None:
        self.read_kwargs = dict(
            image_size=self.image_size,
            channels=self.in_channels,
            fps=fps,
            max_frames=max_frames,
            resize=resize,
            on_invalid=on_invalid,
            rejects_path=rejects_path,
            progress=progress,
        )
        self.val_fraction, self.test_fraction, self.num_predict = val_fraction, test_fraction, num_predict


def embedded_sizes(train: int, val: int, test: int, num_digits: int | list[int]) -> dict[str, Any]:
    """Clip counts per split of the embedded moving digits, and how many digits a clip holds."""
    digits = tuple(num_digits) if isinstance(num_digits, (list, tuple)) else int(num_digits)
    return dict(train=train, val=val, test=test, num_digits=digits)


class VideoDataModule(VideoSourceDataModule):
    """Moving digits (path=None) or a folder of the user's videos, as clips (see the module doc)."""

    def __init__(
        self,
        path: str | None = None,
        image_size: int = 32,
        in_channels: int = 1,
        context: int = 10,
        horizon: int = 10,
        clip_length: int = 20,
        sampling: str = "dense",
        stride: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        resize: str = "crop",
        on_invalid: str = "error",
        rejects_path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        predict_path: str | None = None,
        num_predict: int | None = 8,
        num_train_clips: int = 1024,
        num_val_clips: int = 64,
        num_test_clips: int = 128,
        num_digits: int | list[int] = (1, 2),
        progress: bool | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        if sampling not in SAMPLINGS:
            raise DataError(f"data.sampling={sampling!r}; choose dense (consecutive frames) or uniform (spread out)")
        if context < 1 or horizon < 1 or clip_length < 2:
            raise DataError(
                f"need context >= 1, horizon >= 1 and data.clip_length >= 2; got {context}, {horizon}, {clip_length}"
            )
        if stride is not None and stride < 1:
            raise DataError(f"data.stride={stride}: give a positive number of frames, or null for the window")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise DataError(
                f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction}: keep each in [0, 1)"
            )
        self.path, self.predict_path = path, predict_path
        self.image_size, self.in_channels = int(image_size), int(in_channels)
        self.context, self.horizon, self.clip_length = int(context), int(horizon), int(clip_length)
        self.sampling, self.stride = sampling, stride
        self.keep_source_settings(
            fps, max_frames, resize, on_invalid, rejects_path, progress, val_fraction, test_fraction, num_predict
        )
        self.embedded = embedded_sizes(num_train_clips, num_val_clips, num_test_clips, num_digits)
        self.videos: dict[str, list[Video]] | None = None
        self.collate_fn = self.collate

    # ---------------------------------------------------------------- reading

    def read(self, path: str) -> list[Video]:
        return read_videos(path, min_frames=self.context + 1, **self.read_kwargs).videos

    def split_videos(self, videos: list[Video]) -> dict[str, list[Video]]:
        return split_by_video(videos, self.val_fraction, self.test_fraction, self.seed, self.path)

    def setup(self, stage: str | None = None) -> None:
        predicting_other = bool(self.predict_path) and stage == "predict"
        if self.path and self.videos is None and not predicting_other:
            self.videos = self.split_videos(self.read(self.path))
        if self.predict_path and stage in (None, "predict") and "predict" not in (self.videos or {}):
            self.videos = {**(self.videos or {}), "predict": self.read(self.predict_path)}
        self.build_sets()

    def build_sets(self) -> None:
        window = self.context + self.horizon
        if self.path is None:
            self.train_set, self.val_set, self.test_set = (
                self.embedded_clips(split, seed, length, self.embedded[name], name)
                for name, split, seed, length in (
                    ("train", "train", self.seed, self.clip_length),
                    ("val", "train", self.seed + 1, window),
                    ("test", "test", self.seed, window),
                )
            )
        elif "train" in self.videos:
            self.train_set = VideoClips(self.videos["train"], self.clip_length, self.sampling, self.stride)
            self.val_set, self.test_set = (
                VideoClips(self.videos[name], window, self.sampling, self.stride) for name in ("val", "test")
            )
        if self.videos and "predict" in self.videos:  # the user's videos: each one, from its first frame
            self.predict_set = VideoClips(self.videos["predict"], window, "dense", stride=10**9)
        else:
            count = len(self.test_set) if self.num_predict is None else min(self.num_predict, len(self.test_set))
            self.predict_set = torch.utils.data.Subset(self.test_set, range(count))

    def embedded_clips(self, split: str, seed: int, length: int, count: int, name: str) -> EmbeddedClips:
        digits = MovingDigits(
            split,
            num_clips=count,
            clip_length=length,
            image_size=self.image_size,
            num_digits=self.embedded["num_digits"],
            seed=seed,
        )
        return EmbeddedClips(digits, self.in_channels, prefix=f"digits-{name}")

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_clips(items, self.horizon)

    # ---------------------------------------------------------------- model <-> data

    def model_kwargs(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "in_channels": self.in_channels}

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Refuse frames of another size or channel count; adopt the model's context (clips are re-cut)."""
        size, channels = contract.get("image_size"), contract.get("in_channels")
        if size is not None and (int(size), int(channels)) != (self.image_size, self.in_channels):
            raise DataError(
                f"this model reads {size}x{size} frames with {channels} channel(s) but the data gives "
                f"{self.image_size}x{self.image_size} with {self.in_channels}; pass image_size={size} "
                f"in_channels={channels}"
            )
        context = contract.get("context")
        if context is None or int(context) == self.context:
            return
        log.info("using the model's context of %d frames (the config said %d)", context, self.context)
        self.context = int(context)
        if self.videos:
            self.videos = {name: self.long_enough(videos) for name, videos in self.videos.items()}
        self.build_sets()

    def long_enough(self, videos: list[Video]) -> list[Video]:
        """Videos with at least context + 1 frames; shorter ones are an error, or dropped with on_invalid=skip."""
        short = [v for v in videos if len(v) < self.context + 1]
        if short and self.read_kwargs["on_invalid"] == "error":
            raise DataError(
                f"{short[0].path}: {len(short[0])} frames, fewer than the {self.context + 1} needed (the model's "
                "context + 1); give longer videos, or set data.on_invalid=skip to leave it out"
            )
        if short:
            log.warning("skipped %d videos shorter than the model's context + 1 frames", len(short))
        kept = [v for v in videos if len(v) >= self.context + 1]
        if not kept:
            raise DataError(f"{self.path}: no video has the {self.context + 1} frames the model's context needs")
        return kept


# ---------------------------------------------------------------------------------------------- captioning


class CaptionClips(Dataset):
    """Items {"id", "frames" (num_frames, C, H, W), "caption" (one reference), "references" (all of them)}."""

    def __init__(self, clips: list[tuple[str, Any, list[str]]], num_frames: int, pairs: bool):
        """clips: (id, frames source, references); frames source: a Video (uniformly sampled) or a tensor.
        pairs: one item per (clip, caption), as captioners train; else one item per clip."""
        self.clips, self.num_frames = clips, num_frames
        self.index = [(c, r) for c, (_, _, refs) in enumerate(clips) for r in (range(len(refs)) if pairs else [0])]

    def __len__(self) -> int:
        return len(self.index)

    def frames(self, source: Any) -> torch.Tensor:
        if isinstance(source, Video):  # SwinBERT's uniform sampling over the whole video
            picked = np.linspace(0, len(source) - 1, self.num_frames).round().astype(np.int64)
            return torch.from_numpy(source.frames[picked]).float() / 255
        return source

    def __getitem__(self, i: int) -> dict[str, Any]:
        c, r = self.index[i]
        clip_id, source, references = self.clips[c]
        caption = references[r] if references else ""
        return {"id": clip_id, "frames": self.frames(source), "caption": caption, "references": references}


class EmbeddedCaptionClips(Dataset):
    """Moving-digits clips of `num_frames` frames with their template caption as the one reference."""

    def __init__(self, digits: MovingDigits, prefix: str):
        self.digits, self.prefix = digits, prefix

    def __len__(self) -> int:
        return len(self.digits)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.digits[i]
        caption = item["caption"]
        return {"id": f"{self.prefix}-{i:05d}", "frames": item["frames"], "caption": caption, "references": [caption]}


class CaptionDataModule(VideoSourceDataModule):
    """Clips with captions for SwinBERT: moving digits and their template captions (path=None), or the user's
    videos (`path`, read as `VideoDataModule` does) with an MSR-VTT-style JSON or a video,caption CSV
    (`captions`; see domains/video/captions.py). Each clip is `num_frames` frames spread evenly over the video.

    The word vocabulary is built from the training captions (`min_word_count`), or is the model's own
    (`accept_contract`); captions are cut to `max_caption_len` tokens with [CLS] and [SEP]. A caption naming a
    video that is not there, or an empty caption, is an error (one line) or skipped with on_invalid=skip;
    videos without captions are only predicted. `predict_path`: other videos to caption.
    """

    def __init__(
        self,
        path: str | None = None,
        captions: str | None = None,
        image_size: int = 32,
        in_channels: int = 1,
        num_frames: int = 8,
        fps: float | None = None,
        max_frames: int | None = None,
        resize: str = "crop",
        on_invalid: str = "error",
        rejects_path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        predict_path: str | None = None,
        num_predict: int | None = 16,
        num_train_clips: int = 2048,
        num_val_clips: int = 64,
        num_test_clips: int = 128,
        num_digits: int | list[int] = (1, 2),
        max_caption_len: int = 24,
        min_word_count: int = 1,
        progress: bool | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        if path and not captions:
            raise DataError(f"{path}: give the captions too: data.captions=<MSR-VTT .json or video,caption .csv>")
        if num_frames < 1:
            raise DataError(f"data.num_frames={num_frames}: give at least one frame per clip")
        self.path, self.captions_path, self.predict_path = path, captions, predict_path
        self.image_size, self.in_channels, self.num_frames = int(image_size), int(in_channels), int(num_frames)
        self.on_invalid = on_invalid
        self.keep_source_settings(
            fps, max_frames, resize, on_invalid, rejects_path, progress, val_fraction, test_fraction, num_predict
        )
        self.embedded = embedded_sizes(num_train_clips, num_val_clips, num_test_clips, num_digits)
        self.max_caption_len, self.min_word_count = max_caption_len, min_word_count
        self.tokenizer = None
        self.collate_fn = self.collate

    def read(self, path: str) -> list[Video]:
        return read_videos(path, min_frames=1, **self.read_kwargs).videos

    def user_splits(self) -> dict[str, list[tuple[str, Any, list[str]]]]:
        from domains.video.captions import read_captions

        videos = self.read(self.path)
        table = read_captions(self.captions_path, videos=[v.id for v in videos], on_invalid=self.on_invalid)
        if table.rejected:
            log.warning("%s: skipped %d invalid captions (on_invalid=skip)", self.captions_path, len(table.rejected))
        by_video = table.by_video()
        captioned = [v for v in videos if v.id in by_video]
        if len(captioned) < len(videos):
            log.info("%s: %d videos have no caption; they are not trained on", self.path, len(videos) - len(captioned))
        split = split_by_video(captioned, self.val_fraction, self.test_fraction, self.seed, self.path)
        return {name: [(v.id, v, by_video[v.id]) for v in vids] for name, vids in split.items()}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.path is None:
            self.train_set, self.val_set, self.test_set = (
                EmbeddedCaptionClips(
                    MovingDigits(
                        split,
                        num_clips=self.embedded[name],
                        clip_length=self.num_frames,
                        image_size=self.image_size,
                        num_digits=self.embedded["num_digits"],
                        seed=seed,
                    ),
                    prefix=f"digits-{name}",
                )
                for name, split, seed in (
                    ("train", "train", self.seed),
                    ("val", "train", self.seed + 1),
                    ("test", "test", self.seed),
                )
            )
            train_captions = [self.train_set.digits.clip(i).caption for i in range(len(self.train_set))]
        else:
            splits = self.user_splits()
            self.train_set = CaptionClips(splits["train"], self.num_frames, pairs=True)
            self.val_set, self.test_set = (
                CaptionClips(splits[k], self.num_frames, pairs=False) for k in ("val", "test")
            )
            train_captions = [c for _, _, refs in splits["train"] for c in refs]
        if self.tokenizer is None:
            from domains.video.captions import CaptionTokenizer

            self.tokenizer = CaptionTokenizer.build(train_captions, min_count=self.min_word_count)
        if self.predict_path:
            videos = self.read(self.predict_path)
            self.predict_set = CaptionClips([(v.id, v, []) for v in videos], self.num_frames, pairs=False)
        else:
            count = len(self.test_set) if self.num_predict is None else min(self.num_predict, len(self.test_set))
            self.predict_set = torch.utils.data.Subset(self.test_set, range(count))

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        frames = torch.stack([item["frames"] for item in items])
        if self.in_channels != frames.shape[2]:
            frames = frames.expand(-1, -1, self.in_channels, -1, -1)
        return {
            "id": [item["id"] for item in items],
            "frames": frames,
            "caption_ids": self.tokenizer.encode_batch([item["caption"] for item in items], self.max_caption_len),
            "references": [item["references"] for item in items],
        }

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "vocab_size": len(self.tokenizer),
            "num_frames": self.num_frames,
            "img_size": self.image_size,
            "max_caption_len": self.max_caption_len,
        }

    def task_kwargs(self) -> dict[str, Any]:
        return {"vocab": list(self.tokenizer.words), "slot_metrics": self.path is None}

    def accept_contract(self, contract: dict[str, Any]) -> None:
        """Frames as the model was built for; captions in the model's own vocabulary."""
        from domains.video.captions import CaptionTokenizer

        want = (contract.get("num_frames"), contract.get("image_size"))
        if want[0] is not None and (int(want[0]), int(want[1])) != (self.num_frames, self.image_size):
            raise DataError(
                f"this captioner reads {want[0]} frames of {want[1]}x{want[1]} but the data gives {self.num_frames} "
                f"of {self.image_size}x{self.image_size}; pass data.num_frames={want[0]} data.image_size={want[1]}"
            )
        words = contract.get("vocab")
        if words and (self.tokenizer is None or list(self.tokenizer.words) != list(words)):
            self.tokenizer = CaptionTokenizer(list(words))
