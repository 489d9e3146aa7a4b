"""S5: the simplified state-space layer, with resets inside the scan for episodic data.

Smith, Warrington & Linderman, "Simplified State Space Layers for Sequence
Modeling", ICLR 2023 (arXiv:2208.04933; official JAX code lindermanlab/S5), and
the resettable form of Lu et al., "Structured State Space Models for In-Context
Reinforcement Learning", NeurIPS 2023 (arXiv:2303.03982; code luchris429/popjaxrl).

One multi-input multi-output linear SSM per layer, diagonalised:

    h_t = Lambda_bar * h_{t-1} + B_bar u_t,        y_t = 2 Re(C h_t) + D u_t

with P/2 complex states standing for P real ones (conjugate symmetry), Lambda
initialised from the eigenvalues of the normal part of HiPPO-LegS ("HiPPO-N"),
repeated over J diagonal blocks, and B, C initialised as V^-1 B and C V with that
block's eigenvectors V. Parameter names and shapes follow the official code
(Lambda_re, Lambda_im, B (P, H, 2), C (H, P, 2), D, log_step (P, 1)).

The recurrence runs through `zoo.layers.scan.linear_scan`; a reset at t restarts
the state before step t (h_t = B_bar u_t), exactly popjaxrl's reset operator.
The two projections are single real matrix products: the complex (P, H) input
matrix is one (2P, H) real matrix whose output is viewed as P complex numbers,
and 2 Re(C h) is one (H, 2P) real matrix applied to h viewed as 2P reals.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.layers.scan import linear_scan

C_INITS = ("trunc_standard_normal", "lecun_normal", "complex_normal")
ACTIVATIONS = ("gelu", "full_glu", "half_glu1", "half_glu2")
NORMS = ("layer", "batch", "none")


# ----------------------------------------------------------------------------- HiPPO initialisation


def hippo_legs(n: int) -> torch.Tensor:
    """The HiPPO-LegS state matrix A (n, n), float64, sign included (stable: eigenvalues in the left half plane)."""
    q = torch.sqrt(1 + 2 * torch.arange(n, dtype=torch.float64))
    return -(torch.tril(q[:, None] * q[None, :]) - torch.diag(torch.arange(n, dtype=torch.float64)))


def hippo_normal(n: int) -> torch.Tensor:
    """HiPPO-N: A + p p^T with p_k = sqrt(k + 1/2), the normal part of HiPPO-LegS (-1/2 I plus a skew matrix)."""
    p = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    return hippo_legs(n) + p[:, None] * p[None, :]


def diagonalize_hippo_normal(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (n,) and unitary eigenvectors (n, n) of HiPPO-N, complex128, by ascending imaginary part.

    HiPPO-N = -1/2 I + K with K real skew-symmetric, so -iK is Hermitian and its
    real eigenvalues are the imaginary parts; the real parts are all -1/2.
    """
    S = hippo_normal(n)
    diag = torch.diagonal(S)
    skew = S - torch.diag(diag)
    imag, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    return torch.complex(diag.mean().expand(n), imag), V


