"""Self-supervised pre-training on DNA windows: next-nucleotide (causal) or masked language modelling.

Causal backbones learn to predict every base from the bases before it, as
HyenaDNA is pre-trained (Nguyen et al., NeurIPS 2023); bidirectional ones
(`causal=False`: a bidirectional Transformer, S5 or DNA-xLSTM, or the
RC-equivariant DNA-xLSTM) learn masked language modelling as BERT (Devlin et
al., NAACL 2019): 15% of the bases are chosen, 80% of those become [MASK], 10% a
random base and 10% stay, and the loss is taken at the chosen positions.
Backbones with their own LM head (`lm_logits`: HyenaDNA's tied embedding,
Bio-xLSTM's head) use it; others get a linear head over the vocabulary.
Metrics: loss (nats per base), perplexity and top-1 accuracy; `predict` writes
the mean loss of every window.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from domains.genomics.metrics import IGNORE
from domains.genomics.tasks import GenomicsTask
from domains.genomics.tokenizer import DNATokenizer
from zoo.errors import ZooError
from zoo.factory import language_model_kwargs
from zoo.models.base import token_logits

OBJECTIVES = ("auto", "causal", "masked")


class LanguageModelTask(GenomicsTask):
    """objective: auto (causal for causal backbones, masked otherwise), causal or masked."""

    def __init__(self, objective: str = "auto", mask_prob: float = 0.15, **kwargs: Any):
        if objective not in OBJECTIVES:
            raise ZooError(f"task.objective={objective!r}; choose one of {', '.join(OBJECTIVES)}")
        super().__init__(**kwargs)
        causal = getattr(self.backbone, "causal", True)
        self.objective = ("causal" if causal else "masked") if objective == "auto" else objective
        if self.objective == "causal" and not causal:
            raise ZooError(
                "task.objective=causal needs a causal backbone; this one sees the whole sequence (use masked)"
            )
        self.register_buffer(
            "base_ids",
            torch.tensor(
                [self.tokenizer.ids[b] for b in "ACGT" if b in self.tokenizer.ids]
                or [i for i, t in enumerate(self.tokenizer.vocab) if len(t) == 1]
            ),
            persistent=False,
        )

    def backbone_kwargs(self, name: str, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        return language_model_kwargs(name, model_kwargs, vocab_size=len(DNATokenizer()))

    def token_logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return token_logits(self.backbone, self.backbone.forward_features(ids, mask), mask).float()

    def masked_inputs(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = (torch.rand(ids.shape, device=ids.device) < self.hparams.mask_prob) & mask
        targets = ids.masked_fill(~chosen, IGNORE)
        roll = torch.rand(ids.shape, device=ids.device)
        random_bases = self.base_ids[torch.randint(len(self.base_ids), ids.shape, device=ids.device)]
        inputs = torch.where(chosen & (roll < 0.8), self.tokenizer.mask_id, ids)
        inputs = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_bases, inputs)
        return inputs, targets

    def losses(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-position loss, logits, targets), targets -100 where nothing is predicted."""
        if self.objective == "causal":
            logits = self.token_logits(ids, mask)[:, :-1]
            targets = ids[:, 1:].masked_fill(~(mask[:, 1:] & mask[:, :-1]), IGNORE)
        else:
            inputs, targets = self.masked_inputs(ids, mask)
            logits = self.token_logits(inputs, mask)
        loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
        return loss, logits, targets

    def shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        per_position, logits, targets = self.losses(batch["ids"], batch["mask"])
        counted = targets != IGNORE
        loss = per_position.sum() / counted.sum().clamp_min(1)
        size = len(batch["ids"])
        self.log(
            f"{stage}/loss", loss, prog_bar=True, batch_size=size, sync_dist=stage != "train", add_dataloader_idx=False
        )
        if stage != "train":
            accuracy = (logits.argmax(-1) == targets)[counted].float().mean() if counted.any() else loss.new_zeros(())
            self.log(f"{stage}/acc", accuracy, batch_size=size, sync_dist=True, add_dataloader_idx=False)
            self.log(f"{stage}/perplexity", loss.exp(), batch_size=size, sync_dist=True, add_dataloader_idx=False)
        return loss

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        per_position, _, targets = self.losses(batch["ids"], batch["mask"])
        counted = (targets != IGNORE).float()
        mean = (per_position * counted).sum(1) / counted.sum(1).clamp_min(1)
        return [
            {
                "id": record_id,
                "strand": strand,
                "bases": int(n),
                "loss": round(float(m), 5),
                "perplexity": round(math.exp(float(m)), 5),
            }
            for record_id, strand, n, m in zip(batch["id"], batch["strand"], batch["mask"].sum(1), mean)
        ]
