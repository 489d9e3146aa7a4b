"""Recommendation tasks: Recformer, SASRec and two model-free baselines, one metric set, one `predict`.

Every task ranks the whole catalogue after each validation/test history and logs `{stage}/ndcg@10`,
`{stage}/recall@10`, `{stage}/mrr` (`domains.recsys.metrics`: ties count against the target, history
not masked). Each holds its data contract (`domains.recsys.data.RecContract`: catalogue, tokenizer,
sentence limits) in its hyper-parameters, so a `.ckpt` or an exported folder restores the whole task
(`zoo.load_pipeline`), and `predict(history, topk, new_items)` gives the rows `zoo recsys predict` writes.

- `RecformerTask` (Li et al., "Text Is All You Need", KDD 2023): `pretrain_epochs` of MLM + item-item
  contrastive pre-training (in-batch negatives, temperature 0.05, 0.1 x MLM, whole-word masking), then the
  paper's two-stage fine-tuning: stage 1 re-encodes the frozen item table at the start of every epoch and
  trains the encoder with a full softmax over it; when patience (or `stage1_epochs`) runs out, stage 2
  restarts from the best stage-1 weights with that table fixed, until its own patience runs out. Here the
  pre-training runs on the target data's own training sequences (the paper pre-trains on seven other
  Amazon categories, which are not available offline); `finetune weights=...` fine-tunes a pre-trained one.
- `SASRecTask` (Kang and McAuley, ICDM 2018): the ID-based baseline, next-item softmax at every position.
- `BaselineTask`: `popularity` (training counts) and `text_tfidf` (mean TF-IDF of the history's item
  sentences, cosine; no interactions used). Not neural backbones, so not registered models: a task
  option, fitted in one pass over the training sequences (`model=popularity` / `model=text_tfidf`).

Zero-shot (`held_out`): items held out of training are masked out of the training softmax too, so a model
learns nothing about them, not even "rank these low"; at test time they are ranked by text (Recformer,
TF-IDF) or, for the ID models, by untrained embeddings/zero counts.

The verbs `predict`, `eval` and `export` are short functions on the `zoo.training` API at the end
(`predict_command`, `eval_command`, `export_command`): without `ckpt_path` or `weights` they take the newest
training run of the domain, and `predict` prints its rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from domains.recsys.data import RecContract
from domains.recsys.metrics import RankingMetrics, TfidfTextBaseline
from domains.recsys.movielens import Catalogue, parse_history, read_items
from domains.recsys.sentences import RecformerBatcher
from zoo.errors import ZooError
from zoo.factory import Weights, open_weights
from zoo.io import write_csv_atomic
from zoo.models.recformer import TwoStageFinetuning
from zoo.models.sasrec import pad_histories, training_pairs
from zoo.training import BaseTask, load_for_inference, run_folder, write_run_record
from zoo.training.loading import default_to_newest_run
from zoo.training.runner import export_and_record, test_and_record
from zoo.training.validation import Rule, check_value

log = logging.getLogger(__name__)


def _to(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _task_rng() -> random.Random:
    """A Python RNG drawn from torch's (which Lightning seeds): target positions and MLM masks are reproducible."""
    return random.Random(int(torch.randint(2**62, ())))


# ----------------------------------------------------------------------------- shared


