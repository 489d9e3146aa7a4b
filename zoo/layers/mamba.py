"""Mamba: the selective state-space block, with a pure-PyTorch scan and mamba-ssm's kernels on CUDA.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (2023),
arXiv:2312.00752. Parameter names and shapes follow the official `mamba_ssm.modules.
mamba_simple.Mamba` (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj), so its
state dict loads into `Mamba` here with the same keys.

Per channel d and state n, with input-dependent delta, B, C (the "selection"):

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t,    y_t = C_t . h_t + D x_t,    out_t = y_t * silu(z_t)

On CPU (or without mamba-ssm) the recurrence goes through the shared
`zoo.layers.scan.linear_scan`, chunk by chunk, with a hand-written backward that
keeps only the chunk-boundary states: memory is O(B L D + B T D N) for chunk T
instead of the O(B L D N) of materialising every state (see benchmarks/layers_mamba.py).

On CUDA, when mamba-ssm is installed with its compiled kernels, the block calls
`mamba_inner_fn` / `selective_scan_fn` / `causal_conv1d_fn` instead. Install them with

    MAMBA_FORCE_BUILD=TRUE MAMBA_KEEP_CUDA_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \\
        pip install --no-build-isolation causal-conv1d mamba-ssm

(`MAMBA_KEEP_CUDA_BUILD=TRUE` is needed from mamba-ssm releases that made `selective_scan_cuda`
opt-in; older releases ignore it.)

Padding `mask` (B, L), True on real tokens: padded inputs are zeroed before the
short convolution and their step size delta is set to 0 (exp(0 A) = 1, no input),
so the state passes through padding unchanged and real positions never see padded
content; left- or right-padded outputs equal the unpadded ones.

Resets `(B, L)`, True where a new sequence (episode) starts at t: the SSM state is
restarted before step t through the scan, and the causal convolution only mixes
inputs of the same segment, so outputs from t on equal a fresh start on `x[:, t:]`.
The mamba-ssm kernels support neither masks in the fused path nor resets, so those
inputs take the pure path (a mask still uses `selective_scan_fn`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.scan import linear_scan

try:  # compiled kernels; newer mamba-ssm wheels ship selective_scan_cuda only on opt-in
    import selective_scan_cuda  # noqa: F401
    from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn, selective_scan_fn
except (ImportError, OSError):
    mamba_inner_fn = selective_scan_fn = None
try:
    from causal_conv1d import causal_conv1d_fn
except (ImportError, OSError):
    causal_conv1d_fn = None

MambaState = tuple[torch.Tensor, torch.Tensor]  # conv_state (B, d_inner, d_conv), ssm_state (B, d_inner, d_state)


def has_mamba_kernels() -> bool:
    """Whether mamba-ssm's CUDA selective scan and causal-conv1d are importable."""
    return selective_scan_fn is not None and causal_conv1d_fn is not None


