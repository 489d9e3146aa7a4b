"""Items as "key value" sentences and user histories as Recformer inputs (Li et al., KDD 2023).

As the official `RecformerTokenizer` does:
- an item's attributes are taken in their order (the catalogue file's column order; empty values are
  skipped first, here), at most `max_attr_num` (3); each attribute is `tokenize(key) + tokenize(value)`
  cut to `max_attr_length` (32) tokens, token type 1 on key tokens and 2 on value tokens;
- a history is reversed (most recent first), cut to `max_items` (50) items, and prefixed with `<s>`
  (token type 0, item position 0); the k-th most recent item's tokens have item position k; the whole is
  cut to `max_tokens` (1024); `<s>` is the one global token;
- padding: `<pad>`, token type 3, item position `max_items` (the official max_item_embeddings - 1),
  attention and global masks 0. Token positions are derived from the pads in the model.

`RecformerBatcher` turns catalogue indices into batches for every stage: item encoding, fine-tuning
(the official random target position), evaluation, and pre-training with whole-word MLM.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from domains.recsys.tokenizer import ItemTokenizer

CLS_TYPE, KEY_TYPE, VALUE_TYPE, PAD_TYPE = 0, 1, 2, 3


@dataclass(frozen=True)
class SentenceConfig:
    """Truncation limits (the official fine-tuning values)."""

    max_attr_num: int = 3
    max_attr_length: int = 32
    max_items: int = 50
    max_tokens: int = 1024

    def model_kwargs(self, tokenizer: ItemTokenizer) -> dict:
        """What a Recformer needs to know about these inputs (the data -> model contract)."""
        return {
            "vocab_size": tokenizer.vocab_size,
            "pad_token_id": tokenizer.pad_id,
            "max_items": self.max_items + 1,
            "max_positions": self.max_tokens + tokenizer.pad_id + 1,
        }


def flatten_item(attributes: Mapping[str, str], max_attr_num: int = 3) -> list[tuple[str, str]]:
    """(key, value) pairs in order, empty values skipped, at most `max_attr_num`."""
    pairs = [(str(k), str(v).strip()) for k, v in attributes.items() if v is not None and str(v).strip()]
    return pairs[:max_attr_num]


def item_sentence(attributes: Mapping[str, str], max_attr_num: int = 3) -> str:
    """The flattened sentence as text, e.g. 'title Toy Story year 1995 genre Animation Comedy'."""
    return " ".join(f"{k} {v}" for k, v in flatten_item(attributes, max_attr_num))


@dataclass(frozen=True)
class EncodedItem:
    """One item's tokens: ids, token types (1 key / 2 value) and word starts (for whole-word masking)."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    word_starts: tuple[bool, ...]


class ItemSentenceEncoder:
    """Items -> `EncodedItem`; histories of encoded items -> padded (B, L) tensors."""

    def __init__(self, tokenizer: ItemTokenizer, config: SentenceConfig | None = None):
        self.tokenizer, self.config = tokenizer, config or SentenceConfig()

    def encode_item(self, attributes: Mapping[str, str]) -> EncodedItem:
        ids, types, starts = [], [], []
        limit = self.config.max_attr_length
        for key, value in flatten_item(attributes, self.config.max_attr_num):
            key_ids, key_starts = self.tokenizer.tokenize_words(key)
            value_ids, value_starts = self.tokenizer.tokenize_words(value)
            ids += (key_ids + value_ids)[:limit]
            types += ([KEY_TYPE] * len(key_ids) + [VALUE_TYPE] * len(value_ids))[:limit]
            starts += (key_starts + value_starts)[:limit]
        return EncodedItem(tuple(ids), tuple(types), tuple(starts))

    def sequence(self, items: Sequence[EncodedItem]) -> dict[str, list]:
        """One history (oldest first) as unpadded lists: `<s>` + items most recent first, truncated."""
        cfg = self.config
        ids, types, item_pos, starts = [self.tokenizer.bos_id], [CLS_TYPE], [0], [True]
        for position, item in enumerate(list(items)[::-1][: cfg.max_items], start=1):
            ids += item.input_ids
            types += item.token_type_ids
            item_pos += [position] * len(item.input_ids)
            starts += item.word_starts
        cut = cfg.max_tokens
        return {"input_ids": ids[:cut], "token_type_ids": types[:cut], "item_position_ids": item_pos[:cut],
                "word_starts": starts[:cut]}  # fmt: skip

    def collate(self, histories: Sequence[Sequence[EncodedItem]], keep_word_starts: bool = False) -> dict:
        """Right-padded batch: input_ids, attention_mask, token_type_ids, item_position_ids, global_attention_mask."""
        rows = [self.sequence(h) for h in histories]
        length = max(len(r["input_ids"]) for r in rows)
        pads = {
            "input_ids": self.tokenizer.pad_id,
            "token_type_ids": PAD_TYPE,
            "item_position_ids": self.config.max_items,
            "word_starts": False,
        }
        batch = {
            key: torch.tensor([r[key] + [pad] * (length - len(r[key])) for r in rows], dtype=torch.long)
            for key, pad in pads.items()
        }
        lengths = torch.tensor([len(r["input_ids"]) for r in rows])
        batch["attention_mask"] = (torch.arange(length)[None, :] < lengths[:, None]).long()
        batch["global_attention_mask"] = torch.zeros_like(batch["attention_mask"])
        batch["global_attention_mask"][:, 0] = 1
        starts = batch.pop("word_starts").bool()
        if keep_word_starts:
            batch["word_starts"] = starts
        return batch