class RecTask(BaseTask):
    """What every recommender task shares: the contract, ranking metrics, predictions (module docstring).

    contract: `RecContract.to_text()` (the datamodule gives it). held_out: catalogue indices never trained on.
    """

    weights_decide_architecture = True
    task_set_kwargs = ("num_classes", "global_pool", "num_items")  # the item table follows this data's catalogue
    accepts_new_items = True

    def __init__(self, contract: str | None = None, held_out: Sequence[int] = (), **kwargs: Any):
        weights = open_weights(kwargs["weights"]) if kwargs.get("weights") else None
        rec = self.effective_contract(contract, weights)
        kwargs["model_kwargs"] = self.contract_model_kwargs(rec, dict(kwargs.get("model_kwargs") or {}))
        kwargs["weights"] = self.fit_weights(weights, len(rec.catalogue)) if weights is not None else None
        super().__init__(**kwargs)
        self.init_rec(rec, held_out)

    # ------------------------------------------------------------------ contract

    @staticmethod
    def effective_contract(contract: str | None, weights: Weights | None) -> RecContract:
        """The data's contract; a pre-trained model's own tokenizer and sentence limits win over the data's."""
        if not contract:
            raise ZooError(
                "a recsys task needs its data contract (catalogue, tokenizer): build it with `zoo recsys train` "
                "or zoo.training.build_task, restore it with zoo.load_pipeline"
            )
        rec = RecContract.from_text(contract)
        saved = (weights.data_contract if weights is not None else None) or {}
        if saved.get("tokenizer"):
            model = RecContract.from_dict(saved, f"the contract of {weights.source}")
            log.info("using the tokenizer and sentence settings of %s", weights.source)
            rec = RecContract(rec.catalogue, model.sentences, model.tokenizer)
        return rec

    def contract_model_kwargs(self, rec: RecContract, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        """What the backbone must know about the contract (vocabulary, items)."""
        return {**model_kwargs, "num_items": len(rec.catalogue)}

    @staticmethod
    def fit_weights(weights: Weights, num_items: int) -> Weights:
        """Weights whose item table has another catalogue's size: a zero table of this one's (refilled from
        the items' text before any score)."""
        table = weights.state_dict.get("item_table")
        if table is None or table.shape[0] == num_items:
            return weights
        log.info("%s: item table of %d items replaced by this data's %d", weights.source, table.shape[0], num_items)
        state = {**weights.state_dict, "item_table": torch.zeros(num_items, table.shape[1], dtype=table.dtype)}
        return dataclasses.replace(weights, state_dict=state)

    def init_rec(self, rec: RecContract, held_out: Sequence[int]) -> None:
        self.rec = rec
        self.hparams["contract"] = rec.to_text()  # the effective one (a pre-trained model's tokenizer)
        self.held_out = sorted({int(i) for i in held_out})
        self.hparams["held_out"] = self.held_out
        self.ranking = {"val": RankingMetrics(), "test": RankingMetrics()}

    @property
    def catalogue(self) -> Catalogue:
        return self.rec.catalogue

    def data_contract(self) -> dict[str, Any]:
        return self.rec.to_dict()

    def export_extras(self, folder: str) -> dict[str, str | bytes]:
        """Readable copies of the contract beside the weights: tokenizer, item metadata, sentence limits."""
        extras = {"items.jsonl": self.catalogue.to_jsonl(), "sentences.json": _json(asdict(self.rec.sentences))}
        if self.rec.tokenizer is not None:
            extras["tokenizer.json"] = self.rec.tokenizer.to_json()
        return extras

    def held_out_mask(self, num_items: int) -> torch.Tensor:
        mask = torch.zeros(num_items, dtype=torch.bool, device=self.device)
        mask[self.held_out] = True
        return mask

    # ------------------------------------------------------------------ ranking

    def score_histories(self, histories: list[list[int]], new: Catalogue | None = None) -> torch.Tensor:
        """(B, N [+ M new items]) scores of every catalogue item after each history."""
        raise NotImplementedError

    def rank_step(self, batch: dict[str, Any], stage: str) -> None:
        scores = self.score_histories(batch["histories"])
        self.ranking[stage].update(scores, batch["targets"])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.rank_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.rank_step(batch, "test")

    def log_ranking(self, stage: str) -> dict[str, float]:
        metrics = self.ranking[stage]
        if not metrics.ranks:
            return {}
        values = metrics.compute()
        metrics.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name.startswith("ndcg"))
        return values

    def on_validation_epoch_start(self) -> None:
        self.ranking["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.ranking["test"].reset()

    def on_validation_epoch_end(self) -> None:
        self.log_ranking("val")

    def on_test_epoch_end(self) -> None:
        self.log_ranking("test")

    # ------------------------------------------------------------------ predictions

    @torch.no_grad()
    def recommend(
        self,
        queries: Sequence[str],
        histories: Sequence[Sequence[int]],
        topk: int = 10,
        new_items: Catalogue | None = None,
        exclude_history: bool = True,
        batch_size: int = 64,
    ) -> list[dict[str, Any]]:
        """Rows (query, rank, item_id, item, score, new) of the top `topk` items after each history; indices
        are into the catalogue extended by `new_items`. Ties: catalogue order."""
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ZooError(f"topk={topk!r}: give how many items to list, a whole number >= 1")
        if new_items is not None and not self.accepts_new_items:
            raise ZooError(
                f"{type(self).__name__} knows items by id only and cannot rank the {len(new_items)} new items of "
                f"{new_items.source}; use a text model (model=recformer or model=text_tfidf)"
            )
        catalogue = self.catalogue.extend(new_items) if new_items is not None else self.catalogue
        known = len(self.catalogue)
        rows = []
        for start in range(0, len(histories), batch_size):
            chunk = [list(h) for h in histories[start : start + batch_size]]
            scores = self.score_histories(chunk, new_items).float().cpu()
            for query, history, row in zip(queries[start : start + batch_size], chunk, scores):
                if exclude_history:
                    row[history] = -math.inf
                order = torch.sort(-row, stable=True).indices[: min(topk, int(torch.isfinite(row).sum()))]
                rows += [
                    {
                        "query": query,
                        "rank": rank,
                        "item_id": catalogue.item_ids[i],
                        "item": catalogue.display_name(i),
                        "score": round(float(row[i]), 5),
                        "new": int(i >= known),
                    }
                    for rank, i in enumerate(order.tolist(), start=1)
                ]
        return rows

    def predict(
        self,
        history: str | Sequence[str],
        topk: int = 10,
        new_items: str | Path | Catalogue | None = None,
        exclude_history: bool = True,
    ) -> list[dict[str, Any]]:
        """The rows `zoo recsys predict history=... topk=... items=...` writes, for one history given as
        'Toy Story (1995); Heat (1995)' (oldest first) or a list of names/ids; `new_items`: a .item/.jsonl file
        (or Catalogue) of items never trained on, ranked by their text."""
        new = read_items(new_items) if isinstance(new_items, (str, Path)) else new_items
        catalogue = self.catalogue.extend(new) if new is not None else self.catalogue
        text = history if isinstance(history, str) else "; ".join(str(h) for h in history)
        indices = parse_history(text, catalogue)
        return self.recommend([text], [indices], topk, new, exclude_history)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


# ----------------------------------------------------------------------------- Recformer


class RecformerTask(RecTask):
    """Recformer pre-training and two-stage fine-tuning (module docstring).

    pretrain_epochs: epochs of pre-training first. finetune: then fine-tune (false: pre-train only).
    mlm_weight, mlm_probability: MLM term and masking rate. stage1_epochs: most epochs of stage 1 (null: as
    long as patience_stage1 allows). patience_stage1/2: epochs without a better val/ndcg@10 before stage 1
    ends / stage 2 stops training. item_batch_size: items per batch when encoding the table.
    """

    def __init__(
        self,
        pretrain_epochs: int = 0,
        finetune: bool = True,
        mlm_weight: float = 0.1,
        mlm_probability: float = 0.15,
        stage1_epochs: int | None = None,
        patience_stage1: int = 5,
        patience_stage2: int = 3,
        item_batch_size: int = 256,
        **kwargs: Any,
    ):
        for key, value in (("pretrain_epochs", pretrain_epochs), ("patience_stage1", patience_stage1),
                           ("patience_stage2", patience_stage2), ("item_batch_size", item_batch_size)):  # fmt: skip
            check_value(f"task.{key}", value, Rule("int", 1 if key != "pretrain_epochs" else 0))
        if stage1_epochs is not None:
            check_value("task.stage1_epochs", stage1_epochs, Rule("int", 1, allow_none=True))
        if not finetune and not pretrain_epochs:
            raise ZooError("task.finetune=false with no pretrain_epochs trains nothing; give pretrain_epochs=N")
        super().__init__(**kwargs)
        if self.rec.tokenizer is None:
            raise ZooError("Recformer reads item text: its contract needs a tokenizer")
        self.batcher = RecformerBatcher.from_catalogue(
            self.rec.tokenizer, self.catalogue.attributes, self.rec.sentences
        )
        self.schedule = TwoStageFinetuning(patience_stage1, patience_stage2)
        self.stage_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def contract_model_kwargs(self, rec: RecContract, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        if rec.tokenizer is None:
            raise ZooError("Recformer reads item text: its contract needs a tokenizer")
        return {**model_kwargs, **rec.sentences.model_kwargs(rec.tokenizer), "num_items": len(rec.catalogue)}

    @property
    def pretraining(self) -> bool:
        return not self.hparams.finetune or self.current_epoch < self.hparams.pretrain_epochs

    # ------------------------------------------------------------------ the item table

    def refresh_items(self) -> None:
        """Re-encode every catalogue item into the frozen table (outside inference mode: training reads it)."""
        with torch.inference_mode(False), torch.no_grad():
            self.backbone.refresh_item_table(self.batcher.item_batches(self.hparams.item_batch_size))

    def score_histories(self, histories: list[list[int]], new: Catalogue | None = None) -> torch.Tensor:
        """Against the trained item table; with `new` items, against the whole extended catalogue re-encoded by
        the current encoder. After stage 2 the table is older than the encoder (it was fixed while the encoder
        trained on), so new items encoded now would sit in another space than the table's rows: one encoder for
        every item keeps known and new items comparable (cost: known items score a little differently)."""
        batcher = self.batcher if new is None else self.batcher.extended(new.attributes)
        representation = self.backbone.encode(_to(batcher.histories(histories), self.device))
        items = self.backbone.item_table
        if new is not None:
            items = self.backbone.encode_items(batcher.item_batches(self.hparams.item_batch_size)).to(items)
        return self.backbone.score(representation, items)

    # ------------------------------------------------------------------ training

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        rng, size = _task_rng(), len(batch["sequences"])
        if self.pretraining:
            history, item = self.batcher.pretraining(batch["sequences"], rng, self.hparams.mlm_probability)
            out = self.backbone.pretraining_loss(
                _to(history, self.device), _to(item, self.device), self.hparams.mlm_weight
            )
            for name in ("contrastive", "mlm", "accuracy"):
                if name in out:
                    self.log(f"train/{name}", out[name], batch_size=size)
            loss = out["loss"]
        else:
            inputs, targets = self.batcher.finetune(batch["sequences"], rng)
            scores = self.backbone.score(self.backbone.encode(_to(inputs, self.device))).float()
            if self.held_out:  # zero-shot: held-out items are not even negatives
                scores = scores.masked_fill(self.held_out_mask(scores.shape[1]), -math.inf)
            loss = F.cross_entropy(scores, targets.to(self.device))
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def on_fit_start(self) -> None:
        self.refresh_items()  # the sanity check and a run without pre-training score against it at once

    def on_train_epoch_start(self) -> None:
        if not self.pretraining and self.schedule.refresh_due():
            self.refresh_items()

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        if self.pretraining and not self.trainer.sanity_checking:
            self.refresh_items()  # pre-training keeps no table: rank by the current encoder's item text

    def on_validation_epoch_end(self) -> None:
        metrics = self.log_ranking("val")
        if metrics and not self.trainer.sanity_checking and not self.pretraining:
            self.advance_schedule(metrics["ndcg@10"])
        self.log("train/stage", 0.0 if self.pretraining else float(self.schedule.stage))

    def advance_schedule(self, value: float) -> None:
        action = self.schedule.update(value)
        self.stage_epochs += 1
        with torch.inference_mode(False):
            if action == "improved":
                self.best_state = {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}
            limit = self.hparams.stage1_epochs
            if self.schedule.stage == 1 and action != "next_stage" and limit and self.stage_epochs >= limit:
                self.schedule.stage, self.schedule.bad_epochs, action = 2, 0, "next_stage"
            if action == "next_stage":
                self.stage_epochs = 0
                if self.best_state is not None:
                    self.backbone.load_state_dict(self.best_state)
                log.info(
                    "fine-tuning stage 2 from the best stage-1 weights (val/ndcg@10 %.4f); item table fixed",
                    self.schedule.best,
                )
            elif action == "stop":
                self.stop_training(
                    f"fine-tuning stage 2 ends: no better val/ndcg@10 for {self.schedule.patience_stage2} epochs"
                )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["recsys_schedule"] = {**self.schedule.state_dict(), "stage_epochs": self.stage_epochs}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("recsys_schedule")
        if state:
            self.schedule.load_state_dict(state)
            self.stage_epochs = int(state.get("stage_epochs", 0))


# ----------------------------------------------------------------------------- SASRec


class SASRecTask(RecTask):
    """SASRec on item ids; loss: "ce" (softmax over the catalogue at every position) or "bce" (the paper's
    one sampled negative). New items cannot be scored: they have no id embedding."""

    weights_decide_architecture = False
    accepts_new_items = False

    def __init__(self, loss: str = "ce", **kwargs: Any):
        if loss not in ("ce", "bce"):
            raise ZooError(f"task.loss={loss!r}: choose ce or bce")
        super().__init__(**kwargs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        model = self.backbone
        inputs, targets = (t.to(self.device) for t in training_pairs(batch["sequences"], model.max_len))
        if self.hparams.loss == "bce":
            loss = model.training_loss(inputs, targets, loss="bce")
        else:
            real = targets.ne(0)
            logits = model.item_scores(model.forward_features(inputs)[real]).float()
            if self.held_out:
                logits = logits.masked_fill(self.held_out_mask(logits.shape[1]), -math.inf)
            loss = F.cross_entropy(logits, targets[real] - 1)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["sequences"]))
        return loss

    def score_histories(self, histories: list[list[int]], new: Catalogue | None = None) -> torch.Tensor:
        return self.backbone.next_item_scores(pad_histories(histories, self.backbone.max_len).to(self.device))


# ----------------------------------------------------------------------------- baselines


class ItemStatistics(nn.Module):
    """A baseline's fitted state: training interaction counts per item (what a checkpoint stores)."""

    def __init__(self, num_items: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_items))


