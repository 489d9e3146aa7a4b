"""What the frame-prediction models share: frame encoder/decoder, heads, step, rollout and the loss.

A `VideoPredictor` reads frames `(B, T, C, H, W)`, encodes each with a ResNet-style
`FrameEncoder` to a latent map `(B, T, D, h, w)` (e.g. 64x64 -> 16x16), runs a causal
temporal model over the latents (ConvS5, ConvLSTM or a Transformer; the subclass
implements `temporal`, `temporal_step`, `init_temporal_state`), and then:

- `num_classes=None` (the default): the `FrameDecoder` turns each output latent into
  the prediction of the *next* frame, `(B, T, C, H, W)` (teacher forcing: output t
  predicts frame t+1). `output="logits"` gives pixel logits for a binary cross-entropy
  (Moving-MNIST pixels are near-binary), `output="values"` pixel values for an MSE;
  `to_frames` maps either to frames, and `next_frame_loss` is the matching loss.
- `num_classes` an int (0 included): the zoo's backbone contract instead: features are
  the spatially pooled latents `(B, T, D)` and `forward_head` pools/classifies them, so
  these models run the registry-wide tests. Such a model has no decoder.

Generation is recurrent: `init_state`/`step` advance one frame; `prefill` runs the
context through the parallel form and returns the state after it; `rollout` then feeds
each prediction back as the next input. Resets (`reset` (B, T), True where a new clip
starts before frame t) restart every model's temporal state.

This module registers no model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.models.base import SequenceBackbone

OUTPUTS = ("logits", "values")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups: per sample and frame, so it keeps the models causal."""
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class ResidualBlock(nn.Module):
    """norm -> SiLU -> conv3x3, twice, plus the input (a pre-activation ResNet block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            group_norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            group_norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FrameEncoder(nn.Sequential):
    """(N, C, H, W) -> (N, D, H / 2^n, W / 2^n): a residual block then a stride-2 conv per entry of `channels`."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], latent_dim: int):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1)]
        for i, width in enumerate(channels):
            wider = channels[min(i + 1, len(channels) - 1)]
            layers += [ResidualBlock(width), nn.Conv2d(width, wider, 3, stride=2, padding=1)]
        layers += [group_norm(channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], latent_dim, 1)]
        super().__init__(*layers)


class FrameDecoder(nn.Sequential):
    """The encoder's mirror: (N, D, h, w) -> (N, C, h 2^n, w 2^n), nearest upsampling + conv per stage."""

    def __init__(self, latent_dim: int, channels: tuple[int, ...], out_channels: int):
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, channels[-1], 3, padding=1)]
        for i in reversed(range(len(channels))):
            narrower = channels[max(i - 1, 0)]
            layers += [
                ResidualBlock(channels[i]),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(channels[i], narrower, 3, padding=1),
            ]
        layers += [group_norm(channels[0]), nn.SiLU(), nn.Conv2d(channels[0], out_channels, 3, padding=1)]
        super().__init__(*layers)


