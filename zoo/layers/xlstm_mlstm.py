"""mLSTM memory: a parallel reference, a chunkwise-parallel form linear in length, and a recurrent step.

Beck et al., "xLSTM: Extended Long Short-Term Memory" (NeurIPS 2024), arXiv:2405.04517,
Sec. 2.3 and App. A.3 (stabilised parallel form). Per head, with keys scaled by 1/sqrt(d):

    C_t = f_t C_{t-1} + i_t k_t v_t^T,   n_t = f_t n_{t-1} + i_t k_t,
    h_t = C_t^T q_t / max(|n_t^T q_t|, 1),   i_t = exp(i~_t),   f_t = sigmoid(f~_t).

Every form keeps the log-space stabiliser m_t = max_{j<=t}(i~_j + sum_{j<s<=t} log f_s)
(the row maximum of the paper's log-decay matrix) and stores C, n scaled by exp(-m_t),
which turns the "1" in the denominator into exp(-m_t). Because m_t is the same exact
row maximum in all three forms, they agree to rounding, including the `eps` the
official code adds to the stabilised denominator (`xlstm.blocks.mlstm.backends.
parallel_stabilized_simple`, which `mlstm_parallel` reproduces).

Shapes: q, k (B, H, L, dk); v (B, H, L, dv); igate (input-gate pre-activation) and
logf (log forget gate) (B, H, L). State: C (B, H, dk, dv), n (B, H, dk), m (B, H);
a fresh state has m = -inf (no past), which makes the first step use m_1 = i~_1.

`mLSTMLayer` wraps the memory as in the official `xlstm.blocks.mlstm.layer.mLSTMLayer`
(same parameter names and shapes; see `zoo.layers.xlstm`). Padded positions (mask False)
write nothing (k = 0) and do not decay the memory (f = 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.xlstm import CausalConv1d, HeadwiseLinear, MultiHeadNorm, proj_up_dim, rotary, small_init_, wang_init_

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # C (B,H,dk,dv), n (B,H,dk), m (B,H)


def mlstm_zero_state(batch: int, heads: int, dk: int, dv: int, device=None, dtype=torch.float32) -> MLSTMState:
    return (
        torch.zeros(batch, heads, dk, dv, device=device, dtype=dtype),
        torch.zeros(batch, heads, dk, device=device, dtype=dtype),
        torch.full((batch, heads), float("-inf"), device=device, dtype=dtype),
    )


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    # exponential gates overflow half precision; run the memory in at least fp32
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def mlstm_parallel(q, k, v, igate, logf, eps: float = 1e-6) -> torch.Tensor:
    """Quadratic full-sequence form (reference): materialises the (L, L) decay matrix."""
    length, dk = q.shape[-2], q.shape[-1]
    cum = logf.cumsum(-1)
    log_d = cum[..., :, None] - cum[..., None, :] + igate[..., None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    log_d = log_d.masked_fill(~causal, float("-inf"))
    m = log_d.amax(-1, keepdim=True)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dk) * torch.exp(log_d - m)
    norm = torch.maximum(scores.sum(-1, keepdim=True).abs(), torch.exp(-m))
    return (scores / (norm + eps)) @ v


def mlstm_step(q, k, v, igate, logf, state: MLSTMState, eps: float = 1e-6) -> tuple[torch.Tensor, MLSTMState]:
    """One recurrent step: q, k (B, H, dk), v (B, H, dv), igate, logf (B, H)."""
    c, n, m = state
    dtype = torch.promote_types(_compute_dtype(q), c.dtype)
    q, k, v, igate, logf = (t.to(dtype) for t in (q, k, v, igate, logf))
    k = k / math.sqrt(k.shape[-1])
    m_new = torch.maximum(logf + m, igate)
    f_s = torch.exp(logf + m - m_new)
    i_s = torch.exp(igate - m_new)
    c = f_s[..., None, None] * c + i_s[..., None, None] * (k[..., :, None] * v[..., None, :])
    n = f_s[..., None] * n + i_s[..., None] * k
    num = (q[..., None, :] @ c).squeeze(-2)
    den = torch.maximum((q * n).sum(-1).abs(), torch.exp(-m_new)) + eps
    return num / den[..., None], (c, n, m_new)


def mlstm_chunkwise(
    q, k, v, igate, logf, state: MLSTMState | None = None, chunk_size: int = 64, eps: float = 1e-6
) -> tuple[torch.Tensor, MLSTMState]:
    """Linear-time form: quadratic inside chunks of `chunk_size`, recurrent (C, n, m) between them.

    Returns the outputs (B, H, L, dv) and the state after the last position, so a
    sequence can be processed in pieces (or continued with `mlstm_step`).
    """
    out_dtype, dtype = q.dtype, _compute_dtype(q)
    q, k, v, igate, logf = (t.to(dtype) for t in (q, k, v, igate, logf))
    batch, heads, length, dk = q.shape
    if state is None:
        state = mlstm_zero_state(batch, heads, dk, v.shape[-1], q.device, dtype)
    state = tuple(s.to(dtype) for s in state)
    k = k / math.sqrt(dk)
    full = length - length % chunk_size
    outputs = []
    with torch.autocast(q.device.type, enabled=False):  # keep the exponential gating in fp32
        # equal-size chunks are batched; a shorter tail runs as one extra chunk (no padding)
        for start, stop, size in ((0, full, chunk_size), (full, length, length - full)):
            if stop > start:
                h, state = _chunks(
                    *(t[..., start:stop, :] for t in (q, k, v)),
                    igate[..., start:stop],
                    logf[..., start:stop],
                    state,
                    size,
                    eps,
                )
                outputs.append(h)
    return torch.cat(outputs, dim=-2).to(out_dtype), state


def _chunks(q, k, v, igate, logf, state: MLSTMState, size: int, eps: float) -> tuple[torch.Tensor, MLSTMState]:
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    num_chunks = length // size
    q, k, v = (t.reshape(batch, heads, num_chunks, size, t.shape[-1]) for t in (q, k, v))
    igate = igate.reshape(batch, heads, num_chunks, size)
    cum = logf.reshape(batch, heads, num_chunks, size).cumsum(-1)  # log decay from chunk start to t

    # each position's log weight at its chunk's end, stabilised by the chunk-local maximum
    to_end = cum[..., -1:] - cum + igate
    local_max = to_end.amax(-1)
    weights = torch.exp(to_end - local_max[..., None])
    local_kv = k.transpose(-1, -2) @ (v * weights[..., None])  # (B, H, N, dk, dv)
    local_n = (k * weights[..., None]).sum(-2)

    # The only sequential part, one step per chunk (L / size steps): the states at each chunk
    # start. It is a linear recurrence once m is known, but m itself is a running max, and
    # L / size steps are too few to be worth the shared `zoo.layers.scan` machinery.
    c, n, m = state
    starts = []
    for j in range(num_chunks):
        starts.append((c, n, m))
        decay = cum[:, :, j, -1]
        m_new = torch.maximum(decay + m, local_max[:, :, j])
        old, new = torch.exp(decay + m - m_new), torch.exp(local_max[:, :, j] - m_new)
        c = old[..., None, None] * c + new[..., None, None] * local_kv[:, :, j]
        n = old[..., None] * n + new[..., None] * local_n[:, :, j]
        m = m_new
    c0, n0, m0 = (torch.stack(s, dim=2) for s in zip(*starts))

    log_d = cum[..., :, None] - cum[..., None, :] + igate[..., None, :]
    causal = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    log_d = log_d.masked_fill(~causal, float("-inf"))
    from_start = cum + m0[..., None]  # log weight of the carried state at t
    m_row = torch.maximum(log_d.amax(-1), from_start)
    scores = (q @ k.transpose(-1, -2)) * torch.exp(log_d - m_row[..., None])
    carried = torch.exp(from_start - m_row)
    num = scores @ v + carried[..., None] * (q @ c0)
    dot = scores.sum(-1) + carried * (q @ n0[..., None]).squeeze(-1)
    den = torch.maximum(dot.abs(), torch.exp(-m_row)) + eps
    h = (num / den[..., None]).reshape(batch, heads, length, dv)
    return h, (c, n, m)


# input-gate pre-activation at padded positions: any finite value works because k = 0 there;
# it only enters the stabiliser, so keep it moderate, far from exp overflow
_PAD_IGATE = -30.0


class mLSTMCell(nn.Module):
    """Input/forget gates from (q, k, v), the matrix memory, and the per-head output norm."""

    def __init__(self, inner_dim: int, num_heads: int, chunk_size: int = 64):
        super().__init__()
        self.num_heads, self.chunk_size = num_heads, chunk_size
        self.igate = nn.Linear(3 * inner_dim, num_heads)
        self.fgate = nn.Linear(3 * inner_dim, num_heads)
        self.outnorm = MultiHeadNorm(inner_dim)
        nn.init.zeros_(self.fgate.weight)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, num_heads))
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, std=0.1)

    def gates(self, q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
        """Input-gate pre-activation and log forget gate, each (B, L, NH)."""
        qkv = torch.cat([q, k, v], dim=-1)
        return self.igate(qkv), F.logsigmoid(self.fgate(qkv))

    def forward(self, q, k, v, igate, logf, state=None):
        heads = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        h, state = mlstm_chunkwise(*heads, igate.transpose(1, 2), logf.transpose(1, 2), state, self.chunk_size)
        return self.outnorm(h.transpose(1, 2)), state

    def step(self, q, k, v, igate, logf, state):
        h, state = mlstm_step(*(t.unflatten(-1, (self.num_heads, -1)) for t in (q, k, v)), igate, logf, state)
        return self.outnorm(h.to(q.dtype)), state


class mLSTMLayer(nn.Module):
    """Pre-up-projection mLSTM layer (paper Fig. 11): conv -> q, k; v from the un-convolved branch; output gate z.

    rope_theta: rotary positions on q and k (off by default, as in the paper). `rope_mode="head"`
    rotates each head after the gates are computed (DNA-xLSTM), `"inner"` rotates the whole inner
    vector before the gates (Prot-xLSTM).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        proj_factor: float = 2.0,
        qkv_proj_blocksize: int = 4,
        conv1d_kernel_size: int = 4,
        bias: bool = False,
        dropout: float = 0.0,
        chunk_size: int = 64,
        num_blocks: int = 1,
        round_proj_up_to_multiple_of: int = 64,
        round_proj_up_dim_up: bool = True,
        rope_theta: float | None = None,
        rope_mode: str = "head",
    ):
        super().__init__()
        inner = proj_up_dim(dim, proj_factor, round_proj_up_to_multiple_of, round_proj_up_dim_up)
        if inner % num_heads or inner % qkv_proj_blocksize:
            raise ValueError(
                f"mLSTMLayer: inner dim {inner} must be a multiple of num_heads={num_heads} "
                f"and qkv_proj_blocksize={qkv_proj_blocksize}"
            )
        if rope_mode not in ("head", "inner"):
            raise ValueError(f"mLSTMLayer: rope_mode={rope_mode!r}; choose 'head' or 'inner'")
        self.inner_dim, self.rope_theta, self.rope_mode = inner, rope_theta, rope_mode
        self.proj_up = nn.Linear(dim, 2 * inner, bias=bias)
        self.q_proj, self.k_proj, self.v_proj = (
            HeadwiseLinear(inner, inner // qkv_proj_blocksize, bias) for _ in range(3)
        )
        self.conv1d = CausalConv1d(inner, conv1d_kernel_size)
        self.mlstm_cell = mLSTMCell(inner, num_heads, chunk_size)
        self.learnable_skip = nn.Parameter(torch.ones(inner))
        self.proj_down = nn.Linear(inner, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        small_init_(self.proj_up.weight, dim)
        wang_init_(self.proj_down.weight, dim, num_blocks)
        for lin in (self.proj_up, self.proj_down):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            small_init_(proj.weight, dim)

    def _qk_gates(self, q, k, v, positions):
        heads = self.mlstm_cell.num_heads
        if self.rope_theta and self.rope_mode == "inner":
            q, k = (rotary(t[:, :, None], positions, self.rope_theta).flatten(-2) for t in (q, k))
        igate, logf = self.mlstm_cell.gates(q, k, v)
        if self.rope_theta and self.rope_mode == "head":
            q, k = (rotary(t.unflatten(-1, (heads, -1)), positions, self.rope_theta).flatten(-2) for t in (q, k))
        return q, k, igate, logf

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        x_mlstm, z = self.proj_up(x).chunk(2, dim=-1)
        if mask is not None:
            x_mlstm = x_mlstm * mask[..., None]
        conv = F.silu(self.conv1d(x_mlstm))
        if positions is None and self.rope_theta:
            positions = torch.arange(x.shape[1], device=x.device)
        v = self.v_proj(x_mlstm)
        q, k, igate, logf = self._qk_gates(self.q_proj(conv), self.k_proj(conv), v, positions)
        if mask is not None:
            pad = ~mask[..., None]
            k, logf, igate = k.masked_fill(pad, 0.0), logf.masked_fill(pad, 0.0), igate.masked_fill(pad, _PAD_IGATE)
        h, _ = self.mlstm_cell(q, k, v, igate, logf)
        return self.dropout(self.proj_down((h + self.learnable_skip * conv) * F.silu(z)))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple:
        heads = self.mlstm_cell.num_heads
        head_dim = self.inner_dim // heads
        window = torch.zeros(batch, self.conv1d.kernel_size - 1, self.inner_dim, device=device, dtype=dtype)
        memory_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        memory = mlstm_zero_state(batch, heads, head_dim, head_dim, device, memory_dtype)
        return (window, *memory, torch.zeros((), dtype=torch.long, device=device))

    def step(self, x_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        window, c, n, m, position = state
        x_mlstm, z = self.proj_up(x_t).chunk(2, dim=-1)
        conv, window = self.conv1d.step(x_mlstm, window)
        conv = F.silu(conv)
        v = self.v_proj(x_mlstm)
        q, k, igate, logf = self._qk_gates(
            self.q_proj(conv)[:, None], self.k_proj(conv)[:, None], v[:, None], position[None]
        )
        h, (c, n, m) = self.mlstm_cell.step(q[:, 0], k[:, 0], v, igate[:, 0], logf[:, 0], (c, n, m))
        y = self.dropout(self.proj_down((h + self.learnable_skip * conv) * F.silu(z)))
        return y, (window, c, n, m, position + 1)