class BaselineTask(RecTask):
    """`popularity` or `text_tfidf` (module docstring): no gradient steps, one pass over the training data.

    Built without `BaseTask`'s backbone machinery (there is no registered model to build), so it is trained,
    evaluated and used for predictions from its `.ckpt`, but not exported.
    """

    METHODS = ("popularity", "text_tfidf")

    def __init__(
        self,
        method: str = "popularity",
        contract: str | None = None,
        held_out: Sequence[int] = (),
        model: str | None = None,
        model_kwargs: dict | None = None,
        weights: Any = None,
    ):
        if method not in self.METHODS:
            raise ZooError(f"task.method={method!r}: choose {' or '.join(self.METHODS)}")
        if weights:
            raise ZooError(f"the {method} baseline is fitted from the data and takes no weights")
        pl.LightningModule.__init__(self)  # not BaseTask.__init__: no registered backbone to build
        self.save_hyperparameters({"method": method, "contract": contract, "held_out": list(held_out)})
        self.weights, self.automatic_optimization = None, False
        rec = self.effective_contract(contract, None)
        self.backbone = ItemStatistics(len(rec.catalogue))
        self.step_marker = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.init_rec(rec, held_out)
        self.tfidf: TfidfTextBaseline | None = None

    def configure_optimizers(self):
        # Lightning counts steps by optimizer steps and writes checkpoints only after some: each batch of the
        # pass "steps" an optimizer over a marker parameter that never gets a gradient (nothing changes).
        return torch.optim.SGD([self.step_marker], lr=0.0)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.current_epoch == 0:
            for seq in batch["sequences"]:
                self.backbone.counts += torch.bincount(torch.tensor(seq), minlength=len(self.catalogue)).to(
                    self.backbone.counts
                )
        self.optimizers().step()

    def on_train_epoch_end(self) -> None:
        # fitted: another pass would only count the same interactions again
        self.stop_training(f"the {self.hparams.method} baseline is fitted in one pass")

    def score_histories(self, histories: list[list[int]], new: Catalogue | None = None) -> torch.Tensor:
        if self.hparams.method == "popularity":
            counts = self.backbone.counts
            if new is not None:  # never interacted with: count 0
                counts = torch.cat([counts, counts.new_zeros(len(new))])
            return counts.expand(len(histories), -1)
        if new is not None:  # TF-IDF uses no interactions: refit its vocabulary on the extended catalogue
            attributes = self.catalogue.extend(new).attributes
            return TfidfTextBaseline(attributes, self.rec.sentences.max_attr_num)(histories)
        if self.tfidf is None:
            self.tfidf = TfidfTextBaseline(self.catalogue.attributes, self.rec.sentences.max_attr_num)
        return self.tfidf(histories).to(self.device)


