"""The item-text tokenizer: byte-level BPE trained locally with `tokenizers` (nothing downloads).

Recformer (Li et al., KDD 2023) uses Longformer's RoBERTa byte-level BPE. We train the same kind of
tokenizer on the catalogue's text, with the special tokens at RoBERTa's ids (`<s>` 0, `<pad>` 1, `</s>` 2,
`<unk>` 3; `<mask>` 4 here), so the model's padding-based token positions work as in the release. Byte
level means any new item text encodes without unknown tokens (zero-shot items). `from_bpe_files` reads
the official `vocab.json` + `merges.txt` of `allenai/longformer-base-4096` to run a converted checkpoint.

Saved as the `tokenizers` JSON string; `from_json(to_json())` round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from zoo.errors import ZooError

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
TOKENIZER_FILE = "tokenizer.json"


class ItemTokenizer:
    """A `tokenizers.Tokenizer` plus the special ids Recformer needs (bos, pad, eos, unk, mask)."""

    def __init__(self, tokenizer: Tokenizer):
        ids = {name: tokenizer.token_to_id(name) for name in SPECIAL_TOKENS}
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise ZooError(f"the tokenizer lacks the special tokens {missing}; it must define {list(SPECIAL_TOKENS)}")
        self.tokenizer = tokenizer
        self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id = (ids[n] for n in SPECIAL_TOKENS)
        self.special_ids = frozenset(ids.values())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def tokenize(self, text: str) -> list[int]:
        """Ids of `text`, no special tokens added (each key and each value is tokenized on its own)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def tokenize_words(self, text: str) -> tuple[list[int], list[bool]]:
        """Ids and, per id, whether it starts a word (for whole-word masking)."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        starts, previous = [], None
        for word in encoding.word_ids:
            starts.append(word is None or word != previous)
            previous = word
        return encoding.ids, starts

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids))

    # ------------------------------------------------------------------ building and saving

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> ItemTokenizer:
        """Train a byte-level BPE on `texts` (keys and values of the catalogue)."""
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer)

    @classmethod
    def from_bpe_files(cls, vocab_json: str | Path, merges_txt: str | Path) -> ItemTokenizer:
        """The official RoBERTa/Longformer tokenizer from its `vocab.json` and `merges.txt`."""
        try:
            tokenizer = Tokenizer(models.BPE.from_file(str(vocab_json), str(merges_txt)))
        except Exception as err:
            raise ZooError(f"cannot read BPE files {vocab_json}, {merges_txt}: {str(err).splitlines()[0]}") from None
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
        return cls(tokenizer)

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str, where: str = "tokenizer.json") -> ItemTokenizer:
        try:
            return cls(Tokenizer.from_str(text))
        except ZooError:
            raise
        except Exception as err:
            raise ZooError(f"{where} is not a tokenizers JSON file: {str(err).splitlines()[0]}") from None

    def save(self, path: str | Path) -> None:
        """Write the JSON atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ItemTokenizer:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ZooError(f"cannot read tokenizer {path}: {err.strerror}") from None
        return cls.from_json(text, str(path))
