"""Recformer training throughput and peak memory: Longformer attention vs full attention of equal size.

    python -m benchmarks.recsys_throughput [--lengths 50 200 1000] [--batch 8] [--threads 1]
                                           [--device cpu] [--write docs/recsys.md]
    zoo bench recsys_throughput

One fine-tuning training step of `RecformerTask` (encode B histories, full softmax over a frozen table of
the catalogue's items, backward, AdamW) on MovieLens-100k histories cut to 50, 200 and 1000 tokens of item
text (the longest users, their most recent items, ~17 tokens an item), for `attention="longformer"`
(window 64 as in the paper, `<s>` global) and `attention="full"` (every token sees every token, no global
projections) at the same width and depth. Each case runs in its own process (`benchmarks._harness`), so
its peak memory (resident size on CPU, allocated on CUDA, above the case's start) is its own.

Reports histories/s and items/s (history items per second), the step's wall and CPU time (median after a
warm-up) and peak MB, and full/longformer ratios at each length. Never asserts.
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch

from benchmarks import _harness as harness

DEFAULT_WIDTH = {"dim": 128, "depth": 2, "num_heads": 4, "mlp_dim": 512, "attention_window": 64}
harness.preload(__name__, "zoo.models", "domains.recsys.sentences")


def train_step_case(attention: str, length: int, batch: int, repeats: int, threads: int | None, device: str) -> dict:
    """One case, in its own process: build the histories and the model, then time training steps."""
    import random

    from domains.recsys.movielens import load_movielens_100k
    from domains.recsys.sentences import RecformerBatcher, SentenceConfig
    from domains.recsys.tokenizer import ItemTokenizer
    from zoo import create_model

    harness.pin_threads(threads)
    data = load_movielens_100k()
    tokenizer = ItemTokenizer.train(data.catalogue.texts(), vocab_size=2048)
    config = SentenceConfig(max_items=max(120, length // 8), max_tokens=length)  # enough items to fill `length` tokens
    batcher = RecformerBatcher.from_catalogue(tokenizer, data.catalogue.attributes, config)
    longest = sorted(range(len(data.users)), key=lambda u: -len(data.histories[u]))[:batch]
    sequences = [data.histories[u] for u in longest]
    torch.manual_seed(0)
    model = create_model(
        "recformer_small",
        **DEFAULT_WIDTH,
        attention=attention,
        dropout=0.0,
        attention_dropout=0.0,
        mlm_head=False,
        **config.model_kwargs(tokenizer),
    ).to(device)
    model.set_item_table(torch.randn(len(data.catalogue), model.num_features, device=device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs, targets = batcher.finetune(sequences, random.Random(0))
    real_tokens = int(inputs["attention_mask"].sum())
    items_in_batch = sum(int(row.max()) for row in inputs["item_position_ids"] * inputs["attention_mask"])
    inputs, targets = {k: v.to(device) for k, v in inputs.items()}, targets.to(device)

    def step() -> None:
        loss = model.finetune_loss(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    result = harness.measure(step, repeats, device, cap_s=120.0)
    seconds = result["ms"] / 1e3
    return {
        **result,
        "tokens": int(inputs["input_ids"].shape[1]),
        "real_tokens": real_tokens,
        "histories_s": batch / seconds,
        "items_s": items_in_batch / seconds,
        "params": sum(p.numel() for p in model.parameters()),
    }


def rows(lengths: list[int], batch: int, repeats: int, threads: int | None, device: str) -> list[harness.Row]:
    out = []
    growing = {attention: harness.SkipLarger() for attention in ("longformer", "full")}
    for length in lengths:
        measured = {}
        for attention in ("longformer", "full"):
            case = growing[attention].run(
                train_step_case, attention, length, batch, repeats, threads, device, timeout_s=600.0, mem_cap_gb=10.0
            )
            measured[attention] = case
            out.append(
                {
                    "attention": attention,
                    "history tokens": case.get("tokens", length),
                    "histories/s": harness.value_or_reason(case, "histories_s"),
                    "items/s": case.get("items_s"),
                    "ms/step": case.get("ms"),
                    "cpu ms": case.get("cpu_ms"),
                    "peak MB": case.get("peak_mb"),
                    "params": case.get("params"),
                }
            )
        out.append(
            {
                "attention": "full / longformer",
                "history tokens": length,
                "ms/step": harness.ratio(measured["full"], measured["longformer"], "ms"),
                "peak MB": harness.ratio(measured["full"], measured["longformer"], "peak_mb"),
            }
        )
    return out


def results_markdown(lengths: list[int], batch: int, repeats: int, threads: int | None, device: str) -> str:
    start, header = time.monotonic(), harness.machine_description(threads)
    table = harness.markdown_table(rows(lengths, batch, repeats, threads, device))
    lengths_arg = " ".join(str(n) for n in lengths)
    return (
        f"Measured {datetime.date.today().isoformat()} with `python -m benchmarks.recsys_throughput --lengths "
        f"{lengths_arg} --batch {batch}` on: {header}; device {device}. Run took "
        f"{(time.monotonic() - start) / 60:.1f} min. One fine-tuning step (batch {batch}, width "
        f"{DEFAULT_WIDTH['dim']}, {DEFAULT_WIDTH['depth']} layers, {DEFAULT_WIDTH['num_heads']} heads, window "
        f"{DEFAULT_WIDTH['attention_window']}, softmax over 1,682 items); ms = wall time, cpu ms = process CPU "
        "time (median after warm-up), peak MB above the case's start.\n\n" + table
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--write", default="-", help="Markdown file whose results markers get the table ('-': print)")
    args = parser.parse_args(argv)
    harness.print_or_write(
        results_markdown(args.lengths, args.batch, args.repeats, args.threads or None, args.device), args.write
    )


if __name__ == "__main__":
    main()
