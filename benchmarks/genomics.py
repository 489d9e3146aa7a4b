"""Genomics benchmark: HyenaDNA vs a Transformer of equal width and depth, and a 1 Mb embedding pass.

    python -m benchmarks.genomics [--quick] [--threads N] [--device cuda] [--write docs/genomics.md]

(a) Training throughput and peak memory of next-nucleotide pre-training: one step
is forward, cross-entropy over every position, backward and AdamW. HyenaDNA has
the released tiny size (d_model 128, 2 layers, MLP 512, `max_seq_len` raised to
the length); the Transformer (`transformer_tiny`: causal, RoPE, SDPA) has the
same width, depth, heads of 32 and MLP ratio 4. Lengths 1k, 8k, 32k on CPU (to
1M on CUDA), about 8k tokens a step (batch 8 at 1k, 1 beyond). A case past its
time cap (`--cap`, default 300 s for the first step) or memory cap is reported as
skipped, not waited for: attention's cost grows with L², Hyena's with L log L.
HyenaDNA reports up to 160x faster training than a Transformer at 1M tokens.
(b) Inference: features of a 1,000,000-base region in one forward pass (no
gradients), batch 1, for the tiny architecture and the released large-1m size
(d_model 256, 8 layers), randomly initialised (the time does not depend on the
weights).

Each case runs in its own process (`benchmarks._harness`), so its peak memory
(resident size above the idle process on CPU; `max_memory_allocated` on CUDA) is
its own. Times are medians after a warm-up step: `ms` wall clock, `cpu_ms` the
process CPU time, which on a busy shared machine (one thread per case) estimates
an idle core. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from benchmarks import _harness as harness
from zoo import create_model

CPU_LENGTHS = [1024, 8192, 32768]
CUDA_LENGTHS = [1024, 8192, 32768, 131072, 262144, 1048576]
TOKENS_PER_STEP = 8192
WIDTH, DEPTH = 128, 2
REGION = 1_000_000
harness.preload(__name__, "zoo.models")


def build(family: str, length: int, size: str = "tiny") -> torch.nn.Module:
    if family == "hyenadna":
        name = "hyenadna_tiny_1k" if size == "tiny" else "hyenadna_large_1m"
        return create_model(name, vocab_size=12, max_seq_len=max(length + 2, 1026))
    return create_model("transformer_tiny", vocab_size=12, dim=WIDTH, depth=DEPTH, num_heads=WIDTH // 32, mlp_ratio=4.0)


def lm_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    features = model.forward_features(ids)
    head = getattr(model, "lm_logits", None)
    return head(features) if callable(head) else model.forward_head(features)


def train_case(family: str, length: int, device: str, threads: int | None, cap_s: float) -> dict:
    harness.pin_threads(threads)
    torch.manual_seed(0)
    batch = max(1, TOKENS_PER_STEP // length)
    model = build(family, length).to(device)
    if family == "transformer":
        model.reset_classifier(12)  # no tied LM head: a linear one over the vocabulary
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(7, 11, (batch, length), device=device)

    def step() -> None:
        logits = lm_logits(model, ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    row = harness.measure(step, repeats=3, device=device, budget_s=3 * cap_s, cap_s=cap_s)
    tokens = batch * (length - 1)
    return {
        **row,
        "batch": batch,
        "tokens_per_s": tokens / (row["ms"] / 1e3),
        "tokens_per_cpu_s": tokens / (row["cpu_ms"] / 1e3),
    }


@torch.no_grad()
def embed_case(size: str, device: str, threads: int | None, cap_s: float) -> dict:
    harness.pin_threads(threads)
    torch.manual_seed(0)
    model = build("hyenadna", REGION, size).to(device).eval()
    ids = torch.randint(7, 11, (1, REGION), device=device)
    params = sum(p.numel() for p in model.parameters())
    row = harness.measure(lambda: model.forward_features(ids), repeats=1, device=device, cap_s=cap_s)
    return {**row, "params": params}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 8k only, no 1 Mb pass")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--cap", type=float, default=300.0, help="seconds a first step may take before a case is skipped"
    )
    parser.add_argument("--mem-cap", type=float, default=12.0, help="GB of resident memory before a case is killed")
    parser.add_argument("--write", help="put the tables between the results markers of this Markdown file")
    args = parser.parse_args(argv)
    lengths = CUDA_LENGTHS if args.device.startswith("cuda") else CPU_LENGTHS
    lengths = lengths[:2] if args.quick else lengths
    caps = dict(timeout_s=4 * args.cap + 60, mem_cap_gb=args.mem_cap)

    training = []
    transformer = harness.SkipLarger()
    for length in lengths:
        hyena = harness.run_isolated(train_case, "hyenadna", length, args.device, args.threads, args.cap, **caps)
        attention = transformer.run(train_case, "transformer", length, args.device, args.threads, args.cap, **caps)
        for family, row in (("HyenaDNA", hyena), ("Transformer", attention)):
            training.append(
                {
                    "model": family,
                    "length": length,
                    "batch": row.get("batch"),
                    "step ms": harness.value_or_reason(row, "ms"),
                    "cpu ms": row.get("cpu_ms"),
                    "tokens/s": row.get("tokens_per_s"),
                    "tokens/cpu-s": row.get("tokens_per_cpu_s"),
                    "peak MB": row.get("peak_mb"),
                }
            )
        speedup = harness.ratio(attention, hyena, "cpu_ms" if args.device == "cpu" else "ms")
        training.append(
            {"model": "HyenaDNA speed-up", "length": length, "step ms": f"{speedup:.1f}x" if speedup else "n/a"}
        )
        print(harness.markdown_table(training[-3:]), flush=True)

    sections = [("Training step: next-nucleotide LM, width 128, depth 2", training)]
    if not args.quick:
        inference = []
        for size in ("tiny", "large"):
            row = harness.run_isolated(
                embed_case,
                size,
                args.device,
                args.threads,
                4 * args.cap,
                timeout_s=10 * args.cap,
                mem_cap_gb=args.mem_cap,
            )
            inference.append(
                {
                    "model": f"hyenadna {size} ({'d128 x 2' if size == 'tiny' else 'd256 x 8, large-1m'})",
                    "bases": REGION,
                    "seconds": harness.value_or_reason(row, "ms") if "skipped" in row else row["ms"] / 1e3,
                    "cpu s": row.get("cpu_ms", 0) / 1e3 or None,
                    "peak MB": row.get("peak_mb"),
                    "params": row.get("params"),
                }
            )
            print(harness.markdown_table(inference[-1:]), flush=True)
        sections.append(("Embedding a 1 Mb region in one pass (no gradients, batch 1)", inference))
    command = " ".join(["python -m benchmarks.genomics", *(sys.argv[1:] if argv is None else argv)])
    machine = harness.machine_description(args.threads)
    report = f"Command: `{command}`\n\nMachine: {machine}\n\n{harness.format_sections(sections)}"
    print("\n" + report)
    if args.write:
        harness.write_between_markers(args.write, report)


if __name__ == "__main__":
    main()
