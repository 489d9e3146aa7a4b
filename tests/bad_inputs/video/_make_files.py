"""Writes the malformed video inputs of this folder (run once; the files themselves are committed).

python tests/bad_inputs/video/_make_files.py
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def bar_frames(count: int, size: tuple[int, int] = (16, 16)) -> list[np.ndarray]:
    """A white bar sliding right over black: count RGB frames of (height, width)."""
    frames = []
    for i in range(count):
        frame = np.zeros((*size, 3), np.uint8)
        frame[:, i % size[1] : i % size[1] + 3] = 255
        frames.append(frame)
    return frames


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = frames[0].shape[:2] if frames else (16, 16)
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_gif(path: Path, frames: list[np.ndarray]) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def main() -> None:
    # 1. an MP4 cut in half: the index (moov atom) written at the end is missing
    whole = HERE / "whole.mp4"
    write_mp4(whole, bar_frames(12))
    data = whole.read_bytes()
    (HERE / "truncated.mp4").write_bytes(data[: len(data) // 2])
    whole.unlink()
    # 2. a text file with a video's name
    (HERE / "not_a_video.mp4").write_text("this is a text file, not a video\n")
    # 3. an AVI with a video stream and no frames
    with av.open(str(HERE / "zero_frames.avi"), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.start_encoding()
        container.mux(stream.encode())
    # 4. an MP4 container with no video stream that can be read
    write_mp4(HERE / "no_video_stream.mp4", [])
    # 5. a GIF of 3 frames: shorter than the context (10) + 1
    write_gif(HERE / "too_short.gif", bar_frames(3))
    # 6. a folder of frames of two sizes
    folder = HERE / "mixed_sizes"
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(bar_frames(11)):
        size = (16, 20) if i == 5 else (16, 16)
        Image.fromarray(frame).resize(size[::-1]).save(folder / f"frame{i:02d}.png")
    # 7. a folder of frames, one of them not an image
    folder = HERE / "corrupt_frame"
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(bar_frames(11)):
        Image.fromarray(frame).save(folder / f"frame{i:02d}.png")
    (folder / "frame07.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    # 8. a folder with no videos (git keeps it through a hidden file, which readers skip)
    (HERE / "empty_folder").mkdir(exist_ok=True)
    (HERE / "empty_folder" / ".gitkeep").write_text("")
    # 9. a single image given as a video
    Image.fromarray(bar_frames(1)[0]).save(HERE / "single_image.png")
    # 10. an empty GIF file
    (HERE / "empty.gif").write_bytes(b"")
    # 11-12. captions for the one good video of caption_videos/: one names a missing video, one is empty
    (HERE / "caption_videos").mkdir(exist_ok=True)
    write_gif(HERE / "caption_videos" / "clip_a.gif", bar_frames(12))
    sentences = [
        {"video_id": "clip_a", "caption": "a white bar moves right"},
        {"video_id": "clip_b", "caption": "a white bar moves left"},
    ]
    (HERE / "captions_missing_video.json").write_text(json.dumps({"sentences": sentences}, indent=1) + "\n")
    (HERE / "captions_empty_text.csv").write_text('video,caption\nclip_a,a white bar moves right\nclip_a,"  "\n')
    # 13. captions JSON cut off mid-file
    (HERE / "captions_malformed.json").write_text('{"sentences": [{"video_id": "clip_a", "caption": "a white')
    # 14. an audio file given as a video
    (HERE / "clip.mp3").write_bytes(b"ID3\x03")
    # 15. a text file given as a checkpoint
    (HERE / "not_a_checkpoint.ckpt").write_text("this is not a checkpoint\n")


if __name__ == "__main__":
    main()