# ----------------------------------------------------------------------------- verbs


def model_label(task: pl.LightningModule) -> str | None:
    return task.hparams.get("model") or task.hparams.get("method")


def predict_command(cfg: DictConfig) -> dict[str, Any]:
    """`zoo recsys predict`: rows printed and written to predictions.csv (see configs/predict.yaml)."""
    check_value("topk", cfg.get("topk"), Rule("int", 1))
    task, _ = load_for_inference(default_to_newest_run(cfg))
    new = read_items(cfg["items"]) if cfg.get("items") else None  # cfg.items is DictConfig.items()
    history = cfg.get("history")
    if isinstance(history, ListConfig):
        history = OmegaConf.to_container(history)
    if history not in (None, ""):
        rows = task.predict(history, int(cfg.topk), new, bool(cfg.get("exclude_history", True)))
    else:  # every user of the data: what to recommend next after their whole history
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.setup("predict")
        datamodule.accept_contract(task.data_contract())
        users, histories = datamodule.user_histories()
        rows = task.recommend(users, histories, int(cfg.topk), new, bool(cfg.get("exclude_history", True)))
    out = run_folder(cfg)
    path = write_csv_atomic(cfg.get("output") or out / "predictions.csv", rows)
    print_rows(rows)
    result = {"mode": "predict", "model": model_label(task), "output_dir": str(out), "predictions": str(path)}
    result["rows"] = len(rows)
    write_run_record(out, cfg, result)
    return result


