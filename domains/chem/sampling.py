"""Sampling SMILES from a causal language model: temperature, top-k, batches, prompts.

The model is any registered backbone: one with its own language-model head
(`lm_logits`, e.g. Bio-xLSTM, built with `num_classes=0`) or one whose
classifier head predicts the next token (`num_classes = vocab_size`,
`global_pool=''`). Recurrent families advance with `step()` in constant
memory; the others re-run the growing sequence.

In-context (conditional) generation as in Bio-xLSTM (Schmidinger et al., 2024,
arXiv:2411.04165): the prompt is `<bos> m1 <sep> ... mk <sep>`, a few example
molecules of a family; the model continues with a new molecule that it ends
with `<sep>` or `<eos>`. A model trained on such families (data
`context_size > 1`) writes molecules resembling the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rdkit import Chem

from domains.chem.metrics import to_mol
from domains.chem.tokenizer import SmilesTokenizer
from zoo.models.base import has_lm_head, token_logits


@dataclass
class Sample:
    text: str  # the generated SMILES string as written (may be invalid)
    logp: float  # model log-likelihood of the generated tokens and the terminator (temperature 1)
    finished: bool  # ended with <eos>/<sep> within max_tokens
    tokens: list[int]  # the generated ids, terminator included


def next_token_logits(backbone: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """`(B, L, vocab)`: at position t, the logits of token t+1."""
    return token_logits(backbone, backbone.forward_features(ids, mask), mask)


def next_token_step(backbone: torch.nn.Module, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """Recurrent form of `next_token_logits`: one token `(B,)` in, `(B, vocab)` logits out."""
    output, state = backbone.step(token, state)
    return (
        backbone.lm_logits(output) if has_lm_head(backbone) else output
    ), state  # step() applies the classifier itself


def prompt_ids(tokenizer: SmilesTokenizer, prompt: Sequence[str] | None) -> list[int]:
    return tokenizer.encode_context(list(prompt), close=False) if prompt else [tokenizer.bos_id]


def _pick(
    logits: torch.Tensor, banned: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None
) -> torch.Tensor:
    logits = logits.float().masked_fill(banned, float("-inf"))
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_batch(
    model: torch.nn.Module,
    tokenizer: SmilesTokenizer,
    batch: int,
    prompt: Sequence[str] | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    max_tokens: int = 128,
    generator: torch.Generator | None = None,
) -> list[Sample]:
    """`batch` molecules continuing the same prompt; `temperature=0` is greedy decoding."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    context = torch.tensor(prompt_ids(tokenizer, prompt), device=device).expand(batch, -1)
    banned = torch.zeros(len(tokenizer), dtype=torch.bool, device=device)
    banned[[tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id]] = True
    stops = torch.tensor([tokenizer.eos_id, tokenizer.sep_id], device=device)
    recurrent = getattr(model, "recurrent", False)
    if recurrent:
        state = model.init_state(batch, device=device)
        for t in range(context.shape[1]):
            logits, state = next_token_step(model, context[:, t], state)
    else:
        sequence = context
        logits = next_token_logits(model, sequence)[:, -1]
    generated = torch.full((batch, max_tokens), tokenizer.pad_id, device=device)
    logp = torch.zeros(batch, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for t in range(max_tokens):
        token = _pick(logits, banned, temperature, top_k, generator)
        token = torch.where(done, torch.full_like(token, tokenizer.pad_id), token)
        logp += torch.where(done, 0.0, F.log_softmax(logits.float(), -1).gather(-1, token[:, None]).squeeze(-1))
        generated[:, t] = token
        done |= torch.isin(token, stops)
        if bool(done.all()) or t == max_tokens - 1:
            break
        if recurrent:
            logits, state = next_token_step(model, token, state)
        else:
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            logits = next_token_logits(model, sequence)[:, -1]
    model.train(was_training)
    samples = []
    for row, finished, score in zip(generated.tolist(), done.tolist(), logp.tolist()):
        tokens = [i for i in row if i != tokenizer.pad_id]
        samples.append(Sample(tokenizer.decode(tokens[:-1] if finished else tokens), score, finished, tokens))
    return samples


def sample(
    model: torch.nn.Module,
    tokenizer: SmilesTokenizer,
    num_samples: int,
    batch_size: int = 64,
    seed: int | None = None,
    **kwargs,
) -> list[Sample]:
    """`num_samples` molecules in batches of `batch_size`; `seed` makes the draw reproducible."""
    device = next(model.parameters()).device
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    out: list[Sample] = []
    while len(out) < num_samples:
        out += sample_batch(model, tokenizer, min(batch_size, num_samples - len(out)), generator=generator, **kwargs)
    return out


@torch.no_grad()
def sequence_logp(
    model: torch.nn.Module,
    tokenizer: SmilesTokenizer,
    molecule: str | Sequence[int],
    prompt: Sequence[str] | None = None,
) -> float:
    """Log-likelihood of `molecule` after `prompt`, from one full forward pass.

    molecule: a SMILES (scored with an `<eos>` terminator) or the token ids that follow the prompt.
    """
    context = prompt_ids(tokenizer, prompt)
    body = tokenizer.encode(molecule, bos=False, eos=True) if isinstance(molecule, str) else list(molecule)
    ids = torch.tensor([context + body], device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    logprobs = F.log_softmax(next_token_logits(model, ids[:, :-1]).float(), -1)[0, len(context) - 1 :]
    model.train(was_training)
    return float(logprobs.gather(-1, ids[0, len(context) :, None]).sum())


def canonical_or_none(smiles: str) -> str | None:
    """RDKit canonical SMILES of a valid, non-empty molecule, else None."""
    mol = to_mol(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def sample_rows(samples: Sequence[Sample], start: int = 0) -> list[dict]:
    """CSV rows: id, generated SMILES, validity, canonical SMILES, log-likelihood."""
    rows = []
    for i, s in enumerate(samples, start=start):
        canonical = canonical_or_none(s.text) if s.finished else None
        rows.append(
            {
                "id": f"gen{i}",
                "smiles": s.text,
                "valid": int(canonical is not None),
                "canonical_smiles": canonical or "",
                "logp": round(s.logp, 4),
                "num_tokens": len(s.tokens),
            }
        )
    return rows
