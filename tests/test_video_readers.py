"""Video readers on tiny generated videos (MP4, GIF, folders of frames), and the bad-input corpus
tests/bad_inputs/video through the datamodule: each file is refused in one line naming it."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from domains.video.data import CaptionDataModule, VideoDataModule
from domains.video.readers import find_videos, read_video, read_videos
from zoo.errors import DataError, ZooError

BAD = Path(__file__).parent / "bad_inputs" / "video"


def bar_frames(count: int, height: int = 16, width: int = 16) -> list[np.ndarray]:
    """A 3-pixel white bar at column 2 i (mod width) over black, RGB."""
    frames = []
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        start = (2 * i) % (width - 2)
        frame[:, start : start + 3] = 255
        frames.append(frame)
    return frames


def bar_column(frame: np.ndarray) -> int:
    """Column of the bar's centre in a (C, H, W) frame."""
    return int(np.argmax(frame.astype(np.float64).sum(axis=(0, 1))))


def write_mp4(path: Path, frames: list[np.ndarray], rate: int = 10) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_gif(path: Path, frames: list[np.ndarray], duration_ms: int = 100) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def write_folder(path: Path, frames: list[np.ndarray]) -> Path:
    path.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(path / f"frame{i}.png")  # frame10 must sort after frame9
    return path


def test_lossless_sources_read_exactly(tmp_path):
    frames = bar_frames(12)
    grey = np.stack(frames)[..., :1].transpose(0, 3, 1, 2)  # the bar is white: luma == every channel
    for source in (write_gif(tmp_path / "bar.gif", frames), write_folder(tmp_path / "bar_frames", frames)):
        video = read_video(source, image_size=16, channels=1)
        assert video.frames.dtype == np.uint8 and np.array_equal(video.frames, grey), source
        rgb = read_video(source, image_size=16, channels=3).frames
        assert np.array_equal(rgb, np.stack(frames).transpose(0, 3, 1, 2))
    assert read_video(tmp_path / "bar_frames").id == "bar_frames" and read_video(tmp_path / "bar.gif").id == "bar"