def block_diagonal_init(
    state_dim: int, blocks: int = 1, conj_sym: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """S5's initial Lambda (P,), V (state_dim, P) and V^-1 (P, state_dim), complex128.

    Each of the `blocks` diagonal blocks holds HiPPO-N of size state_dim/blocks. With
    `conj_sym` only the half with negative imaginary part is kept (its conjugates are
    the other half), so P = state_dim/2 complex states represent state_dim real ones.
    """
    if state_dim % blocks:
        raise ZooError(f"S5: state_dim={state_dim} is not divisible by blocks={blocks}; change one of them")
    size = state_dim // blocks
    if conj_sym and size % 2:
        raise ZooError(
            f"S5: conj_sym needs an even block size, got state_dim/blocks = {size}; change state_dim or blocks"
        )
    Lambda, V = diagonalize_hippo_normal(size)
    keep = size // 2 if conj_sym else size
    Lambda, V = Lambda[:keep], V[:, :keep]
    return Lambda.repeat(blocks), torch.block_diag(*[V] * blocks), torch.block_diag(*[V.conj().T] * blocks)


def lecun_normal(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """JAX's lecun_normal: normal truncated at +-2 std, rescaled to variance 1/fan_in (float64)."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of a standard normal truncated at +-2
    return nn.init.trunc_normal_(torch.empty(shape, dtype=torch.float64), 0.0, 1.0, -2.0, 2.0) * std


def _init_C(kind: str, dim: int, V: torch.Tensor) -> torch.Tensor:
    """C (H, P, 2) as the official `C_init` options: sampled over the real state dims, then C V."""
    local = V.shape[0]
    if kind == "complex_normal":
        return torch.randn(dim, V.shape[1], 2, dtype=torch.float64) * math.sqrt(0.5)
    if kind == "trunc_standard_normal":  # lecun_normal per output row: fan_in = number of real states
        C = lecun_normal((dim, local, 2), fan_in=local)
    else:  # lecun_normal on the whole (H, P, 2) array counts H as receptive field, as JAX does
        C = lecun_normal((dim, local, 2), fan_in=local * dim)
    return torch.view_as_real(torch.view_as_complex(C.contiguous()) @ V)


# ----------------------------------------------------------------------------- the SSM


class S5(nn.Module):
    """The S5 SSM: `(B, L, H)` -> `(B, L, H)`, parallel scan for training, `step` for inference.

    dim: H, input/output features. state_dim: real state size (the official
    `ssm_size`); with `conj_sym` the layer keeps state_dim/2 complex states.
    blocks: J, number of HiPPO-N blocks on the diagonal of the initial A.
    discretization: "zoh" or "bilinear". dt_min/dt_max: range of the initial
    log-uniform step sizes. clip_eigs: keep Re(Lambda) <= -1e-4 (left half plane).
    bidirectional: add a scan over the reversed sequence with its own C (C_reverse).
    C_init: "trunc_standard_normal" (alias "trunc_standard"), "lecun_normal", "complex_normal".
    step_rescale: multiplies every step size (e.g. for a change of sampling rate).
    scan_method: passed to `linear_scan`; "auto" is "chunked" on CPU (measured fastest
    for S5's shapes) and the scan's own choice elsewhere or when $ZOO_SCAN_METHOD is set.
    """

    def __init__(
        self,
        dim: int,
        state_dim: int = 64,
        blocks: int = 1,
        discretization: str = "zoh",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        conj_sym: bool = True,
        clip_eigs: bool = False,
        bidirectional: bool = False,
        C_init: str = "trunc_standard_normal",
        step_rescale: float = 1.0,
        scan_method: str = "auto",
    ):
        super().__init__()
        C_init = "trunc_standard_normal" if C_init == "trunc_standard" else C_init
        if C_init not in C_INITS:
            raise ZooError(f"S5: unknown C_init={C_init!r}; set it to one of {C_INITS}")
        if discretization not in ("zoh", "bilinear"):
            raise ZooError(f"S5: unknown discretization={discretization!r}; set it to 'zoh' or 'bilinear'")
        self.dim, self.discretization, self.conj_sym = dim, discretization, conj_sym
        self.clip_eigs, self.bidirectional = clip_eigs, bidirectional
        self.step_rescale, self.scan_method = step_rescale, scan_method

        Lambda, V, V_inv = block_diagonal_init(state_dim, blocks, conj_sym)
        self.state_size = Lambda.shape[0]
        B = V_inv @ lecun_normal((state_dim, dim), fan_in=state_dim).to(torch.complex128)
        log_dt = torch.rand(self.state_size, 1, dtype=torch.float64) * math.log(dt_max / dt_min) + math.log(dt_min)
        self.Lambda_re = nn.Parameter(Lambda.real.float())
        self.Lambda_im = nn.Parameter(Lambda.imag.float())
        self.B = nn.Parameter(torch.view_as_real(B).float())
        self.C = nn.Parameter(_init_C(C_init, dim, V).float())
        self.C_reverse = nn.Parameter(_init_C(C_init, dim, V).float()) if bidirectional else None
        self.D = nn.Parameter(torch.randn(dim))
        self.log_step = nn.Parameter(log_dt.float())
        # The official optimiser gives these the SSM learning rate and no weight decay.
        for p in (self.Lambda_re, self.Lambda_im, self.B, self.log_step):
            p._no_weight_decay = True

    @property
    def compute_dtype(self) -> torch.dtype:
        """float32, or float64 for a float64 model: half-precision parameters are computed in float32."""
        return torch.promote_types(self.Lambda_re.dtype, torch.float32)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lambda_bar (P,) and B_bar (P, H), complex64 (complex128 for a float64 model)."""
        real = self.compute_dtype
        re = self.Lambda_re.clamp(max=-1e-4) if self.clip_eigs else self.Lambda_re
        Lambda = torch.complex(re.to(real), self.Lambda_im.to(real))
        dt = self.step_rescale * torch.exp(self.log_step[:, 0].to(real))
        if self.discretization == "zoh":
            Lambda_bar = torch.exp(Lambda * dt)
            gain = (Lambda_bar - 1) / Lambda
        else:
            inv = 1 / (1 - dt / 2 * Lambda)
            Lambda_bar = inv * (1 + dt / 2 * Lambda)
            gain = inv * dt
        return Lambda_bar, gain[:, None] * torch.view_as_complex(self.B.to(real))

    def _input_weight(self, B_bar: torch.Tensor) -> torch.Tensor:
        """(2P, H) real: rows (Re, Im) of each state, so x @ W^T viewed as complex is B_bar x."""
        return torch.view_as_real(B_bar).transpose(1, 2).reshape(2 * self.state_size, self.dim)

    def _output_weight(self, C: torch.Tensor) -> torch.Tensor:
        """(H, 2P) real with (Re C, -Im C) per state, so W h_as_reals = Re(C h); doubled with conj_sym."""
        sign = C.new_tensor([2.0, -2.0] if self.conj_sym else [1.0, -1.0])
        return (C * sign).reshape(self.dim, 2 * self.state_size)

    def _method(self, device: torch.device) -> str:
        # "auto" picks the loop on CPU up to 4k steps; at S5's widths the chunked scan measured
        # faster (benchmarks/layers_s5.py), so S5 asks for it unless ZOO_SCAN_METHOD decides.
        if self.scan_method == "auto" and device.type == "cpu" and not os.environ.get("ZOO_SCAN_METHOD"):
            return "chunked"
        return self.scan_method

    def _drive(self, x: torch.Tensor, w_in: torch.Tensor) -> torch.Tensor:
        """B_bar x as complex (..., P), from `_input_weight(B_bar)`."""
        out = F.linear(x.to(w_in.dtype), w_in).to(w_in.dtype)  # autocast may have made it bf16
        return torch.view_as_complex(out.unflatten(-1, (self.state_size, 2)))

    def _readout(self, h: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
        """Re(C h) (doubled with conj_sym), from `_output_weight(C)`."""
        return F.linear(torch.view_as_real(h).flatten(-2), w_out).to(w_out.dtype)

    def _step_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Lambda_bar, input weight, output weight) for `step`.

        Acting runs many steps between parameter updates: without autograd the three are
        kept until a parameter changes (its version counter or storage), which roughly
        halves the cost of a small step. With autograd they are rebuilt, inside the graph.
        """
        params = (self.Lambda_re, self.Lambda_im, self.B, self.C, self.log_step)
        key = (self.step_rescale, self.discretization, *((p.data_ptr(), p._version, p.dtype) for p in params))
        cached = getattr(self, "_step_cache", None)
        if torch.is_grad_enabled() or cached is None or cached[0] != key:
            Lambda_bar, B_bar = self.discretize()
            weights = (Lambda_bar, self._input_weight(B_bar), self._output_weight(self.C.to(self.compute_dtype)))
            if torch.is_grad_enabled():
                return weights
            self._step_cache = cached = (key, weights)
        return cached[1]

    def forward(
        self,
        x: torch.Tensor,
        reset: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, H); reset (B, L) bool, True where the state restarts before t; mask (B, L) True on real tokens.

        Padded inputs are zeroed, so from a zero state nothing flows out of padding
        in either direction. `state` (B, P) complex starts the forward scan (not the
        reverse one); `return_state` also returns the forward state after the last step.
        """
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        Lambda_bar, B_bar = self.discretize()
        real = self.compute_dtype
        drive = self._drive(x, self._input_weight(B_bar))
        a, method = Lambda_bar.view(1, 1, -1), self._method(x.device)
        if not self.bidirectional:
            h = linear_scan(a, drive, reset=reset, h0=state, method=method)
            y = self._readout(h, self._output_weight(self.C.to(real)))
        else:
            # Both directions in one scan (stacked on the batch axis): half the sequential steps.
            # Reversed time moves each segment boundary to the step before its reset.
            batch = x.shape[0]
            back_reset = None if reset is None else F.pad(reset[:, 1:], (0, 1)).flip(1)
            both_reset = None if reset is None else torch.cat([reset, back_reset])
            both_h0 = None if state is None else torch.cat([state, torch.zeros_like(state)])
            both = linear_scan(a, torch.cat([drive, drive.flip(1)]), reset=both_reset, h0=both_h0, method=method)
            h, h_back = both[:batch], both[batch:].flip(1)
            y = self._readout(h, self._output_weight(self.C.to(real))) + self._readout(
                h_back, self._output_weight(self.C_reverse.to(real))
            )
        y = (y + self.D * x.to(y.dtype)).to(x.dtype)
        return (y, h[:, -1]) if return_state else y

    def init_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        dtype = torch.complex128 if self.compute_dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.state_size, dtype=dtype, device=device or self.D.device)

    def step(
        self, x_t: torch.Tensor, state: torch.Tensor, reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence: x_t (B, H), state (B, P) complex, reset_t (B,) bool."""
        if self.bidirectional:
            raise ZooError(
                "S5: a bidirectional layer sees the future and has no step(); build it with bidirectional=False"
            )
        Lambda_bar, w_in, w_out = self._step_weights()
        if reset_t is not None:
            state = state * (~reset_t).unsqueeze(-1)
        state = Lambda_bar * state + self._drive(x_t, w_in)
        y = self._readout(state, w_out)
        y = y + self.D * x_t.to(y.dtype)
        return y.to(x_t.dtype), state


# ----------------------------------------------------------------------------- the residual block


class SequenceBatchNorm(nn.BatchNorm1d):
    """BatchNorm over (batch, length) for `(B, L, H)`; in training only real tokens enter the statistics."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None or not self.training:
            return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)
        out = torch.zeros_like(x)
        out[mask] = super().forward(x[mask])
        return out


def make_norm(kind: str, dim: int) -> nn.Module:
    """ "layer" (LayerNorm), "batch" (`SequenceBatchNorm`) or "none"."""
    if kind not in NORMS:
        raise ZooError(f"S5: unknown norm={kind!r}; set it to one of {NORMS}")
    return {"layer": lambda: nn.LayerNorm(dim), "batch": lambda: SequenceBatchNorm(dim), "none": nn.Identity}[kind]()


def apply_norm(norm: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return norm(x, mask) if isinstance(norm, SequenceBatchNorm) else norm(x)


class LengthDropout(nn.Module):
    """Dropout whose mask is shared along the sequence (flax Dropout with broadcast_dims over length)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1], device=x.device, dtype=x.dtype)
        return x * keep.bernoulli_(1 - self.p) / (1 - self.p)


def _dense(dim: int) -> nn.Linear:
    """flax nn.Dense defaults: lecun_normal kernel, zero bias."""
    layer = nn.Linear(dim, dim)
    with torch.no_grad():
        layer.weight.copy_(lecun_normal((dim, dim), fan_in=dim))
        layer.bias.zero_()
    return layer


class S5Block(nn.Module):
    """The official S5 sequence layer: [norm] -> S5 -> activation/GLU (+dropout) -> residual -> [norm].

    norm: "layer", "batch" or "none" (popjaxrl's RL policy uses none); `prenorm`
    normalises the block input, otherwise the sum after the residual.
    activation: "gelu"; "full_glu" (out1(g) * sigmoid(out2(g)), g = gelu(y));
    "half_glu1" (g * sigmoid(out2(g))); "half_glu2" (y * sigmoid(out2(gelu(y)))).
    Remaining keyword arguments go to `S5`.
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
            raise ZooError(f"S5Block: unknown activation={activation!r}; set it to one of {ACTIVATIONS}")
        self.activation, self.prenorm = activation, prenorm
        self.ssm = S5(dim, state_dim, **ssm_kwargs)
        self.norm = make_norm(norm, dim)
        self.out1 = _dense(dim) if activation == "full_glu" else None
        self.out2 = _dense(dim) if activation != "gelu" else None
        self.drop = LengthDropout(dropout)

    def _mix(self, y: torch.Tensor) -> torch.Tensor:
        g = self.drop(F.gelu(y))
        if self.activation == "gelu":
            return g
        if self.activation == "full_glu":  # out1 and out2 share their input: one matrix product
            weight = torch.cat([self.out1.weight, self.out2.weight])
            value, gate = F.linear(g, weight, torch.cat([self.out1.bias, self.out2.bias])).chunk(2, dim=-1)
            out = value * torch.sigmoid(gate)
        elif self.activation == "half_glu1":
            out = g * torch.sigmoid(self.out2(g))
        else:
            out = y * torch.sigmoid(self.out2(g))
        return self.drop(out)

    def forward(
        self,
        x: torch.Tensor,
        reset: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, H) -> (B, L, H); reset, mask, state, return_state as in `S5.forward`."""
        h = apply_norm(self.norm, x, mask) if self.prenorm else x
        y, last = self.ssm(h, reset=reset, mask=mask, state=state, return_state=True)
        x = x + self._mix(y)
        x = x if self.prenorm else apply_norm(self.norm, x, mask)
        return (x, last) if return_state else x

    def init_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        return self.ssm.init_state(batch, device)

    def step(
        self, x_t: torch.Tensor, state: torch.Tensor, reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = apply_norm(self.norm, x_t) if self.prenorm else x_t
        y, state = self.ssm.step(h, state, reset_t)
        x_t = x_t + self._mix(y)
        return (x_t if self.prenorm else apply_norm(self.norm, x_t)), state
