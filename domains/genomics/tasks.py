"""Genomics tasks: sequence classification/regression, per-base labelling, soft-prompt tuning.

`SequenceTask` pools the backbone's features (`pool`: max, mean, last or cls) into
class logits (cross-entropy; accuracy, macro F1, MCC, macro AUROC) or regression
outputs (standardised MSE; MSE, MAE, R², Pearson r). `TokenTask` labels every
base. `SoftPromptTask` trains only prompt embeddings in front of a frozen
backbone and reads the class as the next token (HyenaDNA, NeurIPS 2023, §4.3).
Every task keeps the tokenizer in its hyper-parameters, hands it to the
datamodule when a checkpoint is restored, and exports it as `tokenizer.json`.
Next-nucleotide pre-training is in `pretraining.py`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from domains.genomics.datasets import SequenceDataset, collate_sequences
from domains.genomics.metrics import IGNORE, StageMetrics, classification_metrics, regression_metrics
from domains.genomics.plots import plot_positions
from domains.genomics.prompts import SoftPrompt
from domains.genomics.records import Example, apply_length_policy
from domains.genomics.tokenizer import CharTokenizer, DNATokenizer, tokenizer_from_config
from zoo.errors import ZooError
from zoo.layers.heads import last_valid_index
from zoo.training import BaseTask

log = logging.getLogger(__name__)


class GenomicsTask(BaseTask):
    """`weights` that record their architecture decide the backbone (`BaseTask`); the task sets its head."""

    weights_decide_architecture = True

    def __init__(self, tokenizer: dict | None = None, classes: Sequence[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        # A pretrained model brings its own tokenizer: its token ids are what the weights learned.
        tokenizer = self.saved_contract().get("tokenizer") or tokenizer
        self.hparams["tokenizer"] = tokenizer  # what a checkpoint of this task restores
        self.tokenizer: CharTokenizer = tokenizer_from_config(tokenizer) if tokenizer else DNATokenizer()
        self.classes = list(classes)
        vocab = getattr(getattr(self.backbone, "stem", None), "vocab_size", None)
        if vocab and len(self.tokenizer) > vocab:
            raise ZooError(
                f"the data's {self.tokenizer.kind} tokenizer has {len(self.tokenizer)} tokens but {self.hparams.model} "
                f"embeds only {vocab}; use weights trained on this alphabet (data.alphabet)"
            )

    extra_tokens = 0  # tokens the task adds to each sample (soft prompts)

    def data_contract(self) -> dict[str, Any]:
        """The tokenizer, and the most tokens a sample may have (the model's limit less the task's own)."""
        contract: dict[str, Any] = {"tokenizer": self.tokenizer.config(), "model": self.hparams.model}
        limit = getattr(self.backbone, "max_seq_len", None)
        if limit:
            contract["max_tokens"] = int(limit) - self.extra_tokens
        return contract

    def export_extras(self, folder: str) -> dict[str, str | bytes]:
        extras = {"tokenizer.json": self.tokenizer.to_json()}
        if self.classes:
            extras["classes.json"] = json.dumps(self.classes) + "\n"
        return extras

    def log_stage(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.log(name, value, prog_bar=name.endswith(("/acc", "/mse")), add_dataloader_idx=False)

    def stage_name(self, stage: str, dataloader_idx: int) -> str:
        names = getattr(getattr(self.trainer, "datamodule", None), "test_names", None) or ["test"]
        return names[dataloader_idx] if stage == "test" else stage

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.shared_step(batch, self.stage_name("test", dataloader_idx))


class ScoredTask(GenomicsTask):
    """A task with `self.metrics` (a `StageMetrics`): logs val and every test set at epoch end, and the
    datamodule's training-free reference scores (the PWM scanner of the embedded task) beside them."""

    metrics: StageMetrics

    def on_validation_epoch_end(self) -> None:
        self.log_stage(self.metrics.compute("val"))

    def on_test_epoch_end(self) -> None:
        for stage in [s for s in self.metrics.active() if s != "val"]:
            self.log_stage(self.metrics.compute(stage))
        reference = getattr(getattr(self.trainer, "datamodule", None), "reference_metrics", None)
        if reference is not None:
            self.log_stage(reference())


