"""Soft prompts: trainable embeddings placed before each sequence of a frozen backbone.

As in HyenaDNA's in-context experiments (Nguyen et al., NeurIPS 2023, section 4.3;
after Lester et al., "The Power of Scale for Parameter-Efficient Prompt Tuning",
EMNLP 2021): `k` prompt vectors are inserted right before the first real token
and only they are trained. The backbone is not modified: a forward hook on its
input stem swaps the embeddings of placeholder tokens for the prompt vectors, so
every backbone whose stem embeds token ids takes a prompt, and its state dict
(and exported weights) stay those of the pretrained model.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.layers.heads import InputStem, first_valid_index


class SoftPrompt(nn.Module):
    """`num_tokens` vectors of the backbone's width; `attach` hooks them into its stem."""

    def __init__(self, num_tokens: int, placeholder_id: int, stem: InputStem):
        super().__init__()
        if not stem.vocab_size:
            raise ZooError("soft prompts need a token-input backbone (vocab_size=...)")
        self.num_tokens, self.placeholder_id = num_tokens, placeholder_id
        # initialised from the embeddings of random vocabulary tokens (Lester et al.): the scale the model expects
        with torch.no_grad():
            rows = torch.randint(0, stem.vocab_size, (num_tokens,))
            self.embeddings = nn.Parameter(stem.proj.weight[rows].detach().clone())
        self._hook = stem.register_forward_hook(self._swap)

    def _swap(self, module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        ids = inputs[0]
        here = ids == self.placeholder_id
        if not here.any():
            return output
        index = (here.cumsum(1) - 1).clamp(0, self.num_tokens - 1)  # k-th placeholder of a row takes vector k
        return torch.where(here[..., None], self.embeddings.to(output.dtype)[index], output)

    def insert(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Put `num_tokens` placeholders right before each row's first real token (left or right padding)."""
        batch, k = ids.shape[0], self.num_tokens
        pad_id = ids[~mask][0] if (~mask).any() else 0
        ids = torch.cat([ids.new_full((batch, k), int(pad_id)), ids], 1)
        mask = torch.cat([mask.new_zeros((batch, k)), mask], 1)
        positions = first_valid_index(mask)[:, None] - torch.arange(k, 0, -1, device=ids.device)[None]
        rows = torch.arange(batch, device=ids.device)[:, None].expand(-1, k)
        ids[rows, positions] = self.placeholder_id
        mask[rows, positions] = True
        return ids, mask

    def detach_hook(self) -> None:
        self._hook.remove()
