"""Audio as time series: a folder per class of sound files, classified by any sequence backbone.

Files are read with soundfile (WAV, FLAC, OGG), mixed to mono, resampled with
`torchaudio.transforms.Resample` and cut to `max_seconds`. The model sees either the
waveform `(L, 1)` or a log-mel spectrogram `(frames, n_mels)`
(`torchaudio.transforms.MelSpectrogram`). Shorter clips are right-padded within a
batch and masked. Splits are stratified and seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from zoo.errors import DataError, ZooError
from zoo.training import BaseDataModule, BaseTask

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def find_clips(root: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """[(file, class index)] and the class names (sub-folder names, sorted)."""
    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"{root}: no such folder; give data.root=<folder with one sub-folder of audio files per class>")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips = [
        (f, i)
        for i, c in enumerate(classes)
        for f in sorted((folder / c).iterdir())
        if f.suffix.lower() in AUDIO_SUFFIXES
    ]
    if len(classes) < 2 or not clips:
        raise DataError(
            f"{root}: found {len(classes)} class folders and {len(clips)} audio files "
            f"({', '.join(AUDIO_SUFFIXES)}); need at least two classes with files"
        )
    return clips, classes


class AudioClips(Dataset):
    def __init__(self, clips: list[tuple[Path, int]], sample_rate: int, max_seconds: float, n_mels: int):
        self.clips, self.sample_rate, self.n_mels = clips, sample_rate, n_mels
        self.max_samples = int(sample_rate * max_seconds)
        self.resamplers: dict[int, torch.nn.Module] = {}
        if n_mels:
            import torchaudio

            # 25 ms windows every 10 ms, the usual speech/audio framing.
            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate,
                n_fft=max(64, int(0.025 * sample_rate)),
                hop_length=max(16, int(0.010 * sample_rate)),
                n_mels=n_mels,
            )

    def __len__(self) -> int:
        return len(self.clips)

    def waveform(self, path: Path) -> torch.Tensor:
        import soundfile
        import torchaudio

        try:
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as err:
            raise DataError(f"{path}: not a readable audio file ({err})") from err
        if len(data) == 0:
            raise DataError(f"{path}: the file has no samples")
        wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
        if rate != self.sample_rate:
            if rate not in self.resamplers:
                self.resamplers[rate] = torchaudio.transforms.Resample(rate, self.sample_rate)
            wave = self.resamplers[rate](wave)
        return wave[: self.max_samples]

    def __getitem__(self, i: int) -> dict:
        path, label = self.clips[i]
        wave = self.waveform(path)
        x = (self.mel(wave) + 1e-6).log().T if self.n_mels else wave.unsqueeze(-1)
        return {"x": x, "label": label, "path": str(path)}


def pad_batch(items: list[dict]) -> dict:
    """Right-pad to the longest clip; `mask` is True on real steps."""
    length = max(item["x"].shape[0] for item in items)
    x = torch.stack([F.pad(item["x"], (0, 0, 0, length - item["x"].shape[0])) for item in items])
    mask = torch.stack([torch.arange(length) < item["x"].shape[0] for item in items])
    return {
        "x": x,
        "mask": mask,
        "label": torch.tensor([item["label"] for item in items]),
        "path": [item["path"] for item in items],
    }


class AudioFolderDataModule(BaseDataModule):
    def __init__(
        self,
        root: str = "???",
        sample_rate: int = 8000,
        max_seconds: float = 1.0,
        n_mels: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        predict_root: str | None = None,
        **loader_kwargs,
    ):
        super().__init__(**loader_kwargs)
        self.root, self.predict_root = root, predict_root
        self.clip_kwargs = dict(sample_rate=sample_rate, max_seconds=max_seconds, n_mels=n_mels)
        self.fractions = (val_fraction, test_fraction)
        self.collate_fn = pad_batch

    def setup(self, stage: str | None = None) -> None:
        clips, self.classes = find_clips(self.root)
        rng = np.random.default_rng(self.seed)
        splits: list[list] = [[], [], []]
        for label in range(len(self.classes)):
            members = [clip for clip in clips if clip[1] == label]
            order = rng.permutation(len(members))
            n_val, n_test = (round(f * len(members)) for f in self.fractions)
            for rank, j in enumerate(order):
                splits[0 if rank >= n_val + n_test else 1 if rank < n_val else 2].append(members[j])
        self.train_set, self.val_set, self.test_set = (AudioClips(s, **self.clip_kwargs) for s in splits)
        predict = find_clips(self.predict_root)[0] if self.predict_root else clips
        self.predict_set = AudioClips(predict, **self.clip_kwargs)

    def model_kwargs(self) -> dict:
        return {"in_features": self.clip_kwargs["n_mels"] or 1}

    def task_kwargs(self) -> dict:
        return {"class_names": self.classes}


class AudioClassifyTask(BaseTask):
    """Cross-entropy over pooled backbone features; logs loss and accuracy, predicts class probabilities."""

    def __init__(
        self, class_names: list[str] | None = None, head_pool: str = "mean", model_kwargs: dict | None = None, **kwargs
    ):
        class_names = list(class_names or ["0", "1"])
        model_kwargs = {**(model_kwargs or {}), "num_classes": len(class_names), "global_pool": head_pool}
        super().__init__(model_kwargs=model_kwargs, **kwargs)

    def logits(self, batch: dict) -> torch.Tensor:
        mask = batch["mask"]
        return self.backbone(batch["x"], None if bool(mask.all()) else mask)

    def shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self.logits(batch)
        loss = F.cross_entropy(logits, batch["label"])
        acc = (logits.argmax(-1) == batch["label"]).float().mean()
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(logits))
        self.log(f"{stage}/acc", acc, prog_bar=stage != "train", batch_size=len(logits))
        return loss

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        names = self.hparams.class_names
        if self.backbone.num_classes != len(names):
            raise ZooError(f"the model has {self.backbone.num_classes} classes but the data {len(names)}")
        probs = self.logits(batch).softmax(-1)
        return [
            {"path": path, "label": names[int(p.argmax())], **{f"p_{n}": float(v) for n, v in zip(names, p)}}
            for path, p in zip(batch["path"], probs)
        ]
