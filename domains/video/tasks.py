"""Long-horizon frame prediction with any `VideoPredictor` (ConvS5, ConvLSTM, the video Transformer).

Training is the models' teacher-forced next-frame loss (`zoo.models.video_base.next_frame_loss`:
pixel BCE on logits, output t scored against frame t+1), as in the ConvS5 paper (Smith et al.,
NeurIPS 2023). Validation and test *generate*: each clip's first `context` frames go through the
model (`prefill`), then every later frame is predicted from the model's own previous prediction
(`rollout`), and each generated frame is scored against the truth with PSNR and SSIM
(domains/video/metrics.py). Logged: `{val,test}/loss` (teacher-forced), `{val,test}/psnr` and
`/ssim` (mean over all generated frames), `/psnr@k` and `/ssim@k` at horizon steps 10, 50, 200
when the clips reach them, and on test the same for the copy-last-frame baseline
(`test/copy_last/psnr`, ...).

`predict` generates `horizon` frames after each clip's context and writes, per clip, a GIF (and
an MP4 when PyAV can encode one) of truth | prediction side by side and a PNG strip (truth over
prediction) into `<predictions stem>_frames/` beside predictions.csv, whose rows are
(id, psnr, ssim, psnr_copy_last, generated, files).

`CaptionTask` (experiment=captioning) trains and evaluates SwinBERT captioners (see its docstring).

Both have `predict(clips, ...)` for `zoo.load_pipeline`: the rows `zoo video predict` writes for clips given
in Python (arrays or tensors of frames), batched by the recorded data settings.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domains.video.data import pad_clips
from domains.video.metrics import REPORT_STEPS, HorizonMetrics, copy_last_frame, frame_psnr, frame_ssim
from domains.video.writers import side_by_side, write_gif, write_mp4, write_strip
from zoo.errors import ZooError
from zoo.factory import open_weights
from zoo.models.video_base import VideoPredictor, next_frame_loss
from zoo.training import BaseTask
from zoo.training.gather import merge_across_ranks
from zoo.training.writers import StreamingCSVWriter

log = logging.getLogger(__name__)


def safe_name(text: str) -> str:
    """A clip id as a file name."""
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text) or "clip"


def clip_tensors(clips: Any, channels: int, size: int | None = None) -> list[torch.Tensor]:
    """Clips given in Python -> float (T, C, H, W) tensors in [0, 1], as the readers give them.

    clips: one (T, C, H, W) clip or a batch (N, T, C, H, W) (array or tensor), or a list of clips of any length;
    uint8 frames are divided by 255 (as decoded videos are), floats are taken as they are. One-channel clips
    are repeated to `channels` (as the embedded grey digits are); other shapes are refused in one line.
    """
    if isinstance(clips, (np.ndarray, torch.Tensor)) and clips.ndim == 4:
        clips = [clips]
    out = []
    for i, clip in enumerate(clips):
        frames = torch.as_tensor(np.asarray(clip) if not isinstance(clip, torch.Tensor) else clip)
        frames = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
        if frames.ndim != 4:
            raise ZooError(f"clip {i + 1}: frames of shape {tuple(frames.shape)}; give (frames, channels, H, W)")
        if frames.shape[1] == 1 and channels != 1:
            frames = frames.expand(-1, channels, -1, -1)
        if frames.shape[1] != channels or (size is not None and tuple(frames.shape[2:]) != (size, size)):
            want = f"{channels} x {size} x {size}" if size is not None else f"{channels} channel(s)"
            raise ZooError(
                f"clip {i + 1}: frames of {' x '.join(map(str, frames.shape[1:]))}, but this model reads {want} "
                "(channels x height x width); resize the frames first"
            )
        out.append(frames)
    return out


def clip_ids(ids: Sequence[str] | None, count: int) -> list[str]:
    ids = [str(i) for i in ids] if ids is not None else [f"clip{i + 1}" for i in range(count)]
    if len(ids) != count:
        raise ZooError(f"{count} clips but {len(ids)} ids; give one id per clip")
    return ids


class FramePredictionTask(BaseTask):
    # `finetune weights=<export or .ckpt>` builds the architecture the weights record.
    weights_decide_architecture = True

    def __init__(
        self,
        context: int = 10,
        report_steps: list[int] | tuple[int, ...] = REPORT_STEPS,
        gif_fps: float = 5.0,
        write_mp4: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(self.backbone, VideoPredictor) or not self.backbone.predicts_frames:
            raise ZooError(
                f"model {self.hparams.model!r} does not predict frames; choose a frame predictor "
                "(model=convs5, model=convlstm or model=video_transformer)"
            )
        if context < 1:
            raise ZooError(f"context={context}: give at least one context frame")
        steps = tuple(int(s) for s in report_steps)
        self.val_metrics, self.test_metrics, self.test_copy = (HorizonMetrics(steps) for _ in range(3))
        self.media_dir: Path | None = None  # predict: where clip files go (default: beside predictions.csv)

    def data_contract(self) -> dict[str, Any]:
        return {
            "image_size": self.backbone.image_size,
            "in_channels": self.backbone.in_channels,
            "context": int(self.hparams.context),
        }

    # ------------------------------------------------------------------ steps

    def generate(self, frames: torch.Tensor, steps: int) -> torch.Tensor:
        """Frames (B, steps, C, H, W) in [0, 1] generated after the first `context` frames of `frames`."""
        return self.backbone.rollout(frames[:, : self.hparams.context], steps)

    def shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        frames, lengths = batch["frames"], batch["length"]
        shortest = int(lengths.min())
        loss = next_frame_loss(self.backbone, frames[:, :shortest])  # padded frames never scored
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=frames.shape[0])
        if stage == "train":
            return loss
        context = self.hparams.context
        steps = frames.shape[1] - context
        if steps < 1:
            raise ZooError(
                f"clips of {frames.shape[1]} frames leave nothing to predict after a context of {context}; "
                f"set horizon >= 1 (clips are context + horizon frames)"
            )
        truth = frames[:, context:]
        valid = torch.arange(steps, device=frames.device) < (lengths - context).unsqueeze(1)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(self.generate(frames, steps), truth, valid)
        if stage == "test":
            self.test_copy.update(copy_last_frame(frames[:, :context], steps), truth, valid)
        return loss

    def log_horizons(self, prefix: str, metrics: HorizonMetrics) -> None:
        values = metrics.compute()
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in values.items()}, prog_bar=False)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self.log_horizons("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_horizons("test", self.test_metrics)
        self.log_horizons("test/copy_last", self.test_copy)

    # ------------------------------------------------------------------ predict

    def output_folder(self) -> Path:
        if self.media_dir is None:
            writer = next((c for c in self.trainer.callbacks if isinstance(c, StreamingCSVWriter)), None)
            if writer is None:
                raise ZooError("predict writes clip files beside its CSV; run it through `zoo video predict`")
            self.media_dir = writer.output.parent / f"{writer.output.stem}_frames"
        return self.media_dir

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        return self.clip_rows(batch, self.output_folder())

    def clip_rows(self, batch: dict[str, Any], folder: Path | None) -> list[dict[str, Any]]:
        """Rows (id, psnr, ssim, psnr_copy_last, generated, files) of a batch; clip files go to `folder`
        (none written, and `files` empty, without one)."""
        frames, lengths, context = batch["frames"], batch["length"], self.hparams.context
        horizon = max(int(batch["horizon"]), 1)
        pred = self.generate(frames, horizon)
        copy = copy_last_frame(frames[:, :context], horizon)
        rows = []
        for i, clip_id in enumerate(batch["id"]):
            known = max(0, min(horizon, int(lengths[i]) - context))
            truth = frames[i, context : context + known]
            row = {"id": clip_id, "psnr": "", "ssim": "", "psnr_copy_last": "", "generated": horizon}
            if known:
                row.update(
                    psnr=round(float(frame_psnr(pred[i, :known], truth).mean()), 4),
                    ssim=round(float(frame_ssim(pred[i, :known], truth).mean()), 4),
                    psnr_copy_last=round(float(frame_psnr(copy[i, :known], truth).mean()), 4),
                )
            files = self.write_clip_files(folder, safe_name(clip_id), truth, pred[i]) if folder is not None else []
            row["files"] = ";".join(str(Path(folder.name) / Path(f).name) for f in files)
            rows.append(row)
        return rows

    def write_clip_files(self, folder: Path, name: str, truth: torch.Tensor, pred: torch.Tensor) -> list[Path]:
        """GIF (and MP4 when it can be encoded) of truth | prediction, and a PNG strip."""
        pair, fps = side_by_side(truth, pred), self.hparams.gif_fps
        files = [write_gif(folder / f"{name}.gif", pair, fps)]
        if self.hparams.write_mp4 and write_mp4(folder / f"{name}.mp4", pair, fps):
            files.append(folder / f"{name}.mp4")
        files.append(write_strip(folder / f"{name}.png", truth, pred))
        return files

    @torch.no_grad()
    def predict(
        self,
        clips: Any,
        ids: Sequence[str] | None = None,
        horizon: int | None = None,
        folder: str | os.PathLike | None = None,
    ) -> list[dict[str, Any]]:
        """The rows `zoo video predict` writes (`zoo.load_pipeline`): `horizon` frames (default: the recorded
        data.horizon) generated after the first `context` frames of each clip; PSNR/SSIM against the frames the
        clip has after its context (empty when it has none). For the frames themselves use `generate`.

        clips: see `clip_tensors`. ids: default clip1, clip2, ... folder: where the GIF/MP4/PNG of each clip
        go, as `zoo video predict output=<dir>/predictions.csv` writes them to `<dir>/predictions_frames`
        (`files` names them relative to the folder's parent); None writes no files and leaves `files` empty.
        """
        settings = dict(self.data_settings or {})
        context = int(self.hparams.context)
        tensors = clip_tensors(clips, self.backbone.in_channels, self.backbone.image_size)
        short = next((i for i, t in enumerate(tensors) if len(t) < context), None)
        if short is not None:
            raise ZooError(
                f"clip {short + 1}: {len(tensors[short])} frames, fewer than the model's context of {context}"
            )
        ids = clip_ids(ids, len(tensors))
        steps = int(horizon if horizon is not None else settings.get("horizon") or 10)
        size = int(settings.get("batch_size") or 16)
        out = Path(folder) if folder is not None else None
        rows = []
        for start in range(0, len(tensors), size):
            items = [
                {"id": i, "frames": t, "length": len(t)}
                for i, t in zip(ids[start : start + size], tensors[start : start + size])
            ]
            batch = pad_clips(items, steps)
            batch["frames"], batch["length"] = batch["frames"].to(self.device), batch["length"].to(self.device)
            rows += self.clip_rows(batch, out)
        return rows

    def on_predictions_written(self, path: str, datamodule: Any) -> None:
        log.info("generated clips (GIF, MP4, PNG) are in %s", self.output_folder())


class CaptionTask(BaseTask):
    """Video captioning with SwinBERT (Lin et al., CVPR 2022): masked-language-model training on caption tokens
    plus the learned mask's sparsity term (`zoo.models.swinbert`); val/test decode a caption per clip (greedy,
    or beam search with `num_beams` > 1) and log BLEU-4, CIDEr-D and ROUGE-L (pycocoevalcap's scorers,
    domains/video/caption_metrics.py), and on the embedded moving digits (`slot_metrics`) the accuracy of the
    digits and directions the captions name. `predict` rows are (id, caption, reference), and the captions are
    also written as MSR-VTT-style JSON beside the CSV (`<stem>.captions.json`)."""

    def __init__(
        self,
        vocab: list[str] | None = None,
        slot_metrics: bool = False,
        max_length: int | None = None,
        num_beams: int = 1,
        mask_prob: float = 0.5,
        max_masked: int = 45,
        **kwargs,
    ):
        from domains.video.captions import SPECIAL_TOKENS, CaptionTokenizer

        vocab, kwargs = self.weights_vocabulary(vocab, kwargs)
        super().__init__(**kwargs)
        if not getattr(self.backbone, "captioner", False):
            raise ZooError(f"model {self.hparams.model!r} is not a captioner; use model=swinbert")
        self.tokenizer = CaptionTokenizer(list(vocab or SPECIAL_TOKENS))
        if len(self.tokenizer) != self.backbone.vocab_size:
            raise ZooError(
                f"the caption vocabulary has {len(self.tokenizer)} words but the model {self.backbone.vocab_size}; "
                "build the model from the data (leave model.kwargs.vocab_size unset)"
            )
        self.decoded: dict[str, dict[str, Any]] = {}

    @staticmethod
    def weights_vocabulary(vocab: list[str] | None, kwargs: dict[str, Any]) -> tuple[list[str] | None, dict]:
        """Fine-tuning a captioner: its word embeddings are indexed by its own vocabulary, so that one is kept
        (not the vocabulary the new captions would build) and words it lacks become [UNK], with a logged count."""
        if not kwargs.get("weights"):
            return vocab, kwargs
        weights = open_weights(kwargs["weights"])  # read once: BaseTask takes the opened weights
        recorded = weights.data_contract.get("vocab")
        if not recorded or list(recorded) == list(vocab or []):
            return vocab, {**kwargs, "weights": weights}
        unknown = sorted(set(vocab or []) - set(recorded))
        if unknown:
            log.warning(
                "fine-tuning in the weights' vocabulary of %d words: %d words of these captions are not in it and "
                "are read as [UNK] (e.g. %s)",
                len(recorded),
                len(unknown),
                ", ".join(unknown[:5]),
            )
        model_kwargs = {**dict(kwargs.get("model_kwargs") or {}), "vocab_size": len(recorded)}
        return list(recorded), {**kwargs, "weights": weights, "model_kwargs": model_kwargs}

    def data_contract(self) -> dict[str, Any]:
        return {
            "vocab": list(self.tokenizer.words),
            "num_frames": self.backbone.num_frames,
            "image_size": self.backbone.img_size[0],
        }

    @property
    def max_length(self) -> int:
        """Most decoded tokens per caption ([SEP] included): `max_length`, or all the model's positions allow
        ([CLS] + the caption + the [MASK] being predicted: max_caption_len - 1), so that decoding can write every
        caption the model was trained on (a fixed 20 cut the longest digit captions, 22 tokens, short)."""
        given = self.hparams.max_length
        return int(given) if given is not None else self.backbone.max_caption_len - 1

    def captions(self, frames: torch.Tensor) -> list[str]:
        ids = self.backbone.generate(frames, max_length=self.max_length, num_beams=self.hparams.num_beams)
        return [self.tokenizer.decode(row) for row in ids]

    def shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        hp = self.hparams
        # val/test mask the same caption positions every epoch (CPU generator; on GPU, the global RNG)
        seeded = stage != "train" and batch["frames"].device.type == "cpu"
        generator = torch.Generator().manual_seed(len(self.decoded.get(stage, {}))) if seeded else None
        out = self.backbone.mlm_loss(batch["frames"], batch["caption_ids"], hp.mask_prob, hp.max_masked, generator)
        size = batch["frames"].shape[0]
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=size)
        self.log(f"{stage}/sparsity", out.sparsity_loss, batch_size=size)
        if stage != "train":
            seen = self.decoded.setdefault(stage, {})
            for clip_id, caption, refs in zip(batch["id"], self.captions(batch["frames"]), batch["references"]):
                seen[clip_id] = {"caption": caption, "references": refs}
        return out.loss

    def log_caption_scores(self, stage: str) -> None:
        from domains.video.caption_metrics import caption_scores, slot_accuracy

        seen = merge_across_ranks(self.decoded.pop(stage, {}))  # DDP: score the union of every rank's clips
        if not seen:
            return
        scores = caption_scores(
            {k: v["caption"] for k, v in seen.items()}, {k: v["references"] for k, v in seen.items()}
        )
        values = {name: scores[name] for name in ("bleu4", "cider_d", "rouge_l")}
        if self.hparams.slot_metrics:
            slots = slot_accuracy([v["caption"] for v in seen.values()], [v["references"][0] for v in seen.values()])
            values.update({f"slots/{k}": v for k, v in slots.items()})
        self.log_dict({f"{stage}/{k}": float(v) for k, v in values.items()})

    def on_validation_epoch_end(self) -> None:
        self.log_caption_scores("val")

    def on_test_epoch_end(self) -> None:
        self.log_caption_scores("test")

    @torch.no_grad()
    def predict(
        self, clips: Any, ids: Sequence[str] | None = None, references: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The rows (id, caption, reference) `zoo video predict experiment=captioning` writes (`zoo.load_pipeline`).

        clips: see `clip_tensors`; a clip of another length than the model's `num_frames` is sampled as videos
        are (frames spread evenly over it). references: one caption per clip for the `reference` column.
        """
        settings = dict(self.data_settings or {})
        channels = int(settings.get("in_channels") or 1)
        tensors = clip_tensors(clips, channels, self.backbone.img_size[0])
        count, ids = self.backbone.num_frames, clip_ids(ids, len(tensors))
        refs = [[str(r)] for r in references] if references is not None else [[] for _ in tensors]
        if len(refs) != len(tensors):
            raise ZooError(f"{len(tensors)} clips but {len(refs)} references; give one per clip")
        # as CaptionClips samples a video: `num_frames` indices spread evenly over the clip
        tensors = [
            t[np.linspace(0, len(t) - 1, count).round().astype(np.int64)] if len(t) != count else t for t in tensors
        ]
        size = int(settings.get("batch_size") or 32)
        rows = []
        for start in range(0, len(tensors), size):
            part = slice(start, start + size)
            batch = {"id": ids[part], "frames": torch.stack(tensors[part]).to(self.device), "references": refs[part]}
            rows += self.predict_step(batch, 0)
        return rows

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        captions = self.captions(batch["frames"])
        return [
            {"id": clip_id, "caption": caption, "reference": refs[0] if refs else ""}
            for clip_id, caption, refs in zip(batch["id"], captions, batch["references"])
        ]

    def on_predictions_written(self, path: str, datamodule: Any) -> None:
        import csv
        import json

        from zoo.io import write_text_atomic

        with open(path, newline="") as handle:
            sentences = [{"video_id": row["id"], "caption": row["caption"]} for row in csv.DictReader(handle)]
        target = Path(path).with_suffix(".captions.json")
        write_text_atomic(target, json.dumps({"sentences": sentences}, indent=1) + "\n")
        log.info("captions written to %s (MSR-VTT layout)", target)
