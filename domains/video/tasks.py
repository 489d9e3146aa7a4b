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
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from domains.video.metrics import REPORT_STEPS, HorizonMetrics, copy_last_frame, frame_psnr, frame_ssim
from domains.video.writers import side_by_side, write_gif, write_mp4, write_strip
from zoo.errors import ZooError
from zoo.models.video_base import VideoPredictor, next_frame_loss
from zoo.training import BaseTask
from zoo.training.writers import StreamingCSVWriter

log = logging.getLogger(__name__)


def safe_name(text: str) -> str:
    """A clip id as a file name."""
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text) or "clip"


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
        frames, lengths, context = batch["frames"], batch["length"], self.hparams.context
        horizon = max(int(batch["horizon"]), 1)
        pred = self.generate(frames, horizon)
        copy = copy_last_frame(frames[:, :context], horizon)
        folder = self.output_folder()
        rows = []
        for i, clip_id in enumerate(batch["id"]):
            known = max(0, min(horizon, int(lengths[i]) - context))
            truth = frames[i, context : context + known]
            name = safe_name(clip_id)
            pair, fps = side_by_side(truth, pred[i]), self.hparams.gif_fps
            files = [write_gif(folder / f"{name}.gif", pair, fps)]
            if self.hparams.write_mp4 and write_mp4(folder / f"{name}.mp4", pair, fps):
                files.append(folder / f"{name}.mp4")
            files.append(write_strip(folder / f"{name}.png", truth, pred[i]))
            row = {"id": clip_id, "psnr": "", "ssim": "", "psnr_copy_last": "", "generated": horizon}
            if known:
                row.update(
                    psnr=round(float(frame_psnr(pred[i, :known], truth).mean()), 4),
                    ssim=round(float(frame_ssim(pred[i, :known], truth).mean()), 4),
                    psnr_copy_last=round(float(frame_psnr(copy[i, :known], truth).mean()), 4),
                )
            row["files"] = ";".join(str(Path(folder.name) / Path(f).name) for f in files)
            rows.append(row)
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
        max_length: int = 20,
        num_beams: int = 1,
        mask_prob: float = 0.5,
        max_masked: int = 45,
        **kwargs,
    ):
        from domains.video.captions import SPECIAL_TOKENS, CaptionTokenizer

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

    def data_contract(self) -> dict[str, Any]:
        return {
            "vocab": list(self.tokenizer.words),
            "num_frames": self.backbone.num_frames,
            "image_size": self.backbone.img_size[0],
        }

    def captions(self, frames: torch.Tensor) -> list[str]:
        hp = self.hparams
        ids = self.backbone.generate(frames, max_length=hp.max_length, num_beams=hp.num_beams)
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

        seen = self.decoded.pop(stage, {})
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
