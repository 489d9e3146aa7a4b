"""Audio folders as time series: reading, torchaudio resampling and log-mel frames, bad folders and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domains.timeseries.audio import AudioFolderDataModule, find_clips
from zoo.errors import DataError

soundfile = pytest.importorskip("soundfile")
torchaudio = pytest.importorskip("torchaudio")


def write_clips(root, rate: int = 16000, seconds: float = 0.5) -> None:
    rng = np.random.default_rng(0)
    for label in ("dog", "cat"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            stereo = rng.standard_normal((int(rate * seconds), 2)).astype(np.float32) * 0.1
            soundfile.write(root / label / f"{i}.wav", stereo, rate)


def test_clips_are_mono_resampled_and_cut(tmp_path):
    write_clips(tmp_path)
    dm = AudioFolderDataModule(root=str(tmp_path), sample_rate=8000, max_seconds=0.25, batch_size=2, seed=0)
    dm.setup("fit")
    assert dm.classes == ["cat", "dog"] and sum(len(s) for s in (dm.train_set, dm.val_set, dm.test_set)) == 8
    path, _ = dm.predict_set.clips[0]
    stereo, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    expected = torchaudio.functional.resample(torch.from_numpy(stereo.mean(1)), rate, 8000)[:2000]
    torch.testing.assert_close(dm.predict_set[0]["x"][:, 0], expected)
    mel = AudioFolderDataModule(root=str(tmp_path), sample_rate=8000, max_seconds=0.25, n_mels=20, seed=0)
    mel.setup("fit")
    frames = mel.predict_set[0]["x"]
    assert frames.shape == (2000 // 80 + 1, 20) and torch.isfinite(frames).all()  # 10 ms hop, centred frames


def test_bad_audio_folders_and_files(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        find_clips(str(tmp_path / "missing"))
    (tmp_path / "only" / "dog").mkdir(parents=True)
    with pytest.raises(DataError, match="found 1 class folders and 0 audio files"):
        find_clips(str(tmp_path / "only"))
    write_clips(tmp_path / "clips")
    (tmp_path / "clips" / "cat" / "9.wav").write_bytes(b"RIFF not audio")
    dm = AudioFolderDataModule(root=str(tmp_path / "clips"), seed=0)
    dm.setup("fit")
    broken = next(i for i, (p, _) in enumerate(dm.predict_set.clips) if p.name == "9.wav")
    with pytest.raises(DataError, match="9.wav: not a readable audio file"):
        dm.predict_set[broken]
