"""ConvS5: a convolutional state-space layer with a tensor-valued state, and its residual block.

Smith, De Mello, Kautz, Linderman & Byeon, "Convolutional State Space Models for
Long-Range Spatiotemporal Modeling", NeurIPS 2023 (arXiv:2310.19694). Written
from the paper; the authors' code is under a research-only licence and was not read.

The ConvSSM of the paper, for inputs U_t (U, H, W) and a state X_t (P, H, W):

    X_t = A_bar * X_{t-1} + B_bar * U_t,        Y_t = C * X_t + D U_t

with `*` a convolution. ConvS5 makes the state kernel A pointwise (1x1) and
diagonal, so the paper's equivalence applies: every pixel of the state is an
S5 system driven by the k x k convolution B * U. Hence, as in S5:

- A = V Lambda V^-1 is initialised with HiPPO-N (`zoo.layers.ssm.block_diagonal_init`),
  stored as Lambda (P complex numbers, P/2 of them with `conj_sym`), and the kernels
  are kept in the eigenbasis: B~ = V^-1 B (P, U, k, k) and C~ = C V (U, P, k, k), complex;
- ZOH per state with a learnable step Delta_p, log-uniform in [dt_min, dt_max] at
  init: Lambda_bar = exp(Lambda Delta), B_bar = Lambda^-1 (Lambda_bar - 1) B~;
- D is a per-channel feedthrough (S5's diagonal D), or with `feedthrough_kernel_size=k` the
  paper's k x k convolution D * U_t (a full U -> U kernel, LeCun-normal at init).

The parallel form is the paper's: since A_bar is pointwise, B_bar * U_t is one
convolution over every frame at once, and the recurrence is elementwise over
(P, H, W), a diagonal `zoo.layers.scan.linear_scan` with `reset` (B, T) restarting
the state at clip boundaries. `step` runs the same recurrence one frame at a time.

Each complex convolution is one real convolution: B_bar as a (2P, U, k, k) kernel
whose output channels are the real then imaginary parts, and 2 Re(C~ X) (the 2 from
conjugate symmetry) as a (U, 2P, k, k) kernel over [Re X, Im X].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.scan import linear_scan
from zoo.layers.ssm import block_diagonal_init, lecun_normal

ACTIVATIONS = ("gelu", "half_glu1", "half_glu2")


class ConvS5(nn.Module):
    """The ConvS5 SSM: `(B, T, U, H, W)` -> `(B, T, U, H, W)`, parallel scan for training, `step` for generation.

    dim: U, channels in and out. state_dim: real state channels (P/2 complex ones with
    `conj_sym`). kernel_size / out_kernel_size: odd k of the input (B) and output (C)
    kernels ("same" padding). blocks: HiPPO-N blocks on the diagonal of the initial A.
    feedthrough_kernel_size: 0 for S5's per-channel D, an odd k for the ConvSSM's k x k D.
    """

    def __init__(
        self,
        dim: int,
        state_dim: int = 64,
        kernel_size: int = 3,
        out_kernel_size: int | None = None,
        blocks: int = 1,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        conj_sym: bool = True,
        clip_eigs: bool = False,
        scan_method: str = "auto",
        feedthrough_kernel_size: int = 0,
    ):
        super().__init__()
        out_kernel_size = kernel_size if out_kernel_size is None else out_kernel_size
        kernels = [("kernel_size", kernel_size), ("out_kernel_size", out_kernel_size)]
        if feedthrough_kernel_size:
            kernels.append(("feedthrough_kernel_size", feedthrough_kernel_size))
        for name, k in kernels:
            if k < 1 or k % 2 == 0:
                raise ZooError(f"ConvS5: {name}={k} must be odd and positive (same padding); use 1, 3, 5, ...")
        self.dim, self.conj_sym, self.clip_eigs, self.scan_method = dim, conj_sym, clip_eigs, scan_method
        self.kernel_size, self.out_kernel_size = kernel_size, out_kernel_size

        Lambda, V, V_inv = block_diagonal_init(state_dim, blocks, conj_sym)
        self.state_size = P = Lambda.shape[0]
        # B and C are sampled over the real state dims, then moved into the eigenbasis (S5's init).
        fan_b, fan_c = dim * kernel_size**2, state_dim * out_kernel_size**2  # true fan-ins of the two convolutions
        B = V_inv @ lecun_normal((state_dim, dim * kernel_size**2), fan_in=fan_b).to(torch.complex128)
        C = lecun_normal((dim, out_kernel_size, out_kernel_size, state_dim), fan_in=fan_c).to(torch.complex128) @ V
        log_dt = torch.rand(P, dtype=torch.float64) * math.log(dt_max / dt_min) + math.log(dt_min)
        self.Lambda_re = nn.Parameter(Lambda.real.float())
        self.Lambda_im = nn.Parameter(Lambda.imag.float())
        self.B = nn.Parameter(torch.view_as_real(B.reshape(P, dim, kernel_size, kernel_size)).float())
        self.C = nn.Parameter(torch.view_as_real(C.permute(0, 3, 1, 2).contiguous()).float())
        k = feedthrough_kernel_size
        D = torch.randn(dim) if not k else lecun_normal((dim, dim * k * k), fan_in=dim * k * k).view(dim, dim, k, k)
        self.D = nn.Parameter(D.float())
        self.log_step = nn.Parameter(log_dt.float())
        for p in (self.Lambda_re, self.Lambda_im, self.B, self.log_step):
            p._no_weight_decay = True  # S5's convention: the SSM parameters get no weight decay

    @property
    def compute_dtype(self) -> torch.dtype:
        """float32, or float64 for a float64 layer (half precision parameters are computed in float32)."""
        return torch.promote_types(self.Lambda_re.dtype, torch.float32)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ZOH: Lambda_bar (P,) and the input kernel B_bar (P, U, k, k), complex."""
        real = self.compute_dtype
        re = self.Lambda_re.clamp(max=-1e-4) if self.clip_eigs else self.Lambda_re
        Lambda = torch.complex(re.to(real), self.Lambda_im.to(real))
        Lambda_bar = torch.exp(Lambda * torch.exp(self.log_step.to(real)))
        gain = (Lambda_bar - 1) / Lambda
        return Lambda_bar, gain.view(-1, 1, 1, 1) * torch.view_as_complex(self.B.to(real))

    def _input_kernel(self, B_bar: torch.Tensor) -> torch.Tensor:
        """(2P, U, k, k) real: output channels 0..P-1 give Re(B_bar * u), P..2P-1 give Im."""
        return torch.cat((B_bar.real, B_bar.imag))

    def _output_kernel(self) -> torch.Tensor:
        """(U, 2P, k, k) real over [Re X, Im X], so the convolution gives Re(C~ * X) (doubled with conj_sym)."""
        C = torch.view_as_complex(self.C.to(self.compute_dtype))
        scale = 2.0 if self.conj_sym else 1.0
        return scale * torch.cat((C.real, -C.imag), dim=1)

    def _drive(self, u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """B_bar * u for frames u (N, U, H, W) -> (N, P, H, W) complex."""
        out = F.conv2d(u.to(kernel.dtype), kernel, padding=self.kernel_size // 2).to(kernel.dtype)
        return torch.complex(out[:, : self.state_size], out[:, self.state_size :])

    def _readout(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Re(C~ * x) for states x (N, P, H, W) complex -> (N, U, H, W) real."""
        return F.conv2d(torch.cat((x.real, x.imag), dim=1), kernel, padding=self.out_kernel_size // 2)

    def _feedthrough(self, u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """D u (per channel) or D * u (a k x k convolution) for frames u (N, U, H, W)."""
        u = u.to(dtype)
        if self.D.dim() == 1:
            return self.D.to(dtype).view(-1, 1, 1) * u
        return F.conv2d(u, self.D.to(dtype), padding=self.D.shape[-1] // 2)

    def forward(
        self,
        u: torch.Tensor,
        reset: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """u (B, T, U, H, W); reset (B, T) bool, True where the state restarts before frame t;
        state (B, P, H, W) complex, the state before the first frame; `return_state` adds the last state."""
        if u.dim() != 5 or u.shape[2] != self.dim:
            raise ZooError(f"ConvS5: expected input (B, T, {self.dim}, H, W), got {tuple(u.shape)}")
        batch, length = u.shape[:2]
        Lambda_bar, B_bar = self.discretize()
        # The paper's parallel form: the input convolution of every frame at once ...
        drive = self._drive(u.flatten(0, 1), self._input_kernel(B_bar)).unflatten(0, (batch, length))
        # ... then a scan that is elementwise over (P, H, W).
        x = linear_scan(Lambda_bar.view(1, 1, -1, 1, 1), drive, reset=reset, h0=state, method=self.scan_method)
        y = self._readout(x.flatten(0, 1), self._output_kernel())
        y = (y + self._feedthrough(u.flatten(0, 1), y.dtype)).unflatten(0, (batch, length)).to(u.dtype)
        return (y, x[:, -1]) if return_state else y

    def init_state(
        self, batch: int, height: int, width: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """A zero state (B, P, H, W), complex128 for float64 (layer or `dtype`), else complex64."""
        double = torch.float64 in (dtype, self.compute_dtype)
        return torch.zeros(
            batch,
            self.state_size,
            height,
            width,
            dtype=torch.complex128 if double else torch.complex64,
            device=device or self.D.device,
        )

    def _step_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Lambda_bar (P, 1, 1), input kernel, output kernel) for `step`.

        Generation runs many steps between parameter updates: without autograd the three
        are kept until a parameter changes (version counter or storage), which removes
        most of a small step's cost. With autograd they are rebuilt inside the graph.
        """
        params = (self.Lambda_re, self.Lambda_im, self.B, self.C, self.log_step)
        key = (self.clip_eigs, *((p.data_ptr(), p._version, p.dtype) for p in params))
        cached = getattr(self, "_step_cache", None)
        if torch.is_grad_enabled() or cached is None or cached[0] != key:
            Lambda_bar, B_bar = self.discretize()
            weights = (Lambda_bar.view(-1, 1, 1), self._input_kernel(B_bar), self._output_kernel())
            if torch.is_grad_enabled():
                return weights
            self._step_cache = cached = (key, weights)
        return cached[1]

    def step(
        self, u_t: torch.Tensor, state: torch.Tensor, reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: u_t (B, U, H, W), state (B, P, H, W) complex, reset_t (B,) bool -> (y_t, new state)."""
        Lambda_bar, in_kernel, out_kernel = self._step_weights()
        if reset_t is not None:
            state = state * (~reset_t.bool()).view(-1, 1, 1, 1)
        state = Lambda_bar * state.to(Lambda_bar.dtype) + self._drive(u_t, in_kernel)
        y = self._readout(state, out_kernel)
        return (y + self._feedthrough(u_t, y.dtype)).to(u_t.dtype), state


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis (-3) of `(..., C, H, W)`: per pixel and frame, so it is causal."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(-3, -1)).movedim(-1, -3)


def pointwise(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as `linear` over the channel axis (-3) of `(..., C, H, W)`."""
    return linear(x.movedim(-3, -1)).movedim(-1, -3)


class ConvS5Block(nn.Module):
    """The paper's ConvS5 layer in S5's residual block: [norm] -> ConvS5 -> GELU / GLU (+dropout) -> + input.

    The GLU's dense layer becomes a 1x1 convolution. activation: "gelu"; "half_glu1"
    (g * sigmoid(W g), g = gelu(y)); "half_glu2" (y * sigmoid(W gelu(y))). norm:
    channel LayerNorm ("layer") or "none"; `prenorm` normalises the block input,
    otherwise the sum after the residual. Remaining keyword arguments go to `ConvS5`.
    """

    def __init__(
        self,
        dim: int,
        state_dim: int = 64,
        activation: str = "half_glu1",
        norm: str = "layer",
        prenorm: bool = True,
        dropout: float = 0.0,
        **ssm_kwargs,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ZooError(f"ConvS5Block: unknown activation={activation!r}; set it to one of {ACTIVATIONS}")
        if norm not in ("layer", "none"):
            raise ZooError(f"ConvS5Block: unknown norm={norm!r}; set it to 'layer' or 'none'")
        self.activation, self.prenorm = activation, prenorm
        self.ssm = ConvS5(dim, state_dim, **ssm_kwargs)
        self.norm = ChannelLayerNorm(dim) if norm == "layer" else nn.Identity()
        self.gate = nn.Linear(dim, dim) if activation != "gelu" else None
        self.drop = nn.Dropout(dropout)

    def _mix(self, y: torch.Tensor) -> torch.Tensor:
        g = self.drop(F.gelu(y))
        if self.gate is None:
            return g
        value = g if self.activation == "half_glu1" else y
        return self.drop(value * torch.sigmoid(pointwise(self.gate, g)))

    def forward(
        self,
        x: torch.Tensor,
        reset: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, U, H, W) -> same shape; reset, state, return_state as in `ConvS5.forward`."""
        h = self.norm(x) if self.prenorm else x
        y, last = self.ssm(h, reset=reset, state=state, return_state=True)
        x = x + self._mix(y)
        x = x if self.prenorm else self.norm(x)
        return (x, last) if return_state else x

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> torch.Tensor:
        return self.ssm.init_state(batch, height, width, device, dtype)

    def step(
        self, x_t: torch.Tensor, state: torch.Tensor, reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(x_t) if self.prenorm else x_t
        y, state = self.ssm.step(h, state, reset_t)
        x_t = x_t + self._mix(y)
        return (x_t if self.prenorm else self.norm(x_t)), state
