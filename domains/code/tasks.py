"""Code-completion tasks: CodeFill (multitask or value-only) and the Kneser-Ney n-gram baseline, one metric set.

CodeFill (Izadi, Gismondi, Gousios, "CodeFill: Multi-token Code Completion by Jointly Learning from Structure
and Naming Sequences", ICSE 2022) learns next value, next type and statement completion from aligned
value/type streams (`zoo.models.codefill`). Every task here logs, on validation and test windows,
`{stage}/acc`, `{stage}/mrr@10` over all next pieces and `{stage}/acc_cardinal`, `{stage}/mrr@10_cardinal` at
the paper's cardinal completion points (`domains.code.metrics.TokenCompletionMetrics`), and at test, on the
statement examples of the test split (the datamodule's second test loader), ROUGE-L and exact match of the
first n source tokens for n = 2..8 (`test/rouge_l@n`, `test/exact@n`, beam search).

- `CodeTask`: CodeFill on a zoo backbone. `model.kwargs.multitask` (the top-level `multitask` switch) chooses
  the paper's three tasks or its value-only ablation (value stream in, no type head). The re-ranking table
  P(type | value piece) is counted from the training batches during the first epoch (the training split's
  value/type counts, `CodeFill.set_type_table`), so it travels in the weights.
- `NgramTask`: interpolated modified Kneser-Ney over the same BPE pieces (`domains.code.ngram`), fitted in one
  pass over the training windows stitched back into whole files; `model=ngram`. Not a neural backbone, so not
  a registered model: its counts are the checkpoint's `backbone.table` (a compressed JSON tensor); it is
  trained, evaluated and used for predictions from its `.ckpt`, but not exported.

Both hold their data contract (tokenizer, window length) in their hyper-parameters, so a `.ckpt` or an
exported folder restores the whole task (`zoo.load_pipeline`), and `predict(source, line, col, mode, topk)`
gives the completion items `zoo code predict` prints (`domains.code.complete.Completer`). The verbs
`predict`, `eval` and `export` are short functions on the `zoo.training` API at the end; without `ckpt_path`
or `weights` they take the newest training run of the domain.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections import defaultdict
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from domains.code.bpe import TOKENIZER_FILE
from domains.code.complete import (
    MODES,
    Completer,
    codefill_statement_predictor,
    cursor_prefix,
    ngram_statement_predictor,
)
from domains.code.data import CodeContract, read_source
from domains.code.metrics import StatementMetrics, TokenCompletionMetrics
from domains.code.ngram import KneserNeyLM
from domains.code.streams import TYPES
from zoo.errors import ZooError
from zoo.factory import Weights, open_weights
from zoo.io import write_text_atomic
from zoo.models.codefill import CodeFill, beam_search
from zoo.training import BaseTask, run_folder, write_run_record
from zoo.training.loading import (
    default_to_newest_run,
    open_for_inference,
    recorded_data_config,
    require_domain,
    task_for_inference,
)
from zoo.training.runner import export_and_record, test_and_record, user_data_overrides
from zoo.training.validation import Rule, check_value

log = logging.getLogger(__name__)

STAGES = ("val", "test")


def effective_contract(contract: str | None, weights: Weights | None) -> CodeContract:
    """The data's contract; a pre-trained model's own tokenizer and window length win over the data's."""
    saved = (weights.data_contract if weights is not None else None) or {}
    if saved.get("tokenizer"):
        log.info("using the tokenizer and window length of %s", weights.source)
        return CodeContract.from_dict(saved, f"the contract of {weights.source}")
    if not contract:
        raise ZooError(
            "a code task needs its data contract (the value tokenizer): build it with `zoo code train` or "
            "zoo.training.build_task, restore it with zoo.load_pipeline"
        )
    return CodeContract.from_text(contract)


# ----------------------------------------------------------------------------- shared