def _apply_per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 2-D module over (B, T, C, H, W) (frames batched) or (B, C, H, W)."""
    if x.dim() == 4:
        return module(x)
    return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class VideoPredictor(SequenceBackbone):
    """Base class of the frame predictors; subclasses call `init_video` and implement the temporal model."""

    recurrent = True
    causal = True

    def init_video(
        self,
        image_size: int,
        in_channels: int,
        channels: tuple[int, ...],
        latent_dim: int,
        num_classes: int | None,
        global_pool: str,
        drop_rate: float,
        output: str,
    ) -> None:
        name = type(self).__name__
        factor = 2 ** len(channels)
        if image_size % factor or image_size < factor:
            raise ZooError(
                f"{name}: image_size={image_size} must be a multiple of {factor} "
                f"(the encoder halves it {len(channels)} times); resize the frames or change `channels`"
            )
        if output not in OUTPUTS:
            raise ZooError(f"{name}: unknown output={output!r}; set it to one of {OUTPUTS}")
        self.image_size, self.in_channels, self.output = image_size, in_channels, output
        self.latent_dim, self.latent_size = latent_dim, image_size // factor
        self.encoder = FrameEncoder(in_channels, tuple(channels), latent_dim)
        self.decoder = FrameDecoder(latent_dim, tuple(channels), in_channels) if num_classes is None else None
        self.init_head(latent_dim, num_classes or 0, global_pool, drop_rate)
        self.num_classes = num_classes

    # ------------------------------------------------------------------ implemented by each model

    def temporal(self, latent: torch.Tensor, reset: torch.Tensor | None = None, state: Any = None) -> tuple[Any, Any]:
        """(B, T, D, h, w) latents -> (outputs of the same shape, state after the last frame)."""
        raise NotImplementedError

    def temporal_step(self, latent_t: torch.Tensor, state: Any, reset_t: torch.Tensor | None = None) -> tuple:
        """(B, D, h, w) -> (output (B, D, h, w), new state)."""
        raise NotImplementedError

    def init_temporal_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    @property
    def predicts_frames(self) -> bool:
        """True when the head is the frame decoder (`num_classes=None`)."""
        return self.decoder is not None

    def _check_frames(self, frames: torch.Tensor, time_axis: bool) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if frames.dim() != 4 + time_axis or tuple(frames.shape[-3:]) != expected:
            layout = "(B, T, C, H, W)" if time_axis else "(B, C, H, W)"
            raise ZooError(
                f"{type(self).__name__}: frames must be {layout} with (C, H, W) = {expected}, got "
                f"{tuple(frames.shape)}; resize the video or build the model with image_size/in_channels to match"
            )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) or (B, C, H, W) frames -> latents (B, [T,] D, h, w)."""
        return _apply_per_frame(self.encoder, frames)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latents (B, [T,] D, h, w) -> next-frame logits or values (B, [T,] C, H, W)."""
        if self.decoder is None:
            raise ZooError(f"{type(self).__name__} was built with num_classes set: it has no frame decoder")
        return _apply_per_frame(self.decoder, latent)

    def to_frames(self, output: torch.Tensor) -> torch.Tensor:
        """Model output -> pixel values (sigmoid of logits; values clamped to [0, 1])."""
        return torch.sigmoid(output) if self.output == "logits" else output.clamp(0, 1)

    def forward_latent(self, frames: torch.Tensor, reset: torch.Tensor | None = None) -> torch.Tensor:
        self._check_frames(frames, time_axis=True)
        return self.temporal(self.encode(frames), reset)[0]

    def forward_features(
        self, frames: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T, C, H, W) -> spatially pooled temporal features (B, T, num_features)."""
        return self.forward_latent(frames, reset).mean((-2, -1))

    def _head(self, latent: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.decoder is not None:
            return self.decode(latent)
        if latent.dim() == 4:  # one step: per frame, no pooling over time
            return self.step_head(latent.mean((-2, -1)))
        return self.forward_head(latent.mean((-2, -1)), mask)

    def forward(
        self, frames: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """frames (B, T, C, H, W) -> next-frame predictions (B, T, C, H, W) (output t predicts frame t+1),
        or the classifier's output when built with `num_classes`. mask (B, T) only affects pooling."""
        return self._head(self.forward_latent(frames, reset), mask)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A classifier head replaces the frame decoder (which is dropped)."""
        super().reset_classifier(num_classes, global_pool)
        self.decoder = None

    def example_inputs(self, batch: int = 2, length: int = 16) -> torch.Tensor:
        return torch.rand(batch, length, self.in_channels, self.image_size, self.image_size)

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        ref = next(self.parameters())
        return self.init_temporal_state(batch, device or ref.device, dtype or ref.dtype)

    def step(self, frame_t: torch.Tensor, state: Any, reset_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """frame_t (B, C, H, W) -> (prediction of the next frame (B, C, H, W) or head output, new state)."""
        self._check_frames(frame_t, time_axis=False)
        latent, state = self.temporal_step(self.encode(frame_t), state, reset_t)
        return self._head(latent), state

    def prefill(self, context: torch.Tensor, reset: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Run the context (B, Tc, C, H, W) in parallel: (the prediction after its last frame, the state)."""
        self._check_frames(context, time_axis=True)
        latent, state = self.temporal(self.encode(context), reset)
        return self._head(latent[:, -1]), state

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """Frames (B, horizon, C, H, W) in [0, 1] generated after the context, each prediction fed back.

        The context goes through `prefill`; each generated frame costs one `step`, so a
        recurrent model's memory does not grow with the horizon.
        """
        if not self.predicts_frames:
            raise ZooError(f"{type(self).__name__}: rollout needs the frame decoder; build it with num_classes=None")
        if context.shape[1] < 1 or horizon < 0:
            raise ZooError(
                f"rollout: need a context of at least one frame and horizon >= 0, got {context.shape[1]} and {horizon}"
            )
        output, state = self.prefill(context)
        frames = []
        for i in range(horizon):
            frames.append(self.to_frames(output))
            if i + 1 < horizon:
                output, state = self.step(frames[-1], state)
        shape = (context.shape[0], 0, *context.shape[2:])
        return torch.stack(frames, 1) if frames else context.new_zeros(shape)


def next_frame_loss(model: VideoPredictor, frames: torch.Tensor, reset: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher-forced next-frame loss on frames (B, T, C, H, W) in [0, 1]: BCE on logits or MSE on values.

    Output t (from frames <= t) is scored against frame t+1; with `reset`, a target that
    starts a new clip is not scored (nothing before it could predict it).
    """
    output = model(frames[:, :-1], reset=None if reset is None else reset[:, :-1])
    target = frames[:, 1:].to(output.dtype)
    if model.output == "logits":
        loss = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    else:
        loss = F.mse_loss(output, target, reduction="none")
    loss = loss.mean((-3, -2, -1))
    if reset is None:
        return loss.mean()
    keep = (~reset[:, 1:].bool()).to(loss.dtype)
    return (loss * keep).sum() / keep.sum().clamp(min=1)