def print_rows(rows: list[dict[str, Any]], limit: int = 30) -> None:
    """The first `limit` rows as a table, plus every new item further down (where did my new items land?)."""
    from rich.console import Console
    from rich.table import Table

    table = Table("query", "rank", "item_id", "item", "score", "new", title="recommendations")
    shown = [row for i, row in enumerate(rows) if i < limit or row["new"]]
    for row in shown:
        table.add_row(*(str(row[k]) if k != "new" else ("new" if row[k] else "") for k in row))
    console = Console(width=160)
    console.print(table)
    if len(rows) > len(shown):
        console.print(f"... {len(rows) - len(shown)} more rows in the CSV")


def eval_command(cfg: DictConfig) -> dict[str, Any]:
    """`zoo recsys eval`: the test metrics of a trained task on the configured data."""
    cfg = default_to_newest_run(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("test")
    task, _ = load_for_inference(cfg, datamodule)
    datamodule.accept_contract(task.data_contract())
    return test_and_record(cfg, task, datamodule, model_label(task))


def export_command(cfg: DictConfig) -> dict[str, Any]:
    """`zoo recsys export`: a hub folder that `zoo.load_pipeline` restores with its tokenizer and catalogue."""
    task, _ = load_for_inference(default_to_newest_run(cfg))
    if isinstance(task, BaselineTask):
        raise ZooError(
            f"the {task.hparams.method} baseline has no backbone to export; use its .ckpt "
            "(`zoo recsys predict ckpt_path=...`, zoo.load_pipeline(<.ckpt>))"
        )
    return export_and_record(cfg, task, model_label(task))