class SequenceTask(ScoredTask):
    """One label per sequence. task_type: classification | regression; pool: max | mean | last | cls.

    Fine-tuning from weights whose recorded task predicted something else (another `task_type`, or other
    class / target names) re-initialises the classifier head with a logged warning rather than reusing it
    (`head_defined_by`, read by `zoo.training.loading.build_task`): a regression head is never silently
    reused as 0/1 logits, nor the head of classes A/B for classes C/D. Same kind and names: the head is kept.
    """

    head_defined_by = ("task_type", "classes")

    def __init__(
        self,
        classes: Sequence[str] = ("negative", "positive"),
        task_type: str = "classification",
        pool: str = "max",
        target_mean: Sequence[float] | None = None,
        target_std: Sequence[float] | None = None,
        rc_conjoin: bool = False,
        **kwargs: Any,
    ):
        if task_type not in ("classification", "regression"):
            raise ZooError(f"task_type={task_type!r}; choose classification or regression")
        kwargs["model_kwargs"] = {**dict(kwargs.get("model_kwargs") or {}), **self.head_kwargs(len(classes), pool)}
        super().__init__(classes=classes, **kwargs)
        if rc_conjoin and self.tokenizer.kind != "dna":
            raise ZooError("task.rc_conjoin averages over both DNA strands; set it false for protein sequences")
        if pool == "cls" and not self.tokenizer.has_cls():
            raise ZooError(
                "task.pool=cls needs a [CLS] token first: add data.prepend_cls=true "
                "(protein: data.add_special_tokens=true)"
            )
        n = len(self.classes)
        self.regression = task_type == "regression"
        self.register_buffer(
            "mean", torch.tensor(list(target_mean or [0.0] * n), dtype=torch.float32), persistent=False
        )
        self.register_buffer("std", torch.tensor(list(target_std or [1.0] * n), dtype=torch.float32), persistent=False)
        self.metrics = StageMetrics(lambda: regression_metrics(n) if self.regression else classification_metrics(n))

    def head_kwargs(self, num_outputs: int, pool: str) -> dict[str, Any]:
        return {"num_classes": num_outputs, "global_pool": pool}

    def outputs(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C) or standardised regression outputs (B, T).

        rc_conjoin (post-hoc conjoining, Caduceus-PH / DNA-xLSTM's `conjoin_test`): outside training,
        the outputs for the sequence and for its reverse complement are averaged, so any backbone's
        predictions become strand-invariant; training is unchanged."""
        out = self.backbone(ids, mask).float()
        if self.hparams.get("rc_conjoin") and not self.training:
            out = (out + self.backbone(self.tokenizer.reverse_complement_ids(ids, mask), mask).float()) / 2
        return out

    def shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        out, y = self.outputs(batch["ids"], batch["mask"]), batch["y"]
        if self.regression:
            seen = ~torch.isnan(y)
            loss = F.mse_loss(out[seen], ((y - self.mean) / self.std)[seen])
            rows = seen.all(1)
            if stage != "train" and rows.any():
                values, target = out[rows] * self.std + self.mean, y[rows]
                self.metrics.update(
                    stage, *((values[:, 0], target[:, 0]) if values.shape[1] == 1 else (values, target))
                )
        else:
            loss = F.cross_entropy(out, y, ignore_index=IGNORE)
            if stage != "train":
                self.metrics.update(stage, out.softmax(-1), y)
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=stage != "train",
            add_dataloader_idx=False,
        )
        if stage == "train" and not self.regression:
            self.log("train/acc", (out.argmax(-1) == y).float().mean(), batch_size=len(y))
        return loss

    @torch.no_grad()
    def predict(
        self,
        sequences: Sequence[str],
        ids: Sequence[str] | None = None,
        labels: Sequence[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows as `zoo genomics predict` writes them for these sequences (`zoo.load_pipeline`).

        The same as a predict file (`data.predict_path`) holding them as a table with a sequence column:
        ids default to that table's `row1`, `row2`, ... (without an id column); the recorded data settings
        apply as the CLI applies them (`max_length` with `on_too_long=truncate|slide` and `stride`; a slid
        record gives one row per window, `id:start-end`), and so does the batch size, since padding depends
        on the batch. labels: optional, as the file's label column (class names, or a tuple of numbers per
        sequence for regression); `label` / the target columns stay empty without them.
        """
        sequences = [str(s).strip() for s in sequences]
        ids = [str(i) for i in ids] if ids is not None else [f"row{i + 1}" for i in range(len(sequences))]
        labels = list(labels) if labels is not None else [None] * len(sequences)
        if not (len(ids) == len(labels) == len(sequences)):
            raise ZooError(f"{len(sequences)} sequences but {len(ids)} ids and {len(labels)} labels; give one each")
        empty = next((i for i, s in zip(ids, sequences) if not s), None)
        if empty is not None:
            raise ZooError(f"sequence {empty!r} is empty; give its bases or leave it out")
        if len(set(ids)) < len(ids):
            raise ZooError("ids must be unique (predictions are keyed by them)")
        index = None if self.regression else {c: i for i, c in enumerate(self.classes)}
        examples = []
        for record_id, seq, label in zip(ids, sequences, labels):
            if label is not None and index is not None:
                label = str(label)
                if label not in index:
                    raise ZooError(f"record {record_id!r}: label {label!r} is not a class of this model {self.classes}")
            elif label is not None:
                label = tuple(float(v) for v in (label if isinstance(label, (list, tuple)) else [label]))
            examples.append(Example(record_id, seq, label))
        settings = dict(self.data_settings or {})
        examples = apply_length_policy(
            examples,
            settings.get("max_length"),
            settings.get("on_too_long", "error"),
            settings.get("stride"),
            source="sequences",
        )
        dataset = SequenceDataset(examples, self.tokenizer, index, len(self.classes), "sequences")
        limit = self.data_contract().get("max_tokens")
        longest = max((len(self.tokenizer.encode(e.seq, where=f"record {e.id!r}")) for e in examples), default=0)
        if limit and longest > limit:
            raise ZooError(
                f"a sequence has {longest:,} tokens but {self.hparams.model} takes at most {limit:,}; shorten it "
                "(the model was trained with data.max_length and data.on_too_long recorded with it)"
            )
        loader = DataLoader(
            dataset, batch_size=int(settings.get("batch_size") or 64), collate_fn=collate_sequences(self.tokenizer)
        )
        rows = []
        for batch in loader:
            batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            rows += self.predict_step(batch, 0)
        return rows

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        out = self.outputs(batch["ids"], batch["mask"])
        rows = []
        if self.regression:
            values = (out * self.std + self.mean).cpu()
            for i, record_id in enumerate(batch["id"]):
                row = {"id": record_id}
                for j, name in enumerate(self.classes):
                    target = float(batch["y"][i, j])
                    row[f"pred_{name}"] = round(float(values[i, j]), 6)
                    row[name] = "" if target != target else target
                rows.append(row)
            return rows
        probs = out.softmax(-1).cpu()
        for i, record_id in enumerate(batch["id"]):
            label = int(batch["y"][i])
            row = {
                "id": record_id,
                "label": self.classes[label] if label != IGNORE else "",
                "pred": self.classes[int(probs[i].argmax())],
            }
            row.update({f"p_{name}": round(float(p), 6) for name, p in zip(self.classes, probs[i])})
            rows.append(row)
        return rows


class TokenTask(ScoredTask):
    """A class for every base (e.g. inside/outside BED regions); a per-position PNG after `predict`."""

    def __init__(self, classes: Sequence[str] = ("outside", "inside"), **kwargs: Any):
        kwargs["model_kwargs"] = {
            **dict(kwargs.get("model_kwargs") or {}),
            "num_classes": len(classes),
            "global_pool": "",
        }
        super().__init__(classes=classes, **kwargs)
        n = len(self.classes)
        self.metrics = StageMetrics(lambda: classification_metrics(n, binned=True))

    def shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        logits, y = self.backbone(batch["ids"], batch["mask"]).float(), batch["y"]
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=stage != "train",
            add_dataloader_idx=False,
        )
        if stage != "train":
            keep = y.flatten() != IGNORE
            self.metrics.update(stage, logits.flatten(0, 1)[keep].softmax(-1), y.flatten()[keep])
        return loss

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """One row per base: window id, chromosome position, true label (when known), class probabilities."""
        probs = self.backbone(batch["ids"], batch["mask"]).float().softmax(-1).cpu()
        rows = []
        for i, window in enumerate(batch["id"]):
            chrom, span = window.rsplit(":", 1)
            start = int(span.split("-")[0])
            positions = torch.nonzero(batch["mask"][i]).flatten().tolist()
            for k, t in enumerate(positions):
                label = int(batch["y"][i, t]) if "y" in batch else IGNORE
                row = {
                    "id": window,
                    "chrom": chrom,
                    "position": start + k,
                    "label": self.classes[label] if label != IGNORE else "",
                }
                row.update({f"p_{name}": round(float(p), 5) for name, p in zip(self.classes, probs[i, t])})
                rows.append(row)
        return rows

    def on_predictions_written(self, path: str, datamodule: Any) -> None:
        png = plot_positions(path, self.classes)
        if png:
            log.info("per-position plot: %s", png)


