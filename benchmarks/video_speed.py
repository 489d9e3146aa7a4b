"""Video frame prediction: ConvS5 vs ConvLSTM vs a causal video Transformer, side by side in one run.

    python -m benchmarks.video_speed [--size small|paper] [--frames 16 64 256] [--image-size 32] [--batch 1]
        [--context 256] [--generate 8] [--device cpu|cuda] [--threads 1] [--cap 120] [--budget 360]
        [--models ConvS5 ConvLSTM] [--parts model temporal] [--out table.md]

(a) Training: one teacher-forced next-frame step (forward, pixel BCE, backward, Adam) on
`--batch` random clips of T frames, for T in `--frames`: median ms and peak memory; then
the same for the temporal model alone (ConvS5 blocks / ConvLSTM layers / Transformer) on
random latents (with their gradient, as inside the model), since the frame encoder and
decoder are identical in all three.
(b) Generation: `prefill` a `--context`-frame context, then `--generate` frames each fed
back (`step`): median ms per generated frame, the size of the generation state after the
context, and how much that state grows per generated frame (ConvS5 and ConvLSTM keep a
fixed-size state; the Transformer's KV cache grows by one frame of tokens). `--generate 0`
skips it; `--models` and `--parts` run a subset (a long clip at the paper's size, say).

`--size small` (the default) compares the registered `convs5_small`, `convlstm_small` and
`video_transformer_small` (same encoder/decoder, 0.92M / 1.00M / 0.98M parameters at
64x64), built at `--image-size` (32 by default, so the CPU run is short: an 8x8 latent).
`--size paper` compares the paper's Moving-MNIST models at 64x64 (`convs5_moving_mnist`,
`convlstm_moving_mnist`, `video_transformer_moving_mnist`: 8 layers over a 16x16x256
latent, as in the authors' published configs), where the temporal model dominates the step.
The paper (Smith et al., NeurIPS 2023) reports ConvS5 training 3x faster than ConvLSTM and
sampling 400x faster than a Transformer, on GPUs at 64x64 and much larger sizes.

Each case runs in its own process (`benchmarks._harness`): peak memory is the resident
size above the idle process on CPU, `torch.cuda.max_memory_allocated` on CUDA. Times are
medians after a warm-up call; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from benchmarks import _harness as harness
from zoo import create_model
from zoo.models.video_base import next_frame_loss

SIZES = {  # --size: the registered models compared, same encoder/decoder within a size
    "small": {"ConvS5": "convs5_small", "ConvLSTM": "convlstm_small", "Transformer": "video_transformer_small"},
    "paper": {
        "ConvS5": "convs5_moving_mnist",
        "ConvLSTM": "convlstm_moving_mnist",
        "Transformer": "video_transformer_moving_mnist",
    },
}
harness.preload(__name__, "zoo.models")


def build(name: str, image_size: int, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, image_size=image_size).to(device)


def train_case(
    name: str, part: str, frames: int, batch: int, image_size: int, device: str, threads: int, limits: tuple
) -> dict:
    """part "model": the whole next-frame step; "temporal": the temporal model alone on random latents."""
    harness.pin_threads(threads)
    model = build(name, image_size, device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    clips = torch.rand(batch, frames + 1, 1, image_size, image_size, device=device)
    size = model.latent_size
    # requires_grad: inside the model the temporal part also back-propagates into its input (the encoder's output;
    # for ConvLSTM a backward through its 4x-wide input convolution), so "temporal" pays for that here too
    latents = torch.randn(batch, frames, model.latent_dim, size, size, device=device, requires_grad=True)

    def step() -> None:
        if part == "model":
            loss = next_frame_loss(model, clips)
        else:  # the encoder and decoder are the same in all three models: this is the part that differs
            loss = model.temporal(latents)[0].pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    row = harness.measure(step, repeats=3, device=device, cap_s=limits[0], budget_s=limits[1])
    return {**row, "params": sum(p.numel() for p in model.parameters())}


def state_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


@torch.no_grad()
def generate_case(
    name: str, context: int, generate: int, batch: int, image_size: int, device: str, threads: int, limits: tuple
) -> dict:
    harness.pin_threads(threads)
    model = build(name, image_size, device).eval()
    clips = torch.rand(batch, context, 1, image_size, image_size, device=device)
    output, state = model.prefill(clips)
    start_bytes = state_bytes(state)

    def run() -> object:  # step() never mutates a state, so every call starts from the same context
        out, s = output, state
        for _ in range(generate):
            out, s = model.step(model.to_frames(out), s)
        return s

    row = harness.measure(run, repeats=3, device=device, cap_s=limits[0], budget_s=limits[1])
    grown = state_bytes(run())
    return {
        **row,
        "ms_per_frame": row["ms"] / generate,
        "state_mb": start_bytes / 2**20,
        "growth_kb_per_frame": (grown - start_bytes) / generate / 2**10,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256], help="training clip lengths")
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="the models compared (see SIZES)")
    parser.add_argument("--image-size", type=int, help="frame size (default: 32 for small, 64 for paper)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=256, help="context frames before generating")
    parser.add_argument("--generate", type=int, default=8, help="frames generated per timed call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (default 1)")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds a first call may take before a skip")
    parser.add_argument("--budget", type=float, help="seconds per case, warm-up included (default: 3 x --cap)")
    parser.add_argument("--models", nargs="+", choices=list(SIZES["small"]), help="a subset (default: all three)")
    parser.add_argument("--parts", nargs="+", choices=["model", "temporal"], default=["model", "temporal"])
    parser.add_argument("--mem-cap", type=float, default=12.0, help="GB of resident memory before a case is killed")
    parser.add_argument("--out", help="also write the report (Markdown) to this file")
    args = parser.parse_args(argv)
    models = {label: name for label, name in SIZES[args.size].items() if label in (args.models or [label])}
    args.image_size = args.image_size or (64 if args.size == "paper" else 32)
    caps = dict(timeout_s=5 * args.cap + 60, mem_cap_gb=args.mem_cap)
    sizes = (args.batch, args.image_size, args.device, args.threads, (args.cap, args.budget or 3 * args.cap))
    key = "cpu_ms" if args.device == "cpu" else "ms"

    training = {part: [] for part in args.parts}
    for part, table in training.items():
        skip = {label: harness.SkipLarger() for label in models}
        for frames in args.frames:
            rows = {
                label: skip[label].run(train_case, name, part, frames, *sizes, **caps) for label, name in models.items()
            }
            for label, row in rows.items():
                table.append(
                    {
                        "model": label,
                        "frames": frames,
                        "params": row.get("params"),
                        "step ms": harness.value_or_reason(row, "ms"),
                        "cpu ms": row.get("cpu_ms"),
                        "peak MB": row.get("peak_mb"),
                    }
                )
            for other in _others(rows):
                speedup = harness.ratio(rows[other], rows["ConvS5"], key)
                table.append({"model": f"ConvS5 speed-up vs {other}", "frames": frames, "step ms": _times(speedup)})
            print(harness.markdown_table(table[-2 * len(rows) + 1 :]), flush=True)

    generation = []
    rows = {
        label: harness.run_isolated(generate_case, name, args.context, args.generate, *sizes, **caps)
        for label, name in (models.items() if args.generate else ())
    }
    for label, row in rows.items():
        generation.append(
            {
                "model": label,
                "context": args.context,
                "ms / frame": harness.value_or_reason(row, "ms_per_frame"),
                "cpu ms / frame": row["cpu_ms"] / args.generate if "cpu_ms" in row else None,
                "state MB after context": row.get("state_mb"),
                "state growth KB / frame": row.get("growth_kb_per_frame"),
                "peak MB": row.get("peak_mb"),
            }
        )
    for other in _others(rows):
        speedup = harness.ratio(rows[other], rows["ConvS5"], key)
        generation.append({"model": f"ConvS5 speed-up vs {other}", "ms / frame": _times(speedup)})

    titles = {
        "model": f"Training step (fwd + bwd + Adam), batch {args.batch}, {args.image_size}x{args.image_size} frames",
        "temporal": "The temporal model alone (fwd + bwd + Adam on random latents; encoder/decoder excluded)",
    }
    sections = [(titles[part], table) for part, table in training.items()]
    if generation:
        sections.append(
            (f"Generation after a {args.context}-frame context, {args.generate} frames per call", generation)
        )
    command = " ".join(["python -m benchmarks.video_speed", *(sys.argv[1:] if argv is None else argv)])
    report = (
        f"Command: `{command}`\n\nMachine: {harness.machine_description(args.threads)}; device {args.device}\n\n"
        f"{harness.format_sections(sections)}\n"
    )
    print("\n" + report)
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        tmp.write_text(report)
        tmp.replace(out)


def _others(rows: dict) -> list[str]:
    """The baselines measured beside ConvS5 in `rows` (a ratio needs both)."""
    return [label for label in ("ConvLSTM", "Transformer") if label in rows and "ConvS5" in rows]


def _times(value: float | None) -> str:
    return f"{value:.2f}x" if value else "n/a"


if __name__ == "__main__":
    main()