def _discretize(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(delta A) and delta B u, both (B, T, D, N)."""
    decay = torch.exp(delta.unsqueeze(-1) * A)
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)
    return decay, drive


class _ChunkedSelectiveScan(torch.autograd.Function):
    """y_t = sum_n C_t[n] h_t[:, n] over chunks of `chunk` steps; saves only chunk-start states.

    The backward recomputes each chunk's states from its start and runs the adjoint
    recurrence dh_t = C_t dy_t + exp(delta_{t+1} A) dh_{t+1} backwards, also with
    `linear_scan`, so no (B, L, D, N) tensor ever exists.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0, reset, chunk: int):
        with torch.autocast(u.device.type, enabled=False):  # the recurrence stays in fp32
            return _ChunkedSelectiveScan._forward(ctx, u, delta, A, B, C, h0, reset, chunk)

    @staticmethod
    def _forward(ctx, u, delta, A, B, C, h0, reset, chunk: int):
        h, ys, starts = h0, [], []
        for s in range(0, u.shape[1], chunk):
            part = slice(s, s + chunk)
            starts.append(h)
            decay, drive = _discretize(u[:, part], delta[:, part], A, B[:, part])
            states = linear_scan(decay, drive, reset=None if reset is None else reset[:, part], h0=h)
            ys.append(torch.einsum("btdn,btn->btd", states, C[:, part]))
            h = states[:, -1]
        ctx.save_for_backward(u, delta, A, B, C, reset, torch.stack(starts))
        ctx.chunk = chunk
        return torch.cat(ys, 1), h

    @staticmethod
    def backward(ctx, dy, dh_last):
        with torch.autocast(dy.device.type, enabled=False):
            return _ChunkedSelectiveScan._backward(ctx, dy.to(ctx.saved_tensors[0].dtype), dh_last)

    @staticmethod
    def _backward(ctx, dy, dh_last):
        u, delta, A, B, C, reset, starts = ctx.saved_tensors
        du, ddelta, dB, dC = (torch.zeros_like(t) for t in (u, delta, B, C))
        dA = torch.zeros_like(A)
        carry = dh_last  # what the steps after this chunk send back to its last state
        for i in reversed(range(starts.shape[0])):
            part = slice(i * ctx.chunk, (i + 1) * ctx.chunk)
            r = None if reset is None else reset[:, part]
            decay, drive = _discretize(u[:, part], delta[:, part], A, B[:, part])
            states = linear_scan(decay, drive, reset=r, h0=starts[i])
            del drive
            if r is not None:  # a reset cuts the dependence on h_{t-1}: its decay is effectively 0
                decay.masked_fill_(r[:, :, None, None], 0.0)
            dC[:, part] = torch.einsum("btdn,btd->btn", states, dy[:, part])
            # Adjoint on reversed time tau = T-1-t: dh gains decay_{t+1} dh_{t+1}; the
            # reversed scan never reads its first decay, so the carry enters through the input.
            inject = dy[:, part].flip(1).unsqueeze(-1) * C[:, part].flip(1).unsqueeze(2)
            inject[:, 0] += carry
            gain = torch.cat([decay[:, :1], decay[:, 1:].flip(1)], 1)
            dh = linear_scan(gain, inject).flip(1)
            del gain, inject
            carry = decay[:, 0] * dh[:, 0]
            dB_u = torch.einsum("btdn,btn->btd", dh, B[:, part])
            dB[:, part] = torch.einsum("btdn,btd->btn", dh, delta[:, part] * u[:, part])
            du[:, part] = dB_u * delta[:, part]
            # d loss / d log(decay_t) = dh_t * h_{t-1} * decay_t, built in place in dh.
            dlog_decay = dh
            dlog_decay[:, 1:] *= states[:, :-1]
            dlog_decay[:, 0] *= starts[i]
            dlog_decay *= decay
            del states, decay
            dA += (dlog_decay * delta[:, part].unsqueeze(-1)).sum((0, 1))  # einsum measured 50x slower here
            ddelta[:, part] = dB_u * u[:, part] + torch.einsum("btdn,dn->btd", dlog_decay, A)
        dh0 = carry if ctx.needs_input_grad[5] else None
        return du, ddelta, dA, dB, dC, dh0, None, None


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    reset: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    return_last_state: bool = False,
    chunk_size: int | None = None,
    use_kernel: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan in (batch, length, channels) layout, semantics of mamba-ssm's `selective_scan_ref`.

    u, delta, z: (B, L, D); A: (D, N); B, C: (B, L, N); D, delta_bias: (D,);
    reset: (B, L) bool, restart the state before step t; h0: (B, D, N) initial state.
    Computed in fp32 (fp64 inputs stay fp64); returns y (B, L, D) in u's dtype, and the last state (B, D, N) if asked.
    On CUDA with mamba-ssm (and `use_kernel`), runs `selective_scan_fn` unless a reset or h0 is given.
    """
    dtype = u.dtype
    if use_kernel and selective_scan_fn is not None and u.is_cuda and reset is None and h0 is None:
        out = selective_scan_fn(
            u.transpose(1, 2).contiguous(),
            delta.transpose(1, 2).contiguous(),
            A.float(),
            B.transpose(1, 2).contiguous(),
            C.transpose(1, 2).contiguous(),
            None if D is None else D.float(),
            None if z is None else z.transpose(1, 2).contiguous(),
            None if delta_bias is None else delta_bias.float(),
            delta_softplus,
            return_last_state,
        )
        y, last = out if return_last_state else (out, None)
        y = y.transpose(1, 2)
        return (y, last) if return_last_state else y
    ctype = torch.promote_types(dtype, torch.float32)  # fp32, or fp64 when given fp64 (gradcheck)
    u, delta, A, B, C = (t.to(ctype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(ctype)
    if delta_softplus:
        delta = F.softplus(delta)
    batch, _, dim = u.shape
    if h0 is None:
        h0 = u.new_zeros(batch, dim, A.shape[1])
    if chunk_size is None:  # (B, T, D, N) work tensors of ~2 MB: measured fastest on CPU (benchmarks/layers_mamba.py)
        chunk_size = min(1024, max(64, (1 << 19) // (batch * dim * A.shape[1])))
    y, last = _ChunkedSelectiveScan.apply(u, delta, A, B, C, h0.to(ctype), reset, chunk_size)
    if D is not None:
        y = y + u * D.to(ctype)
    if z is not None:
        y = y * F.silu(z.to(ctype))
    y = y.to(dtype)
    return (y, last) if return_last_state else y


def causal_depthwise_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    reset: torch.Tensor | None = None,
    use_kernel: bool = True,
) -> torch.Tensor:
    """Causal depthwise conv of x (B, L, D) with weight (D, 1, K); with `reset`, taps never cross a segment start."""
    width = weight.shape[-1]
    if reset is None:
        if use_kernel and causal_conv1d_fn is not None and x.is_cuda:
            return causal_conv1d_fn(x.transpose(1, 2).contiguous(), weight[:, 0], bias).transpose(1, 2)
        return F.conv1d(x.transpose(1, 2), weight, bias, padding=width - 1, groups=x.shape[-1])[
            ..., : x.shape[1]
        ].transpose(1, 2)
    segment = reset.long().cumsum(1)
    windows = F.pad(x, (0, 0, width - 1, 0)).unfold(1, width, 1)  # (B, L, D, K), last tap = x_t
    same = F.pad(segment, (width - 1, 0), value=-1).unfold(1, width, 1) == segment.unsqueeze(-1)
    out = torch.einsum("bldk,dk->bld", windows * same.unsqueeze(2).to(x.dtype), weight[:, 0])
    return out if bias is None else out + bias


class Mamba(nn.Module):
    """The Mamba mixer (mamba_simple.Mamba).

    in_proj -> causal conv -> SiLU -> selective SSM, gated by SiLU(z) -> out_proj.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: float = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
        layer_idx: int | None = None,
        use_kernels: bool = True,
    ):
        """Arguments as mamba_simple.Mamba; `use_fast_path` fuses the whole block (mamba_inner_fn), and
        `use_kernels=False` keeps everything in PyTorch even where mamba-ssm is installed (reference runs)."""
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path, self.use_kernels, self.layer_idx = use_fast_path, use_kernels, layer_idx
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        # S4D-real: A = -(1, ..., N) for every channel; A_log and D stay fp32 and out of weight decay.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.A_log._no_weight_decay = self.D._no_weight_decay = True
        self._init_dt(dt_init, dt_scale, dt_min, dt_max, dt_init_floor)

    def _init_dt(self, dt_init: str, dt_scale: float, dt_min: float, dt_max: float, dt_floor: float) -> None:
        # Keep dt_proj's output variance at init and softplus(bias) log-uniform in [dt_min, dt_max] (paper, Sec. 3.6).
        std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        else:
            raise ValueError(f"dt_init={dt_init!r}; choose 'random' or 'constant'")
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(
            min=dt_floor
        )
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """hidden (B, L, d_model) -> (B, L, d_model); mask/reset (B, L) bool as in the module docstring."""
        A = -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))
        if (
            self.use_fast_path
            and self.use_kernels
            and has_mamba_kernels()
            and hidden.is_cuda
            and mask is None
            and reset is None
        ):
            return mamba_inner_fn(
                self.in_proj(hidden).transpose(1, 2),
                self.conv1d.weight,
                self.conv1d.bias,
                self.x_proj.weight,
                self.dt_proj.weight,
                self.out_proj.weight,
                self.out_proj.bias,
                A,
                None,
                None,
                self.D.float(),
                delta_bias=self.dt_proj.bias.float(),
                delta_softplus=True,
            )
        x, z = self.in_proj(hidden).chunk(2, dim=-1)
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        x = F.silu(causal_depthwise_conv(x, self.conv1d.weight, self.conv1d.bias, reset, self.use_kernels))
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        ctype = A.dtype
        delta = F.softplus(F.linear(dt, self.dt_proj.weight).to(ctype) + self.dt_proj.bias.to(ctype))
        if mask is not None:
            delta = delta * mask.unsqueeze(-1)
        y = selective_scan(x, delta, A, B, C, self.D, z, reset=reset, use_kernel=self.use_kernels)
        return self.out_proj(y)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> MambaState:
        """Zero states; the SSM state is kept in fp32 (fp64 if asked), as the scan computes."""
        device, dtype = device or self.out_proj.weight.device, dtype or self.conv1d.weight.dtype
        conv_state = torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype)
        ssm_dtype = torch.promote_types(dtype, torch.float32)
        return conv_state, torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=ssm_dtype)

    def step(
        self, x_t: torch.Tensor, state: MambaState, reset_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MambaState]:
        """One token x_t (B, d_model) -> (B, d_model), as mamba_simple's decoding path; reset_t (B,) restarts first."""
        conv_state, ssm_state = state
        if reset_t is not None:
            keep = (~reset_t).view(-1, 1, 1)
            conv_state, ssm_state = conv_state * keep, ssm_state * keep
        x, z = self.in_proj(x_t).chunk(2, dim=-1)
        conv_state = torch.cat([conv_state[..., 1:], x.unsqueeze(-1).to(conv_state.dtype)], dim=-1)
        x = (conv_state * self.conv1d.weight[:, 0]).sum(-1)
        x = F.silu(x if self.conv1d.bias is None else x + self.conv1d.bias)
        ctype = ssm_state.dtype
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(F.linear(dt, self.dt_proj.weight).to(ctype) + self.dt_proj.bias.to(ctype))
        x, z, B, C = x.to(ctype), z.to(ctype), B.to(ctype), C.to(ctype)
        A = -torch.exp(self.A_log.to(ctype))
        ssm_state = torch.exp(delta.unsqueeze(-1) * A) * ssm_state + (delta * x).unsqueeze(-1) * B.unsqueeze(1)
        y = torch.einsum("bdn,bn->bd", ssm_state, C) + self.D.to(ctype) * x
        y = (y * F.silu(z)).to(x_t.dtype)
        return self.out_proj(y), (conv_state, ssm_state)