class SoftPromptTask(SequenceTask):
    """Only `num_prompt_tokens` prompt embeddings train; the backbone (and its LM head) stay frozen.

    readout: `lm` reads each class as the next-token logit of a label token after the
    sequence (`label_tokens`, default A, C, G, T, N for up to five classes), needing a
    backbone with `lm_logits`; `head` trains a linear classifier on the pooled features too.
    """

    def __init__(
        self, num_prompt_tokens: int = 16, readout: str = "lm", label_tokens: Sequence[str] | None = None, **kwargs: Any
    ):
        if readout not in ("lm", "head"):
            raise ZooError(f"readout={readout!r}; choose lm (label tokens, only the prompt trains) or head")
        self.readout = readout
        kwargs["freeze_backbone"] = True
        super().__init__(**kwargs)
        stem = getattr(self.backbone, "stem", None)
        if stem is None:
            raise ZooError(f"{type(self.backbone).__name__} has no input stem to prompt")
        if readout == "lm" and not callable(getattr(self.backbone, "lm_logits", None)):
            raise ZooError(
                f"{type(self.backbone).__name__} has no LM head; use task.readout=head for soft prompts with it"
            )
        tokens = list(label_tokens or ["A", "C", "G", "T", "N"][: len(self.classes)])
        if len(tokens) != len(self.classes) or any(t not in self.tokenizer.ids for t in tokens):
            raise ZooError(
                f"task.label_tokens={tokens}: give one vocabulary token per class ({len(self.classes)} classes)"
            )
        self.register_buffer("label_ids", torch.tensor([self.tokenizer.ids[t] for t in tokens]), persistent=False)
        placeholder = self.tokenizer.ids.get("[RESERVED]", self.tokenizer.ids.get("<null_1>"))
        self.prompt = SoftPrompt(num_prompt_tokens, placeholder, stem)
        self.extra_tokens = num_prompt_tokens

    def head_kwargs(self, num_outputs: int, pool: str) -> dict[str, Any]:
        return (
            {"num_classes": 0, "global_pool": ""}
            if self.readout == "lm"
            else {"num_classes": num_outputs, "global_pool": pool}
        )

    def outputs(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, mask = self.prompt.insert(ids, mask)
        if self.readout == "head":
            return self.backbone(ids, mask).float()
        features = self.backbone.forward_features(ids, mask)
        last = features[torch.arange(len(ids), device=ids.device), last_valid_index(mask)]
        return self.backbone.lm_logits(last).float()[:, self.label_ids]