class CompletionTask(BaseTask):
    """What both code tasks share: the contract, token and statement metrics, completion items."""

    def init_code(self, code: CodeContract, beam_size: int, statement_max_pieces: int) -> None:
        check_value("task.beam_size", beam_size, Rule("int", 1))
        check_value("task.statement_max_pieces", statement_max_pieces, Rule("int", 1))
        self.code = code
        self.tokenizer = code.tokenizer
        self.hparams["contract"] = code.to_text()  # the effective one (a pre-trained model's tokenizer)
        self.token_metrics = nn.ModuleDict({s: TokenCompletionMetrics(k=10) for s in STAGES})
        self.statement_metrics = StatementMetrics()
        self._completer: Completer | None = None

    def data_contract(self) -> dict[str, Any]:
        return self.code.to_dict()

    def export_extras(self, folder: str) -> dict[str, str | bytes]:
        return {TOKENIZER_FILE: self.tokenizer.to_str()}  # what Completer.from_pretrained(folder) reads

    # ------------------------------------------------------------------ steps

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Any:
        if "statements" in batch:
            predict = self.statement_predictor()
            for example in batch["statements"]:
                self.statement_metrics.update(predict(example), example.reference)
            return None
        return self.shared_step(batch, "test")

    def statement_predictor(self):
        raise NotImplementedError

    def log_losses(self, losses: dict[str, torch.Tensor], stage: str, pieces: int) -> None:
        for name, value in losses.items():
            self.log(
                f"{stage}/{name}", value, prog_bar=name == "loss", batch_size=max(pieces, 1), add_dataloader_idx=False
            )

    def on_validation_epoch_start(self) -> None:
        self.token_metrics["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.token_metrics["test"].reset()
        self.statement_metrics = StatementMetrics()

    def log_token_metrics(self, stage: str) -> None:
        metric = self.token_metrics[stage]
        if int(metric.count) == 0:
            return
        values = metric.compute()
        metric.reset()
        for name in ("acc", "mrr@10", "acc_cardinal", "mrr@10_cardinal"):
            self.log(f"{stage}/{name}", values[name], prog_bar=name == "mrr@10", add_dataloader_idx=False)

    def on_validation_epoch_end(self) -> None:
        self.log_token_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.log_token_metrics("test")
        if any(self.statement_metrics.count.values()):
            for name, value in self.statement_metrics.compute().items():
                if not name.startswith("n@"):
                    self.log(f"test/{name}", float(value), add_dataloader_idx=False)

    # ------------------------------------------------------------------ completion

    def completion_model(self) -> nn.Module:
        raise NotImplementedError

    def completer(self) -> Completer:
        if self._completer is None:
            self._completer = Completer(
                self.completion_model(),
                self.tokenizer,
                beam_size=self.hparams.beam_size,
                max_statement_pieces=self.hparams.statement_max_pieces,
            )
        return self._completer

    def predict(
        self, source: str, line: int | None = None, col: int | None = None, mode: str = "token", topk: int = 5
    ) -> list[dict[str, Any]]:
        """Completion items at the cursor (line 1-based, col 0-based; None: the end of the file / line), best
        first: {"label", "kind", "score", "detail", "lsp_kind"} (`domains.code.complete`)."""
        line, col = cursor_of(source, line, col)
        check_completion_mode(mode)
        check_value("topk", topk, Rule("int", 1))
        self.eval()
        with torch.no_grad():
            return self.completer().complete(source, line, col, mode, topk)


def check_completion_mode(mode: str) -> str:
    """`mode` when it is a completion mode (`domains.code.complete.MODES`), else one line naming them."""
    if mode not in MODES:
        raise ZooError(f"mode={mode!r}: choose token (the next token) or statement (the rest of the statement)")
    return mode


def cursor_of(source: str, line: int | None, col: int | None) -> tuple[int, int]:
    """The cursor, checked against the source (one line when outside it); None: the last line / its end."""
    lines = source.split("\n")
    if line is None:
        line = len(lines)
    check_value("line", line, Rule("int", 1))
    if col is None:
        col = len(lines[line - 1]) if line <= len(lines) else 0
    check_value("col", col, Rule("int", 0))
    cursor_prefix(source, line, col)  # ZooError when outside the file
    return line, col


# ----------------------------------------------------------------------------- CodeFill


class CodeTask(CompletionTask):
    """CodeFill (module docstring).

    contract: `CodeContract.to_text()` (the datamodule gives it). rerank: re-rank value candidates by the
    predicted type in metrics and completions (multitask only). beam_size, statement_max_pieces: statement
    completion's beam and length limit (pieces).
    """

    weights_decide_architecture = True  # `finetune weights=...` builds what the weights record

    def __init__(
        self,
        contract: str | None = None,
        rerank: bool = True,
        beam_size: int = 5,
        statement_max_pieces: int = 16,
        **kwargs: Any,
    ):
        weights = open_weights(kwargs["weights"]) if kwargs.get("weights") else None
        code = effective_contract(contract, weights)
        model_kwargs = dict(kwargs.get("model_kwargs") or {})
        model_kwargs.update(vocab_size=code.tokenizer.vocab_size, num_types=len(TYPES), context=code.context)
        kwargs["model_kwargs"], kwargs["weights"] = model_kwargs, weights
        super().__init__(**kwargs)
        if not isinstance(self.backbone, CodeFill):
            raise ZooError(
                f"model.name={self.hparams.model} is not a CodeFill model; keep model.name=codefill_small and "
                "choose the encoder with model.kwargs.backbone=transformer|hyena|xlstm|mamba|s5"
            )
        if self.backbone.vocab_size < code.tokenizer.vocab_size:
            raise ZooError(
                f"the model has {self.backbone.vocab_size} values, its tokenizer {code.tokenizer.vocab_size}; "
                "use the tokenizer saved with the model"
            )
        self.init_code(code, beam_size, statement_max_pieces)
        self._type_counts: torch.Tensor | None = None

    @property
    def multitask(self) -> bool:
        return bool(self.backbone.multitask)

    def inputs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Model input of positions 0..L-2 (targets are 1..L-1)."""
        types = batch["types"][:, :-1] if self.multitask else None
        return CodeFill.pack(batch["values"][:, :-1], types)

    def shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        losses = self.backbone.loss(batch)
        target_mask = batch["mask"][:, 1:]
        self.log_losses(losses, stage, int(target_mask.sum()))
        if stage == "train":
            if self.current_epoch == 0 and self.multitask:
                self.count_types(batch)
        else:
            log_probs, _ = self.backbone.next_value_log_probs(self.inputs(batch), rerank=self.hparams.rerank)
            self.token_metrics[stage].update(log_probs, batch["values"][:, 1:], target_mask, batch["cardinal"][:, 1:])
        return losses["loss"]

    # ------------------------------------------------------------------ the re-ranking table

    def count_types(self, batch: dict[str, torch.Tensor]) -> None:
        """Add the batch's (value piece, type) pairs at the target positions to the re-ranking counts."""
        vocab, types = self.backbone.vocab_size, self.backbone.num_types
        mask = batch["mask"][:, 1:]
        flat = batch["values"][:, 1:][mask] * types + batch["types"][:, 1:][mask]
        counts = torch.bincount(flat.cpu(), minlength=vocab * types).double()
        self._type_counts = counts if self._type_counts is None else self._type_counts + counts

    def apply_type_table(self) -> None:
        if self._type_counts is None:
            return
        with torch.inference_mode(False), torch.no_grad():
            table = self._type_counts.view(self.backbone.vocab_size, self.backbone.num_types)
            self.backbone.set_type_table(table)

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        if not self.trainer.sanity_checking:
            self.apply_type_table()  # the first epoch's counts (complete at its end)

    def on_train_epoch_end(self) -> None:
        self.apply_type_table()
        if self.current_epoch == 0:
            self._type_counts = None  # counted once: later epochs see the same pieces again

    # ------------------------------------------------------------------ completion

    def statement_predictor(self):
        return codefill_statement_predictor(
            self.backbone, self.tokenizer, self.hparams.beam_size, self.hparams.statement_max_pieces,
            rerank=self.hparams.rerank,
        )  # fmt: skip

    def completion_model(self) -> nn.Module:
        return self.backbone


# ----------------------------------------------------------------------------- the n-gram baseline


class NgramTable(nn.Module):
    """A fitted `KneserNeyLM` as one tensor (zlib-compressed JSON bytes): what a checkpoint stores. Its size
    follows the counts, so loading replaces the tensor rather than copying into one of a fixed shape."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.zeros(0, dtype=torch.uint8))
        self._lm: KneserNeyLM | None = None

    def set(self, lm: KneserNeyLM) -> None:
        data = zlib.compress(json.dumps(lm.to_dict(), separators=(",", ":")).encode(), 1)
        self.table = torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
        self._lm = lm

    @property
    def lm(self) -> KneserNeyLM | None:
        if self._lm is None and self.table.numel():
            self._lm = KneserNeyLM.from_dict(json.loads(zlib.decompress(self.table.cpu().numpy().tobytes())))
        return self._lm

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected, errors):
        key = prefix + "table"
        if key in state_dict:
            self.table, self._lm = state_dict[key].detach().clone().to(torch.uint8), None
        elif strict:
            missing_keys.append(key)


class NgramCompletionModel(nn.Module):
    """The n-gram LM seen through the interface `Completer` uses (prefill, next_log_probs_after,
    complete_statement), so the baseline gives completion items the same way CodeFill does. Pieces the LM never
    saw share its `<unk>` probability; no types (kind "Text")."""

    multitask = False

    def __init__(self, lm: KneserNeyLM, vocab_size: int, context: int):
        super().__init__()
        self.lm, self.vocab_size, self.context = lm, vocab_size, context
        self.value_embed = nn.Embedding(1, 1)  # Completer reads the device from it
        ids = [(i, t) for i, t in enumerate(lm.vocab) if isinstance(t, int) and 0 <= t < vocab_size]
        self.lm_ids = np.array([i for i, _ in ids], dtype=np.int64)
        self.piece_ids = torch.tensor([t for _, t in ids], dtype=torch.long)

    def log_probs(self, context: list[int]) -> torch.Tensor:
        p = self.lm.distribution(context[-(self.lm.order - 1) :] if self.lm.order > 1 else [])
        out = torch.full((self.vocab_size,), float(p[1]), dtype=torch.float64)  # index 1 is <unk>
        out[self.piece_ids] = torch.from_numpy(p[self.lm_ids])
        return out.clamp_min(1e-300).log().float()

    def prefill(self, values, types=None, reserve: int = 0) -> list[int]:
        return list(values)

    def next_log_probs_after(self, state, new_values=None, new_types=None, task: str = "value", rerank: bool = True):
        rows = [[]] if new_values is None else new_values.tolist()
        return torch.stack([self.log_probs(state + row) for row in rows]), None

    def complete_statement(self, values, types=None, beam_size=5, max_steps=32, stop_ids=(), length_penalty=0.0,
                           rerank=True, allowed=None):  # fmt: skip
        context = list(values)

        def step(hyps):
            log_p = torch.stack([self.log_probs(context + h.tokens) for h in hyps])
            if allowed is not None:
                log_p = log_p.masked_fill(~allowed[: self.vocab_size], float("-inf"))
            return log_p, lambda n, v: 0

        return beam_search(step, beam_size, max_steps, stop_ids, length_penalty)


class NgramTask(CompletionTask):
    """Kneser-Ney n-gram of `order` over the value pieces (module docstring); no gradient steps."""

    def __init__(
        self,
        order: int = 4,
        contract: str | None = None,
        beam_size: int = 5,
        statement_max_pieces: int = 16,
        model: str | None = None,
        model_kwargs: dict | None = None,
        weights: Any = None,
    ):
        check_value("task.order", order, Rule("int", 1))
        if weights:
            raise ZooError("the n-gram baseline is counted from the data and takes no weights")
        pl.LightningModule.__init__(self)  # not BaseTask.__init__: there is no registered backbone to build
        hparams = {"order": order, "contract": contract, "beam_size": beam_size}
        self.save_hyperparameters({**hparams, "statement_max_pieces": statement_max_pieces})
        self.weights, self.automatic_optimization = None, False
        self.backbone = NgramTable()
        self.step_marker = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.init_code(effective_contract(contract, None), beam_size, statement_max_pieces)
        self._windows: dict[int, dict[int, list[int]]] = defaultdict(dict)

    def configure_optimizers(self):
        # Lightning counts steps by optimizer steps and checkpoints only after some: each batch "steps" an
        # optimizer over a parameter that never gets a gradient (nothing changes).
        return torch.optim.SGD([self.step_marker], lr=0.0)

    @property
    def lm(self) -> KneserNeyLM | None:
        return self.backbone.lm

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.current_epoch == 0:
            lengths = batch["mask"].sum(1).tolist()
            for row, file, start, n in zip(batch["values"].tolist(), batch["file"].tolist(),
                                           batch["start"].tolist(), lengths):  # fmt: skip
                self._windows[file][start] = row[:n]
        self.optimizers().step()

    def fit_lm(self) -> None:
        """Stitch the windows back into files (each overlaps the next by one piece) and count them."""
        if not self._windows:
            return
        files = []
        for windows in self._windows.values():
            pieces: list[int] = []
            for start in sorted(windows):
                pieces += windows[start][1:] if pieces else windows[start]
            files.append(pieces)
        self._windows.clear()
        lm = KneserNeyLM(self.hparams.order).fit(files)
        with torch.inference_mode(False):
            self.backbone.set(lm)
        log.info("Kneser-Ney %d-gram counted on %d files (%d pieces)", lm.order, len(files), sum(map(len, files)))

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.fit_lm()

    def on_train_epoch_end(self) -> None:
        self.fit_lm()
        self.trainer.should_stop = True  # counted: another pass would count the same pieces again

    def shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor | None:
        lm = self.lm
        if lm is None:  # the sanity check before anything is counted
            return None
        back = lm.order - 1
        values, mask = batch["values"].tolist(), batch["mask"]
        ranks = torch.full(mask.shape, lm.vocab_size + 1, dtype=torch.long)
        nll, count = 0.0, 0
        for b, row in enumerate(values):
            for i in range(1, int(mask[b].sum())):
                p = lm.distribution(row[max(i - back, 0) : i])
                w = lm.index.get(row[i])
                if w is not None:
                    ranks[b, i] = int((p > p[w]).sum()) + 1
                nll -= math.log(max(p[w if w is not None else 1], 1e-300))
                count += 1
        loss = torch.tensor(nll / max(count, 1))
        self.log(f"{stage}/loss", loss, batch_size=max(count, 1), add_dataloader_idx=False)
        self.token_metrics[stage].update(None, None, mask[:, 1:], batch["cardinal"][:, 1:], ranks=ranks[:, 1:])
        return loss

    def counted(self) -> KneserNeyLM:
        if self.lm is None:
            raise ZooError("the n-gram baseline is not counted yet; train it first (`zoo code train model=ngram`)")
        return self.lm

    def statement_predictor(self):
        self.counted()
        return ngram_statement_predictor(self.lm, self.tokenizer, self.hparams.beam_size,
                                         self.hparams.statement_max_pieces)  # fmt: skip

    def predict(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        items = super().predict(*args, **kwargs)
        for item in items:
            item["detail"] = ""  # the n-gram predicts values only: no CodeFill type to name
        return items

    def completion_model(self) -> nn.Module:
        return NgramCompletionModel(self.counted(), self.tokenizer.vocab_size, self.code.context)

    def export_extras(self, folder: str) -> dict[str, str | bytes]:
        raise ZooError(
            "the n-gram baseline has no backbone to export; use its .ckpt "
            "(`zoo code predict ckpt_path=...`, zoo.load_pipeline(<.ckpt>))"
        )


# ----------------------------------------------------------------------------- verbs


def open_code_model(cfg: DictConfig) -> Weights:
    """The trained model `ckpt_path` / `weights` (or the newest run) names, refused unless a code task made it."""
    weights = open_for_inference(default_to_newest_run(cfg))
    return require_domain(weights, "code", "give a .ckpt of `zoo code train` or a `zoo code export` folder")


def model_label(task: pl.LightningModule) -> str:
    if isinstance(task, NgramTask):
        return f"ngram (order {task.hparams.order})"
    kwargs = task.hparams.get("model_kwargs") or {}
    return f"{task.hparams.get('model')} ({kwargs.get('backbone', 'transformer')}, multitask={kwargs.get('multitask')})"


def completion_mode(cfg: DictConfig) -> str:
    """`mode=token|statement` (this verb's `mode` is the completion mode; `predict` means token)."""
    mode = str(cfg.get("mode"))
    return "token" if mode == "predict" else check_completion_mode(mode)


def predict_command(cfg: DictConfig) -> list[dict[str, Any]]:
    """`zoo code predict`: completion items as JSON on stdout (and `completions.json` in the run folder).
    Returns the items (a list, so the CLI prints no result table after the JSON)."""
    mode = completion_mode(cfg)
    cfg.mode = "predict"  # the verb again, for what reads cfg.mode (messages, `ckpt_path=last`, the record)
    check_value("topk", cfg.get("topk"), Rule("int", 1))
    for key, minimum in (("line", 1), ("col", 0)):
        check_value(key, cfg.get(key), Rule("int", minimum, allow_none=True))
    source, name = read_source(cfg.get("file"), int(cfg.data.max_file_bytes))
    line, col = cursor_of(source, cfg.get("line"), cfg.get("col"))  # the input is checked before the model loads
    task = task_for_inference(cfg, open_code_model(cfg))
    items = task.predict(source, line, col, mode, int(cfg.topk))
    out = run_folder(cfg)
    path = write_text_atomic(out / "completions.json", json.dumps(items, indent=2) + "\n")
    print(json.dumps(items, indent=2), flush=True)
    record = {"mode": "predict", "model": model_label(task), "output_dir": str(out), "predictions": str(path)}
    record.update(file=name, line=line, col=col, completion=mode, items=len(items))
    write_run_record(out, cfg, record)
    return items


def eval_command(cfg: DictConfig) -> dict[str, Any]:
    """`zoo code eval`: test metrics of a trained task on the data it was trained on (unless data.* is given)."""
    weights = open_code_model(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data_cfg = recorded_data_config(cfg, weights, user_data_overrides())
    datamodule = instantiate(data_cfg, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("test")
    task = task_for_inference(cfg, weights, datamodule)
    datamodule.accept_contract(task.data_contract())
    return test_and_record(cfg, task, datamodule, model_label(task))


def export_command(cfg: DictConfig) -> dict[str, Any]:
    """`zoo code export`: a hub folder with tokenizer.json, for `zoo.load_pipeline` and `Completer.from_pretrained`."""
    weights = open_code_model(cfg)
    task = task_for_inference(cfg, weights)
    return export_and_record(cfg, task, model_label(task))


__all__ = [
    "CodeTask",
    "CompletionTask",
    "NgramCompletionModel",
    "NgramTable",
    "NgramTask",
    "eval_command",
    "export_command",
    "predict_command",
]
