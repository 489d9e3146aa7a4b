"""Chemistry tasks: a SMILES language model (train, sample) and property prediction (fine-tune).

`SmilesLMTask` trains next-token prediction (Chem-xLSTM's pre-training; Bio-xLSTM,
Schmidinger et al., 2024, arXiv:2411.04165) with the backbone's head as the LM
head (`num_classes = vocab_size`). Its test epoch ends by sampling molecules and
logging MOSES metrics; `predict` streams sampled molecules to CSV, then writes
their metrics and a structure grid beside it.

`PropertyTask` pools the backbone's features (`pool`: mean by default) into one
output per target: standardised regression (MSE) or 0/1 classification (BCE),
missing labels ignored; metrics RMSE/MAE/R² or ROC-AUC/accuracy, in original units.

Both keep the vocabulary in their hyper-parameters, so a `.ckpt` is complete;
when a checkpoint is restored they hand their tokenizer to the datamodule.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rdkit import Chem

from domains.chem.data import pad_batch
from domains.chem.drawing import draw_grid
from domains.chem.metrics import generation_metrics, property_metrics
from domains.chem.sampling import next_token_logits, sample, sample_batch, sample_rows
from domains.chem.tokenizer import SmilesTokenizer
from zoo.errors import ZooError
from zoo.factory import language_model_kwargs
from zoo.io import write_text_atomic
from zoo.training import BaseTask

log = logging.getLogger(__name__)


class ChemTask(BaseTask):
    """`weights` that record their architecture decide the backbone (`BaseTask`), and their vocabulary the
    tokenizer: token ids mean what the pretrained model learned, whatever this data's vocabulary is."""

    weights_decide_architecture = True

    def __init__(self, vocab: Sequence[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        vocab = list((self.saved_contract().get("tokenizer") or {}).get("tokens") or vocab)
        self.hparams["vocab"] = vocab  # what a checkpoint of this task restores
        self.tokenizer = SmilesTokenizer(vocab) if vocab else None

    def data_contract(self) -> dict[str, Any]:
        return {"tokenizer": {"tokens": list(self.tokenizer.tokens)}} if self.tokenizer is not None else {}

    def export_extras(self, folder: str) -> dict[str, str | bytes]:
        return {"tokenizer.json": self.tokenizer.to_json()}


class SmilesLMTask(ChemTask):
    """Causal language model on SMILES.

    sampling: temperature, top_k, max_tokens used by `predict` and the test-time samples.
    eval_samples: molecules sampled at the end of `test` for validity/uniqueness/novelty (0: none).
    training_split: the datamodule's `training_split()` at training time, kept so that
        `predict`/`sample` can tell when novelty would be measured against other molecules.
    """

    def __init__(
        self, sampling: dict | None = None, eval_samples: int = 256, training_split: dict | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.sampling = {"temperature": 1.0, "top_k": 0, "max_tokens": 128, **dict(sampling or {})}

    def backbone_kwargs(self, model: str, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        return language_model_kwargs(model, model_kwargs)

    def shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        ids, mask = batch["ids"], batch["mask"]
        logits = next_token_logits(self.backbone, ids[:, :-1], mask[:, :-1])
        targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=ids.shape[0], sync_dist=stage != "train")
        return loss

    def on_test_epoch_end(self) -> None:
        count = int(self.hparams.eval_samples)
        datamodule = getattr(self.trainer, "datamodule", None)
        if not count or datamodule is None:
            return
        check_training_split(self.hparams.get("training_split"), datamodule)  # `eval` may be given other data
        samples = sample(self.backbone, self.tokenizer, count, batch_size=min(count, 128), seed=0, **self.sampling)
        metrics = generation_metrics(
            [s.text if s.finished else "" for s in samples],
            training=datamodule.train_smiles,
            reference=datamodule.test_smiles,
        )
        for name, value in metrics.items():
            if name != "samples" and not math.isnan(value):
                self.log(f"test/{name}", value)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        samples = sample_batch(
            self.backbone, self.tokenizer, len(batch["index"]), prompt=batch["prompt"], **self.sampling
        )
        return sample_rows(samples, start=int(batch["index"][0]))

    def on_predictions_written(self, path: str, datamodule: Any) -> None:
        check_training_split(self.hparams.get("training_split"), datamodule)
        write_sample_report(path, datamodule.train_smiles, datamodule.test_smiles, datamodule.prompt)


def check_training_split(saved: dict | None, datamodule: Any) -> None:
    """Warn when novelty is about to be measured against other molecules than the model was trained on."""
    if not saved:  # a model from before this was recorded, or from an exported folder
        return
    now = datamodule.training_split()
    if (saved["molecules"], saved["sha1"]) != (now["molecules"], now["sha1"]):  # the same file by another path is fine
        log.warning(
            "novelty is measured against %d training molecules of %s, but the model was trained on %d of %s "
            "(another split); give the data.* settings of its training run (path, limit, max_tokens, split, seed)",
            now["molecules"],
            now["source"],
            saved["molecules"],
            saved["source"],
        )


def write_sample_report(
    path: str, training: Sequence[str], reference: Sequence[str], prompt: Sequence[str], fcd: bool = False
) -> dict[str, float]:
    """Beside the samples CSV: `<stem>.metrics.json` and `<stem>.png` (a grid of the valid molecules)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = generation_metrics(
        [r["smiles"] if r["valid"] == "1" else "" for r in rows], training, reference, prompt, fcd=fcd
    )
    stem = Path(path).with_suffix("")
    write_text_atomic(
        f"{stem}.metrics.json",
        json.dumps({k: (None if math.isnan(v) else v) for k, v in metrics.items()}, indent=2) + "\n",
    )
    valid = [r for r in rows if r["valid"] == "1"]
    draw_grid([r["canonical_smiles"] for r in valid], f"{stem}.png", legends=[r["id"] for r in valid])
    log.info("generation metrics: %s", ", ".join(f"{k}={v:.3g}" for k, v in metrics.items()))
    return metrics


class PropertyTask(ChemTask):
    """Molecular property regression/classification with a pooled head."""

    def __init__(
        self,
        target_names: Sequence[str] = ("y",),
        task_type: str = "regression",
        target_mean: Sequence[float] | None = None,
        target_std: Sequence[float] | None = None,
        pool: str = "mean",
        **kwargs: Any,
    ):
        kwargs["model_kwargs"] = {
            **dict(kwargs.get("model_kwargs") or {}),
            "global_pool": pool,
            "num_classes": len(target_names),
        }
        super().__init__(**kwargs)
        n = len(target_names)
        self.register_buffer(
            "mean", torch.tensor(list(target_mean or [0.0] * n), dtype=torch.float32), persistent=False
        )
        self.register_buffer("std", torch.tensor(list(target_std or [1.0] * n), dtype=torch.float32), persistent=False)
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def predict_values(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predictions in label units (probabilities for classification)."""
        raw = self.backbone(ids, mask).float()
        return raw.sigmoid() if self.hparams.task_type == "classification" else raw * self.std + self.mean

    def shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        raw = self.backbone(batch["ids"], batch["mask"]).float()
        y = batch["y"]
        seen = ~torch.isnan(y)
        if self.hparams.task_type == "classification":
            loss = F.binary_cross_entropy_with_logits(raw[seen], y[seen])
            values = raw.sigmoid()
        else:
            loss = F.mse_loss(raw[seen], ((y - self.mean) / self.std)[seen])
            values = raw * self.std + self.mean
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=y.shape[0], sync_dist=stage != "train")
        if stage != "train":
            self._outputs.setdefault(stage, []).append((y.detach().cpu(), values.detach().cpu()))
        return loss

    def _log_epoch_metrics(self, stage: str) -> None:
        outputs = self._outputs.pop(stage, [])
        if not outputs:
            return
        y = torch.cat([o[0] for o in outputs]).numpy()
        p = torch.cat([o[1] for o in outputs]).numpy()
        for name, value in property_metrics(y, p, self.hparams.target_names, self.hparams.task_type).items():
            if not math.isnan(value):
                self.log(f"{stage}/{name}", value, prog_bar=name in ("rmse", "roc_auc"))

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    @torch.no_grad()
    def predict(self, smiles: Sequence[str], ids: Sequence[str] | None = None, canonical: bool = True) -> list[dict]:
        """Rows as `zoo chem predict` writes them, for SMILES given in Python (`zoo.load_pipeline`).

        canonical: RDKit-canonicalise first, as the readers do by default (`data.canonical`).
        """
        rows = []
        for i, text in enumerate(smiles):
            mol = Chem.MolFromSmiles(text)
            if mol is None or mol.GetNumAtoms() == 0:
                raise ZooError(f"molecule {i + 1}: unparsable SMILES {text!r}")
            rows.append(Chem.MolToSmiles(mol) if canonical else text)
        tokens, mask = pad_batch([self.tokenizer.encode(s) for s in rows], self.tokenizer.pad_id)
        batch = {
            "ids": tokens.to(self.device),
            "mask": mask.to(self.device),
            "y": torch.full((len(rows), len(self.hparams.target_names)), math.nan),
            "id": list(ids) if ids is not None else [str(i + 1) for i in range(len(rows))],
            "smiles": rows,
        }
        return self.predict_step(batch, 0)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        values = self.predict_values(batch["ids"], batch["mask"]).cpu().numpy()
        labels = batch["y"].cpu().numpy()
        names = self.hparams.target_names
        rows = []
        for i, (record_id, smiles) in enumerate(zip(batch["id"], batch["smiles"])):
            row = {"id": record_id, "smiles": smiles}
            for j, name in enumerate(names):
                row[f"pred_{name}"] = round(float(values[i, j]), 5)
                row[name] = "" if np.isnan(labels[i, j]) else float(labels[i, j])
            rows.append(row)
        return rows

    def on_predictions_written(self, path: str, datamodule: Any) -> None:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        names = self.hparams.target_names
        y = np.array([[float(r[n]) if r[n] != "" else np.nan for n in names] for r in rows])
        if np.isnan(y).all():
            return
        p = np.array([[float(r[f"pred_{n}"]) for n in names] for r in rows])
        metrics = property_metrics(y, p, names, self.hparams.task_type)
        write_text_atomic(Path(path).with_suffix(".metrics.json"), json.dumps(metrics, indent=2) + "\n")
        log.info("prediction metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
