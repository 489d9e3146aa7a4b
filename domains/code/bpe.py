"""Byte-level BPE over token values, trained locally with Hugging Face `tokenizers`.

CodeFill (Izadi, Gismondi, Gousios, ICSE 2022) tokenizes values with a byte-level
BPE (the official notebook uses GPT-2's). Ours is trained on the training split's
values, one source token per pre-token: every source token starts with the
byte-level space marker `Ġ`, so a piece tells whether it starts a new source
token (`is_word_start`) and pieces never straddle two tokens. The type of a
source token is copied to each of its pieces, which keeps the two streams
aligned. Structure tokens and literal placeholders (`<NEWLINE>`, `<STR_LIT>`, ...)
are single special ids; `<PAD>` is id 0.

Saved as the `tokenizers` JSON (`tokenizer.json`); `load(save(t))` gives the same
JSON text and the same ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import ZooError
from zoo.io import write_text_atomic

from .streams import SPECIAL_VALUES, STRUCTURE_TYPES, TYPE_IDS, CodeStreams

PAD_VALUE = "<PAD>"
SPECIAL_TOKENS = (PAD_VALUE, *SPECIAL_VALUES)
TOKENIZER_FILE = "tokenizer.json"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (what byte-level BPE pieces are made of)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


_UNICODE_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


@dataclass
class EncodedFile:
    """One file's pieces, aligned: `values[i]` (piece id) has type `types[i]` (type id).

    cardinal[i]: piece i is the first piece of a token at a cardinal point.
    statement[i]: piece i continues a statement (any piece of a logical line but its first, the line's
        NEWLINE included), the targets of the statement-completion task.
    word_index[i]: the source token piece i belongs to.
    """

    path: str
    values: list[int]
    types: list[int]
    cardinal: list[bool]
    statement: list[bool]
    word_index: list[int]
    words: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


class ValueTokenizer:
    """Byte-level BPE for source-token values (wraps a `tokenizers.Tokenizer`)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special_ids = {tok: tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS}
        missing = [tok for tok, i in self.special_ids.items() if i is None]
        if missing or self.special_ids[PAD_VALUE] != 0:
            raise ZooError(
                f"tokenizer lacks the CodeFill special tokens {missing or [PAD_VALUE + ' as id 0']}; "
                "train it with ValueTokenizer.train"
            )
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.pad_id = 0
        self._cache: dict[str, list[int]] = {}
        self.piece_bytes: list[bytes] = []
        for i in range(self.vocab_size):
            piece = tokenizer.id_to_token(i) or ""
            if piece in self.special_ids:
                self.piece_bytes.append(b"")
            else:
                self.piece_bytes.append(bytes(_UNICODE_TO_BYTE.get(c, 0x3F) for c in piece))
        specials = set(self.special_ids.values())
        # A piece starts a source token when it carries the prefix space; specials are whole tokens.
        self.is_word_start = [i in specials or self.piece_bytes[i][:1] == b" " for i in range(self.vocab_size)]

    # -------------------------------------------------------------------------- training and I/O
    @classmethod
    def train(
        cls, values: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2, show_progress: bool = False
    ) -> ValueTokenizer:
        """Train on source-token values (special values are skipped: they have their own ids)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 256 + len(SPECIAL_TOKENS):
            raise ZooError(f"vocab_size={vocab_size} is below the 256 bytes + {len(SPECIAL_TOKENS)} specials; raise it")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        specials = set(SPECIAL_TOKENS)
        tokenizer.train_from_iterator(_batches(v for v in values if v not in specials), trainer=trainer)
        return cls(tokenizer)

    def to_str(self) -> str:
        return self.tokenizer.to_str(pretty=True)

    @classmethod
    def from_str(cls, text: str) -> ValueTokenizer:
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_str(text))
        except Exception as exc:
            if isinstance(exc, ZooError):
                raise
            raise ZooError(f"not a tokenizers JSON: {exc}; save tokenizers with ValueTokenizer.save") from exc

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        return write_text_atomic(path, self.to_str())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ValueTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise ZooError(f"{path}: no tokenizer file; train one (ValueTokenizer.train) or point to {TOKENIZER_FILE}")
        return cls.from_str(path.read_text())

    # -------------------------------------------------------------------------- encoding
    def encode_word(self, word: str) -> list[int]:
        """Piece ids of one source-token value (special values are one id)."""
        if word in self.special_ids:
            return [self.special_ids[word]]
        ids = self._cache.get(word)
        if ids is None:
            ids = self.tokenizer.encode(word).ids
            self._cache[word] = ids
        return ids

    def _warm(self, words: Iterable[str]) -> None:
        todo = sorted({w for w in words if w not in self._cache and w not in self.special_ids})
        if todo:
            for word, enc in zip(todo, self.tokenizer.encode_batch(todo)):
                self._cache[word] = enc.ids

    def encode_streams(self, streams: CodeStreams, path: str = "") -> EncodedFile:
        """Pieces of a file's streams, with the type, cardinal and statement flags of each piece."""
        tokens = streams.tokens
        self._warm(t.value for t in tokens)
        values, types, cardinal, statement, word_index = [], [], [], [], []
        structure_ids = {TYPE_IDS[t] for t in STRUCTURE_TYPES if t != "NEWLINE"}
        for w, tok in enumerate(tokens):
            type_id = TYPE_IDS[tok.type]
            pos = streams.statement_pos[w]
            for k, piece in enumerate(self.encode_word(tok.value)):
                values.append(piece)
                types.append(type_id)
                cardinal.append(streams.cardinal[w] and k == 0)
                statement.append(type_id not in structure_ids and (pos > 0 or k > 0))
                word_index.append(w)
        return EncodedFile(path, values, types, cardinal, statement, word_index, [t.value for t in tokens])

    # -------------------------------------------------------------------------- decoding
    def decode_word(self, ids: Iterable[int]) -> str:
        """The value spelled by the pieces of one source token (specials by name)."""
        out = b""
        for i in ids:
            if self.piece_bytes[i] == b"":
                return self.tokenizer.id_to_token(i)
            out += self.piece_bytes[i]
        return out[1:].decode("utf-8", errors="replace") if out[:1] == b" " else out.decode("utf-8", "replace")

    def split_words(self, ids: Iterable[int]) -> list[list[int]]:
        """Group piece ids into source tokens at word starts."""
        words: list[list[int]] = []
        for i in ids:
            if self.is_word_start[i] or not words:
                words.append([i])
            else:
                words[-1].append(i)
        return words

    def decode_words(self, ids: Iterable[int]) -> list[str]:
        return [self.decode_word(w) for w in self.split_words(ids)]

    def id(self, special: str) -> int:
        return self.special_ids[special]


def _batches(values: Iterable[str], size: int = 4096) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
