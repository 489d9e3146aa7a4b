"""Per-position plot of a token-level prediction CSV: class probabilities along the sequence, true labels shaded."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from zoo.io import atomic_path


def plot_positions(csv_path: str, classes: Sequence[str], windows: int = 3, max_bases: int = 2000) -> str | None:
    """`<csv stem>.png`: the first `windows` windows, one panel each; returns the PNG path (None if no rows)."""
    panels: dict[str, list[dict[str, str]]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["id"] not in panels:
                if len(panels) == windows:
                    break
                panels[row["id"]] = []
            if len(panels[row["id"]]) < max_bases:
                panels[row["id"]].append(row)
    if not panels:
        return None
    foreground = [c for c in classes[1:]] or list(classes)
    figure, axes = plt.subplots(len(panels), 1, figsize=(12, 2.6 * len(panels)), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (window, rows) in zip(axes[:, 0], panels.items()):
        position = [int(r["position"]) for r in rows]
        for k, name in enumerate(foreground):
            colour = colours(k % 10)
            ax.plot(position, [float(r[f"p_{name}"]) for r in rows], lw=1, color=colour, label=f"p({name})")
            inside = [r["label"] == name for r in rows]
            ax.fill_between(position, 0, 1, where=inside, color=colour, alpha=0.15, step="mid", linewidth=0)
        ax.set_ylim(0, 1)
        ax.set_xlim(position[0], position[-1])
        ax.set_ylabel("probability")
        ax.set_title(f"{window} (shaded: true labels)", fontsize=9)
    axes[-1, 0].set_xlabel("position")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=min(len(foreground), 6))
    figure.tight_layout()
    png = str(Path(csv_path).with_suffix(".png"))
    with atomic_path(png) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return png