class RecformerBatcher:
    """Batches over a tokenized catalogue (`items[i]` is catalogue item i) for every Recformer stage."""

    def __init__(self, encoder: ItemSentenceEncoder, items: Sequence[EncodedItem]):
        self.encoder, self.items = encoder, list(items)

    @classmethod
    def from_catalogue(
        cls, tokenizer: ItemTokenizer, attributes: Sequence[Mapping[str, str]], config: SentenceConfig | None = None
    ) -> RecformerBatcher:
        encoder = ItemSentenceEncoder(tokenizer, config)
        return cls(encoder, [encoder.encode_item(a) for a in attributes])

    def extended(self, attributes: Sequence[Mapping[str, str]]) -> RecformerBatcher:
        """A batcher whose catalogue has new items (text only) appended after the known ones."""
        return RecformerBatcher(self.encoder, self.items + [self.encoder.encode_item(a) for a in attributes])

    def histories(self, histories: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        return self.encoder.collate([[self.items[i] for i in h] for h in histories])

    def item_batches(self, batch_size: int = 64, indices: Sequence[int] | None = None) -> Iterator[dict]:
        """One-item sequences for `Recformer.encode_items` / `refresh_item_table`, in catalogue order."""
        indices = range(len(self.items)) if indices is None else indices
        for start in range(0, len(indices), batch_size):
            yield self.histories([[i] for i in indices[start : start + batch_size]])

    def finetune(self, sequences: Sequence[Sequence[int]], rng: random.Random) -> tuple[dict, torch.Tensor]:
        """(batch, targets): per sequence a target position drawn uniformly, the items before it as history
        (possibly none: then the input is `<s>` alone), as the official FinetuneDataCollator."""
        histories, targets = [], []
        for seq in sequences:
            t = rng.randint(0, len(seq) - 1)
            histories.append(seq[:t])
            targets.append(seq[t])
        return self.histories(histories), torch.tensor(targets)

    def evaluation(self, cases: Sequence[tuple[Sequence[int], int]]) -> tuple[dict, torch.Tensor]:
        """(batch, targets) from (history, target) cases (`domains.recsys.movielens.Split.valid/test`)."""
        return self.histories([h for h, _ in cases]), torch.tensor([t for _, t in cases])

    def pretraining(
        self, sequences: Sequence[Sequence[int]], rng: random.Random, mlm_probability: float = 0.15
    ) -> tuple[dict, dict]:
        """(history batch, next-item batch) as the official PretrainDataCollator: the target is drawn from
        the second half of the sequence; both carry `mlm_input_ids` / `mlm_labels` (whole-word masking)."""
        histories, targets = [], []
        for seq in sequences:
            t = rng.randint((len(seq) - 1) // 2, len(seq) - 1)
            histories.append([self.items[i] for i in seq[:t]])
            targets.append([self.items[seq[t]]])
        out = []
        for group in (histories, targets):
            batch = self.encoder.collate(group, keep_word_starts=True)
            starts = batch.pop("word_starts")
            batch["mlm_input_ids"], batch["mlm_labels"] = mask_whole_words(
                batch["input_ids"], starts, batch["attention_mask"].bool(), self.encoder.tokenizer, rng, mlm_probability
            )
            out.append(batch)
        return out[0], out[1]


def mask_whole_words(
    input_ids: torch.Tensor,
    word_starts: torch.Tensor,
    real: torch.Tensor,
    tokenizer: ItemTokenizer,
    rng: random.Random,
    probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking on whole words: per row pick words until round(p x length) tokens (at least 1), then
    80% `<mask>`, 10% a random non-special token, 10% unchanged; labels are -100 off the picked tokens."""
    masked = input_ids.clone()
    labels = torch.full_like(input_ids, -100)
    generator = torch.Generator().manual_seed(rng.getrandbits(62))
    ordinary = torch.tensor(sorted(set(range(tokenizer.vocab_size)) - tokenizer.special_ids))
    for row in range(input_ids.shape[0]):
        ids, starts = input_ids[row].tolist(), word_starts[row].tolist()
        length = int(real[row].sum())
        words: list[list[int]] = []
        for pos in range(length):
            if ids[pos] in tokenizer.special_ids:
                continue
            if starts[pos] or not words:
                words.append([pos])
            else:
                words[-1].append(pos)
        rng.shuffle(words)
        budget, chosen = max(1, round(length * probability)), []
        for word in words:
            if len(chosen) + len(word) <= budget:
                chosen += word
        if not chosen:
            continue
        index = torch.tensor(sorted(chosen))
        labels[row, index] = input_ids[row, index]
        draw = torch.rand(len(index), generator=generator)
        to_mask, to_random = index[draw < 0.8], index[(draw >= 0.8) & (draw < 0.9)]
        masked[row, to_mask] = tokenizer.mask_id
        picks = torch.randint(len(ordinary), (len(to_random),), generator=generator)
        masked[row, to_random] = ordinary[picks]
    return masked, labels
