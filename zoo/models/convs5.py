"""ConvS5 frame predictor: frame encoder -> ConvS5 blocks over the latent video -> frame decoder.

Smith, De Mello, Kautz, Linderman & Byeon, "Convolutional State Space Models for
Long-Range Spatiotemporal Modeling", NeurIPS 2023 (arXiv:2310.19694), written from the
paper (the layer is `zoo.layers.convs5`). The paper's Moving-MNIST model encodes each
64x64 frame to a 16x16 latent with a ResNet, models the latent video with a stack of
ConvS5 layers and decodes each output to the next frame; training is teacher-forced
next-frame prediction, generation conditions on context frames and rolls out with the
recurrent step (constant memory per frame). Here the loss is pixel BCE on logits
(`zoo.models.video_base.next_frame_loss`), not the paper's latent pipeline.

Sizes: `convs5_moving_mnist` is the paper's Moving-MNIST model (checked against the
hyperparameters the authors publish, `configs/Moving-MNIST/*/mnist_convS5_novq.yaml`;
their code was not read): 64x64x1 frames to a 16x16 latent of U = 256 channels, 8 ConvS5
layers with P = 256 state channels and 1 HiPPO-N block, 3x3 B and C kernels, dt in
[1e-3, 1e-1], clipped eigenvalues, a 3x3 feedthrough convolution D, GELU, the norm after
the residual. The frame encoder/decoder are this zoo's (`zoo.models.video_base`), not the
authors'.
`convs5_small` is the CPU-friendly size the benchmarks compare; `test_convs5` the registry's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.layers.convs5 import ChannelLayerNorm, ConvS5Block
from zoo.models.video_base import VideoPredictor
from zoo.registry import register_model


class ConvS5Predictor(VideoPredictor):
    """Frames (B, T, C, H, W) -> next-frame predictions (see `VideoPredictor`), temporal model: `depth` ConvS5 blocks.

    Block/layer arguments are those of `zoo.layers.convs5.ConvS5Block` and `ConvS5`
    (state_dim: real state channels P; kernel_size: the B and C kernels; blocks: HiPPO-N blocks).
    """

    recurrent = True
    causal = True

    def __init__(
        self,
        image_size: int = 64,
        in_channels: int = 1,
        channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 64,
        depth: int = 4,
        state_dim: int = 64,
        kernel_size: int = 3,
        blocks: int = 1,
        activation: str = "half_glu1",
        norm: str = "layer",
        prenorm: bool = True,
        dropout: float = 0.0,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        conj_sym: bool = True,
        clip_eigs: bool = False,
        scan_method: str = "auto",
        feedthrough_kernel_size: int = 0,
        output: str = "logits",
        num_classes: int | None = None,
        global_pool: str = "",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.init_video(image_size, in_channels, channels, latent_dim, num_classes, global_pool, drop_rate, output)
        self.blocks = nn.ModuleList(
            ConvS5Block(
                latent_dim,
                state_dim,
                activation=activation,
                norm=norm,
                prenorm=prenorm,
                dropout=dropout,
                kernel_size=kernel_size,
                blocks=blocks,
                dt_min=dt_min,
                dt_max=dt_max,
                conj_sym=conj_sym,
                clip_eigs=clip_eigs,
                scan_method=scan_method,
                feedthrough_kernel_size=feedthrough_kernel_size,
            )
            for _ in range(depth)
        )
        self.final_norm = ChannelLayerNorm(latent_dim) if prenorm and norm == "layer" else nn.Identity()

    def temporal(
        self, latent: torch.Tensor, reset: torch.Tensor | None = None, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states = []
        for i, block in enumerate(self.blocks):
            latent, last = block(latent, reset=reset, state=None if state is None else state[i], return_state=True)
            states.append(last)
        return self.final_norm(latent), states

    def temporal_step(
        self, latent_t: torch.Tensor, state: list[torch.Tensor], reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        new_state = []
        for block, block_state in zip(self.blocks, state):
            latent_t, block_state = block.step(latent_t, block_state, reset_t)
            new_state.append(block_state)
        return self.final_norm(latent_t), new_state

    def init_temporal_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        """One complex state (B, P, h, w) per block."""
        size = self.latent_size
        return [block.init_state(batch, size, size, device, dtype) for block in self.blocks]


def _build(kwargs: dict[str, Any], **defaults: Any) -> ConvS5Predictor:
    return ConvS5Predictor(**{**defaults, **kwargs})


@register_model
def convs5_moving_mnist(**kwargs) -> ConvS5Predictor:
    """The paper's Moving-MNIST size (see the module docstring): 8 layers, U = P = 256, 16x16 latent."""
    return _build(
        kwargs,
        image_size=64,
        channels=(64, 128),
        latent_dim=256,
        depth=8,
        state_dim=256,
        kernel_size=3,
        activation="gelu",
        prenorm=False,
        clip_eigs=True,
        feedthrough_kernel_size=3,
    )


@register_model
def convs5_small(**kwargs) -> ConvS5Predictor:
    """64x64 -> 16x16 latent of 64 channels, 4 blocks with 128 real state channels (918k parameters)."""
    return _build(kwargs, image_size=64, channels=(32, 64), latent_dim=64, depth=4, state_dim=128)


@register_model
def test_convs5(**kwargs) -> ConvS5Predictor:
    """16x16 frames -> 4x4 latent, 2 blocks: for tests (<= 100k parameters)."""
    return _build(kwargs, image_size=16, channels=(8, 16), latent_dim=16, depth=2, state_dim=16)
