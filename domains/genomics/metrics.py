"""Evaluation metrics (torchmetrics): accuracy, macro F1, MCC and macro AUROC; MSE, MAE, R², Pearson r.

One `MetricCollection` per evaluation stage (val, test, test_rc, ...), made on
first use; positions labelled -100 (padding, unlabelled records) are ignored.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, PearsonCorrCoef, R2Score

IGNORE = -100


def classification_metrics(num_classes: int, binned: bool = False) -> MetricCollection:
    """binned: AUROC over 200 thresholds (constant memory, for per-base tasks) instead of exact."""
    common = {"num_classes": num_classes, "ignore_index": IGNORE}
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(average="micro", **common),
            "f1": MulticlassF1Score(average="macro", **common),
            "mcc": MulticlassMatthewsCorrCoef(**common),
            "auroc": MulticlassAUROC(average="macro", thresholds=200 if binned else None, **common),
        }
    )


def regression_metrics(num_targets: int) -> MetricCollection:
    return MetricCollection(
        {
            "mse": MeanSquaredError(num_outputs=num_targets),
            "mae": MeanAbsoluteError(num_outputs=num_targets),
            "r2": R2Score(multioutput="uniform_average"),
            "pearson": PearsonCorrCoef(num_outputs=num_targets),
        }
    )


class StageMetrics(nn.Module):
    """Metric collections keyed by stage, created on first `update`, logged and reset by `compute`."""

    def __init__(self, factory):
        super().__init__()
        self.factory = factory
        self.stages = nn.ModuleDict()

    def update(self, stage: str, preds: torch.Tensor, target: torch.Tensor) -> None:
        if stage not in self.stages:
            self.stages[stage] = self.factory().to(preds.device)
        self.stages[stage].update(preds, target)

    def compute(self, stage: str) -> dict[str, float]:
        if stage not in self.stages:
            return {}
        metric = self.stages[stage]
        values = {f"{stage}/{name}": float(value.float().mean()) for name, value in metric.compute().items()}
        metric.reset()
        return values

    def active(self) -> list[str]:
        return list(self.stages)