def test_mp4_decodes_resizes_and_resamples(tmp_path):
    frames = bar_frames(20, height=32, width=32)
    path = write_mp4(tmp_path / "bar.mp4", frames, rate=10)
    video = read_video(path, image_size=16, channels=1)
    assert video.frames.shape == (20, 1, 16, 16) and video.fps == pytest.approx(10)
    # lossy codec, but the bar is where it was (halved by the resize)
    assert [bar_column(f) for f in video.frames] == [((2 * i) % 30 + 1) // 2 for i in range(20)]
    half = read_video(path, image_size=16, fps=5)  # every other frame
    assert len(half) == 10 and np.array_equal(half.frames, video.frames[::2]) and half.fps == 5
    assert len(read_video(path, image_size=16, max_frames=7)) == 7
    gif = read_video(write_gif(tmp_path / "slow.gif", frames, duration_ms=100), image_size=16, fps=2.5)
    assert len(gif) == 5  # 10 frames per second -> every 4th


def test_crop_keeps_the_centre_and_stretch_keeps_everything(tmp_path):
    frame = np.zeros((16, 32, 3), np.uint8)
    frame[:, :8] = 255  # white left quarter: outside the central 16x16 square
    path = write_folder(tmp_path / "wide", [frame, frame])
    assert read_video(path, image_size=16, resize="crop").frames.max() == 0
    stretched = read_video(path, image_size=16, resize="stretch").frames
    assert stretched[0, 0, :, :3].min() == 255 and stretched[0, 0, :, 5:].max() == 0


def test_folder_of_videos_skips_bad_ones_and_lists_them(tmp_path, monkeypatch):
    root = tmp_path / "videos"
    root.mkdir()
    write_mp4(root / "a.mp4", bar_frames(12))
    write_gif(root / "b.gif", bar_frames(12))
    write_folder(root / "c", bar_frames(12))
    write_gif(root / "short.gif", bar_frames(3))
    (root / "broken.webm").write_text("not a video")
    (root / "notes.txt").write_text("ignored: not a video type")
    assert [p.name for p in find_videos(root)] == ["a.mp4", "b.gif", "broken.webm", "c", "short.gif"]
    with pytest.raises(DataError, match=r"broken\.webm: cannot open as a video .*data\.on_invalid=skip"):
        read_videos(root, image_size=16, min_frames=5)
    monkeypatch.chdir(tmp_path)
    found = read_videos(root, image_size=16, min_frames=5, on_invalid="skip", progress=True)
    assert [v.id for v in found.videos] == ["a", "b", "c"]
    with open(tmp_path / "videos.rejected.csv") as handle:
        rejects = list(csv.DictReader(handle))
    assert [Path(r["file"]).name for r in rejects] == ["broken.webm", "short.gif"]
    assert "3 frames, fewer than the 5 needed" in rejects[1]["reason"]


def test_user_folder_is_split_by_video_into_clips(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(5):
        write_gif(root / f"v{i}.gif", bar_frames(30))
    data = VideoDataModule(
        path=str(root),
        image_size=16,
        context=4,
        horizon=6,
        clip_length=8,
        val_fraction=0.2,
        test_fraction=0.2,
        batch_size=4,
    )
    data.setup("fit")
    names = {k: [v.id for v in data.videos[k]] for k in ("train", "val", "test")}
    assert sorted(sum(names.values(), [])) == [f"v{i}" for i in range(5)] and len(names["test"]) == 1
    assert len(data.train_set) == 3 * 3 and data.train_set[1]["id"].endswith("@8")  # 3 windows of 8 in 30 frames
    assert data.test_set[0]["frames"].shape == (10, 1, 16, 16)
    uniform = VideoDataModule(path=str(root), image_size=16, context=4, horizon=6, clip_length=8, sampling="uniform")
    uniform.setup("fit")
    assert len(uniform.train_set) == 3 and uniform.train_set[0]["frames"].shape[0] == 8


# ------------------------------------------------------------------------------------------- bad inputs

#: file -> (datamodule kwargs, what the one line must say); each row of README.md is one of these.
CASES = {
    "truncated.mp4": ({}, r"truncated\.mp4: .*(damaged|cannot open).*re-encode"),
    "not_a_video.mp4": ({}, r"not_a_video\.mp4: cannot open as a video .*not a video"),
    "zero_frames.avi": ({}, r"zero_frames\.avi: the video has no frames"),
    "no_video_stream.mp4": ({}, r"no_video_stream\.mp4: the file holds no video stream"),
    "too_short.gif": ({}, r"too_short\.gif: 3 frames, fewer than the 11 needed .*lower context"),
    "mixed_sizes": ({}, r"mixed_sizes/frame05\.png: frame is 20x16 but frame00\.png is 16x16"),
    "corrupt_frame": ({}, r"corrupt_frame/frame07\.png: cannot read this frame"),
    "empty_folder": ({}, r"empty_folder: no videos in this folder"),
    "single_image.png": ({}, r"single_image\.png: a single image is not a video"),
    "empty.gif": ({}, r"empty\.gif: cannot read as a GIF"),
    "clip.mp3": ({}, r"clip\.mp3: unknown video type '\.mp3'"),
}
CAPTION_CASES = {
    "captions_missing_video.json": r"captions_missing_video\.json:sentences\[1\]: caption names video 'clip_b'",
    "captions_empty_text.csv": r"captions_empty_text\.csv:3: empty caption for video 'clip_a'",
    "captions_malformed.json": r"captions_malformed\.json:1: malformed JSON",
}


def test_readme_lists_every_bad_input():
    """Files are rows of the shared table (tests/test_bad_inputs.py runs them through `zoo`); folders are listed."""
    readme = (BAD / "README.md").read_text()
    on_disk = {p.name for p in BAD.iterdir() if p.name not in ("README.md", "_make_files.py")}
    assert all(f"`{name}`" in readme or f"`{name}/`" in readme for name in on_disk), sorted(on_disk)
    assert on_disk >= set(CASES) | set(CAPTION_CASES) and len(on_disk) >= 8
    assert all(p.stat().st_size < 50_000 for p in BAD.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_naming_the_file(name):
    kwargs, pattern = CASES[name]
    data = VideoDataModule(path=str(BAD / name), image_size=16, context=10, horizon=5, **kwargs)
    with pytest.raises(ZooError) as err:
        data.setup("fit")
    message = str(err.value)
    assert "\n" not in message and re.search(pattern, message), message


def test_skip_leaves_out_bad_videos(tmp_path, monkeypatch):
    """on_invalid=skip on the whole corpus folder: only the good GIF in caption_videos/ is left."""
    monkeypatch.chdir(tmp_path)
    data = VideoDataModule(path=str(BAD / "caption_videos"), image_size=16, context=10, horizon=2)
    data.setup("fit")
    assert [v.id for v in data.videos["train"]] == ["clip_a"]
    with pytest.raises(ZooError, match="no usable videos"):
        VideoDataModule(path=str(BAD / "mixed_sizes"), image_size=16, on_invalid="skip").setup("fit")


@pytest.mark.parametrize("name", sorted(CAPTION_CASES))
def test_bad_captions_are_one_line(name):
    data = CaptionDataModule(path=str(BAD / "caption_videos"), captions=str(BAD / name), image_size=16)
    with pytest.raises(ZooError) as err:
        data.setup("fit")
    assert "\n" not in str(err.value) and re.search(CAPTION_CASES[name], str(err.value)), str(err.value)
    skipped = CaptionDataModule(
        path=str(BAD / "caption_videos"), captions=str(BAD / name), image_size=16, on_invalid="skip"
    )
    if name == "captions_malformed.json":  # a file that cannot be parsed is an error whatever on_invalid says
        return
    skipped.setup("fit")  # the one good caption of clip_a is kept
    assert [item["caption"] for item in skipped.train_set] == ["a white bar moves right"]
