"""Frame-prediction quality: PSNR and SSIM of each generated frame, averaged per horizon step.

Per frame (torchmetrics' functional `peak_signal_noise_ratio` and
`structural_similarity_index_measure`, pixel range 1): PSNR = 10 log10(1 / MSE) and SSIM
with the usual 11x11 Gaussian window (sigma 1.5; narrower on frames under 11 pixels), its map averaged
over every pixel with the borders reflected, computed in float64.
A frame predicted exactly has an infinite PSNR; it is capped at `MAX_PSNR` so that averages
stay finite. `HorizonMetrics` sums them per horizon step (step 1 = the first frame after the
context) over clips, so `curve()` is the mean PSNR/SSIM at each step and `summary()` their mean
over all generated frames, plus the values at chosen steps (10, 50, 200: those reached).
`copy_last_frame` is the baseline every predictor must beat: the last context frame repeated.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

MAX_PSNR = 100.0  # dB: a perfectly predicted frame (MSE 0) counts as this
MAX_STEPS = 4096  # longest horizon a HorizonMetrics accumulates
REPORT_STEPS = (10, 50, 200)


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) -> (N, C, H, W) in float64: SSIM's variances (E[x^2] - E[x]^2) lose ~1e-4 in float32."""
    return x.reshape(-1, *x.shape[-3:]).double()


def frame_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each frame, pixels in [0, 1]: (..., C, H, W) -> (...)."""
    values = peak_signal_noise_ratio(_frames(pred), _frames(target), data_range=1.0, reduction="none", dim=(1, 2, 3))
    return values.clamp(max=MAX_PSNR).reshape(pred.shape[:-3]).to(pred.dtype)


def ssim_sigma(height: int, width: int) -> float:
    """1.5 (an 11x11 window), or a narrower Gaussian whose window fits frames smaller than 11 pixels.

    torchmetrics sizes the Gaussian window from sigma alone: 2 int(3.5 sigma + 0.5) + 1 pixels.
    """
    side = min(height, width)
    return 1.5 if side >= 11 else max(1, (side - 1) // 2) / 3.5


def frame_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame, pixels in [0, 1]: (..., C, H, W) -> (...).

    The mean of the SSIM map over every pixel, the frame's borders reflected (torchmetrics' convention).
    """
    sigma = ssim_sigma(*pred.shape[-2:])
    values = structural_similarity_index_measure(
        _frames(pred), _frames(target), data_range=1.0, reduction="none", sigma=sigma
    )
    return values.reshape(pred.shape[:-3]).to(pred.dtype)


def copy_last_frame(context: torch.Tensor, horizon: int) -> torch.Tensor:
    """The baseline forecast: context (B, Tc, C, H, W) -> its last frame repeated, (B, horizon, C, H, W)."""
    return context[:, -1:].expand(-1, horizon, *context.shape[2:])


class HorizonMetrics(Metric):
    """Sums of PSNR and SSIM per horizon step over clips; frames past a clip's end are left out."""

    full_state_update = False

    def __init__(self, report_steps: tuple[int, ...] = REPORT_STEPS, **kwargs):
        super().__init__(**kwargs)
        self.report_steps = tuple(report_steps)
        for name in ("psnr", "ssim", "count"):
            self.add_state(name, torch.zeros(MAX_STEPS, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """pred, target (B, H, C, H, W) in [0, 1]; valid (B, H) bool: which generated frames have a truth."""
        steps = pred.shape[1]
        if steps > MAX_STEPS:
            raise ValueError(f"horizon {steps} is longer than the {MAX_STEPS} steps HorizonMetrics keeps")
        keep = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device) if valid is None else valid.bool()
        psnr = torch.where(keep, frame_psnr(pred, target), 0.0).double()
        ssim = torch.where(keep, frame_ssim(pred, target), 0.0).double()
        self.psnr[:steps] += psnr.sum(0)
        self.ssim[:steps] += ssim.sum(0)
        self.count[:steps] += keep.sum(0).double()

    def curve(self) -> dict[str, torch.Tensor]:
        """Mean PSNR and SSIM at each step that some clip reached: {"psnr": (S,), "ssim": (S,)}."""
        reached = int((self.count > 0).sum())
        count = self.count[:reached].clamp(min=1)
        return {"psnr": self.psnr[:reached] / count, "ssim": self.ssim[:reached] / count}

    def compute(self) -> dict[str, torch.Tensor]:
        """Mean over every generated frame, and at each of `report_steps` that was reached."""
        total = self.count.sum().clamp(min=1)
        out = {"psnr": self.psnr.sum() / total, "ssim": self.ssim.sum() / total}
        curve = self.curve()
        for step in self.report_steps:
            if step <= len(curve["psnr"]):
                out[f"psnr@{step}"] = curve["psnr"][step - 1]
                out[f"ssim@{step}"] = curve["ssim"][step - 1]
        return out
