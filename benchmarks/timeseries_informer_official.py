"""Check the zoo's Informer against the official implementation (zhouhaoyi/Informer2020).

Builds both models with the same weights (official state dict -> zoo names) and
compares forecasts in training mode under the same seed (both draw the ProbSparse key
samples from torch's global generator in the same order), dropout off.

    python -m benchmarks.timeseries_informer_official --official /path/to/Informer2020
"""

from __future__ import annotations

import argparse
import sys

import torch

RENAMES = [
    ("value_embedding.tokenConv", "value"),
    ("temporal_embedding.embed", "temporal"),
    ("encoder.attn_layers", "encoder_layers"),
    ("encoder.conv_layers", "distilling"),
    ("downConv", "conv"),
    ("encoder.norm", "encoder_norm"),
    ("decoder.layers", "decoder_layers"),
    ("decoder.norm", "decoder_norm"),
    ("query_projection", "query"),
    ("key_projection", "key"),
    ("value_projection", "value"),
    ("out_projection", "out"),
    ("conv1", "ffn.fc1"),
    ("conv2", "ffn.fc2"),
    ("projection", "head"),
] + [
    (f"temporal_embedding.{field}_embed", f"temporal.tables.{i}")
    for i, field in enumerate(["month", "day", "weekday", "hour", "minute"])
]


def convert_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official Informer parameter names and shapes -> `zoo.models.informer.Informer`'s."""
    out = {}
    for name, value in state.items():
        # positions and the fixed sinusoid tables are recomputed, not stored
        if name.endswith(("position_embedding.pe", "_embed.emb.weight")):
            continue
        for old, new in RENAMES:
            name = name.replace(old, new)
        out[name] = value.squeeze(-1) if ".ffn.fc" in name and name.endswith("weight") else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="folder of a zhouhaoyi/Informer2020 checkout")
    args = parser.parse_args()
    sys.path.insert(0, args.official)
    from models.model import Informer as Official

    from zoo.models.informer import Informer

    print("| attention | embed | seq_len | label_len | horizon | max abs difference |\n|---|---|---|---|---|---|")
    for attn, embed, length, label, horizon in [
        ("prob", "timeF", 96, 48, 24),
        ("full", "timeF", 96, 48, 24),
        ("prob", "fixed", 168, 168, 168),
        ("prob", "learned", 720, 336, 720),
    ]:
        kw = dict(
            factor=5,
            d_model=64,
            n_heads=4,
            e_layers=3,
            d_layers=2,
            d_ff=128,
            dropout=0.0,
            attn=attn,
            embed=embed,
            freq="h",
            distil=True,
            mix=True,
        )
        torch.manual_seed(0)
        official = Official(7, 7, 7, length, label, horizon, **kw)
        ours = Informer(in_features=7, num_classes=7, label_len=label, pred_len=horizon, **kw)
        ours.load_state_dict(convert_official_state_dict(official.state_dict()))
        x, dec = torch.randn(4, length, 7), torch.cat([torch.randn(4, label, 7), torch.zeros(4, horizon, 7)], 1)
        if embed == "timeF":
            marks = lambda n: torch.rand(4, n, 4) - 0.5
        else:
            marks = lambda n: torch.stack(
                [
                    torch.randint(1, 13, (4, n)),
                    torch.randint(1, 32, (4, n)),
                    torch.randint(0, 7, (4, n)),
                    torch.randint(0, 24, (4, n)),
                ],
                -1,
            ).float()
        x_mark, dec_mark = marks(length), marks(label + horizon)
        torch.manual_seed(1)
        expected = official(x, x_mark, dec, dec_mark)
        torch.manual_seed(1)
        got = ours.forecast(x, x_mark, dec, dec_mark)
        print(f"| {attn} | {embed} | {length} | {label} | {horizon} | {(got - expected).abs().max().item():.2e} |")


if __name__ == "__main__":
    main()
