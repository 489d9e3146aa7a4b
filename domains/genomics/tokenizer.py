"""Character tokenizers for DNA (HyenaDNA's vocabulary) and protein (Prot-xLSTM's), saved with the model.

DNA ids are those of the official HyenaDNA `CharacterTokenizer` (Nguyen et al.,
NeurIPS 2023; HazyResearch/hyena-dna), so released checkpoints line up:
`[CLS]`0 `[SEP]`1 `[BOS]`2 `[MASK]`3 `[PAD]`4 `[RESERVED]`5 `[UNK]`6 A7 C8 G9 T10 N11,
padding on the left, `[SEP]` appended when special tokens are added. Unlike the
official tokenizer (which maps lower case to `[UNK]`), input is upper-cased first:
soft-masked repeats in reference genomes are lower case and are still sequence.
IUPAC ambiguity codes (R Y S W K M B D H V) follow an explicit policy,
`on_ambiguous`: `n` maps them to N, `error` rejects the record.

Protein ids are Prot-xLSTM's (Schmidinger et al., ICLR 2025, ml-jku/Prot-xLSTM):
`<cls>`0 `<pad>`1 `<eos>`2 `<unk>`3, 25 residue letters and gap symbols, `<mask>`32
and five span masks, 38 in all; `<cls>` is prepended as in the official encoder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from zoo.errors import DataError, ZooError
from zoo.models.bio_xlstm import strand_index

DNA_VOCAB = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N")
PROTEIN_VOCAB = (
    "<cls>",
    "<pad>",
    "<eos>",
    "<unk>",
    "L",
    "A",
    "G",
    "V",
    "S",
    "E",
    "R",
    "T",
    "I",
    "D",
    "P",
    "K",
    "Q",
    "N",
    "F",
    "Y",
    "M",
    "H",
    "W",
    "C",
    "X",
    "B",
    "U",
    "Z",
    "O",
    ".",
    "-",
    "<null_1>",
    "<mask>",
    "<mask-1>",
    "<mask-2>",
    "<mask-3>",
    "<mask-4>",
    "<mask-5>",
)
IUPAC_AMBIGUOUS = "RYSWKMBDHV"
DNA_COMPLEMENT = dict(zip("ACGTNRYSWKMBDHV", "TGCANYRSWMKVHDB"))
TOKENIZER_FILE = "tokenizer.json"


class CharTokenizer:
    """One id per character; `vocab` is a list, id = index.

    `encode` upper-cases, checks every character and returns int64 ids; `pad` makes
    a `(B, L)` batch and its mask (True on real tokens) with pads on `padding_side`.
    """

    kind = "char"
    pad_token = unk_token = mask_token = cls_token = sep_token = ""

    def __init__(self, vocab: Sequence[str], padding_side: str = "left", add_special_tokens: bool = True):
        if padding_side not in ("left", "right"):
            raise ZooError(f"padding_side={padding_side!r}; choose left (HyenaDNA's) or right")
        self.vocab = tuple(vocab)
        self.ids = {token: i for i, token in enumerate(self.vocab)}
        self.padding_side, self.add_special_tokens = padding_side, add_special_tokens
        self._table = np.full(256, -1, dtype=np.int64)  # byte -> id; -1 marks a character to look at
        for token, i in self.ids.items():
            if len(token) == 1:
                self._table[ord(token)] = i

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return self.ids[self.pad_token]

    @property
    def mask_id(self) -> int:
        return self.ids[self.mask_token]

    def special_ids(self) -> list[int]:
        return [i for i, token in enumerate(self.vocab) if len(token) > 1]

    def _refuse(self, seq: str, codes: np.ndarray, where: str) -> NoReturn:
        position = int(np.flatnonzero(self._table[codes] < 0)[0])
        raise DataError(
            f"{where or 'sequence'}: illegal character {seq[position]!r} at position {position + 1}; "
            f"{self.describe_alphabet()}; fix or remove the record"
        )

    def describe_alphabet(self) -> str:
        return "allowed: " + " ".join(t for t in self.vocab if len(t) == 1)

    def encode(self, seq: str, where: str = "", special_tokens: bool | None = None) -> np.ndarray:
        """Ids of `seq` (upper-cased); `where` (file and record) goes into the error message."""
        try:
            codes = np.frombuffer(seq.upper().encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError:
            bad = next(i for i, c in enumerate(seq) if ord(c) > 127)
            raise DataError(
                f"{where or 'sequence'}: non-ASCII character {seq[bad]!r} at position {bad + 1}; "
                f"{self.describe_alphabet()}"
            ) from None
        ids = self._table[codes]
        if (ids < 0).any():
            self._refuse(seq.upper(), codes, where)
        use_special = self.add_special_tokens if special_tokens is None else special_tokens
        return self.with_special_tokens(ids) if use_special else ids

    def with_special_tokens(self, ids: np.ndarray) -> np.ndarray:
        return ids

    def has_cls(self) -> bool:
        """Whether encoded sequences start with a classification token (`cls` pooling reads it)."""
        return False

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return "".join(self.vocab[i] for i in ids if 0 <= i < len(self.vocab) and len(self.vocab[i]) == 1)

    def pad(
        self, sequences: Sequence[np.ndarray | Sequence[int]], length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, L)` long ids and `(B, L)` bool mask, L = `length` or the longest sequence."""
        length = length or max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.bool)
        for row, seq in enumerate(sequences):
            n = min(len(seq), length)
            span = slice(length - n, length) if self.padding_side == "left" else slice(0, n)
            ids[row, span] = torch.as_tensor(np.asarray(seq[:n]), dtype=torch.long)
            mask[row, span] = True
        return ids, mask

    # ------------------------------------------------------------------ saving

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "vocab": list(self.vocab),
            "padding_side": self.padding_side,
            "add_special_tokens": self.add_special_tokens,
        }

    def to_json(self) -> str:
        return json.dumps(self.config(), indent=2) + "\n"


class DNATokenizer(CharTokenizer):
    """HyenaDNA's character tokenizer. `on_ambiguous`: `n` (IUPAC codes -> N) or `error`."""

    kind = "dna"
    pad_token, unk_token, mask_token, cls_token, sep_token = "[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]"

    def __init__(
        self,
        padding_side: str = "left",
        add_special_tokens: bool = True,
        on_ambiguous: str = "n",
        prepend_cls: bool = False,
        vocab: Sequence[str] = DNA_VOCAB,
    ):
        if tuple(vocab) != DNA_VOCAB:
            raise ZooError("a DNA tokenizer must use HyenaDNA's vocabulary; this tokenizer.json holds another one")
        if on_ambiguous not in ("n", "error"):
            raise ZooError(f"on_ambiguous={on_ambiguous!r}; choose n (IUPAC codes become N) or error")
        super().__init__(vocab, padding_side, add_special_tokens)
        self.on_ambiguous, self.prepend_cls = on_ambiguous, prepend_cls
        if on_ambiguous == "n":
            for code in IUPAC_AMBIGUOUS:
                self._table[ord(code)] = self.ids["N"]

    def describe_alphabet(self) -> str:
        codes = (
            f", IUPAC codes {IUPAC_AMBIGUOUS} (-> N)"
            if self.on_ambiguous == "n"
            else f"; IUPAC codes {IUPAC_AMBIGUOUS} are refused (data.on_ambiguous=error; use n to read them as N)"
        )
        return f"DNA may hold A C G T N{codes}, in either case"

    def with_special_tokens(self, ids: np.ndarray) -> np.ndarray:
        ids = np.append(ids, self.ids[self.sep_token])  # the official tokenizer appends [SEP] only
        return np.insert(ids, 0, self.ids[self.cls_token]) if self.prepend_cls else ids  # for `cls` pooling

    def complement_map(self) -> list[int]:
        """Id of each token's complement (itself for N and special tokens): RC-equivariant models' `complement_map`."""
        return [self.ids[DNA_COMPLEMENT[t]] if t in "ACGT" else i for i, t in enumerate(self.vocab)]

    def reverse_complement_ids(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The other strand of a padded batch, equal to encoding each reverse-complemented sequence:
        bases complemented and reversed, special tokens and padding in place."""
        fixed = torch.tensor(self.strand_fixed_ids(), device=ids.device)
        complement = torch.tensor(self.complement_map(), device=ids.device)
        return complement[ids.gather(1, strand_index(ids, mask, fixed))]

    def strand_fixed_ids(self) -> list[int]:
        """Tokens that keep their place on the other strand (the `rc_fixed_ids` of RC-equivariant models):
        [CLS], [SEP], [BOS], [PAD], [RESERVED]; [MASK] and [UNK] stand where a base is, so they move with it."""
        return [self.ids[t] for t in ("[CLS]", "[SEP]", "[BOS]", "[PAD]", "[RESERVED]")]

    def has_cls(self) -> bool:
        return self.add_special_tokens and self.prepend_cls

    def config(self) -> dict:
        return {**super().config(), "on_ambiguous": self.on_ambiguous, "prepend_cls": self.prepend_cls}


class ProteinTokenizer(CharTokenizer):
    """Prot-xLSTM's amino-acid vocabulary; `<cls>` is prepended when special tokens are added."""

    kind = "protein"
    pad_token, unk_token, mask_token, cls_token, sep_token = "<pad>", "<unk>", "<mask>", "<cls>", "<eos>"

    def __init__(
        self, padding_side: str = "right", add_special_tokens: bool = True, vocab: Sequence[str] = PROTEIN_VOCAB
    ):
        if tuple(vocab) != PROTEIN_VOCAB:
            raise ZooError(
                "a protein tokenizer must use Prot-xLSTM's vocabulary; this tokenizer.json holds another one"
            )
        super().__init__(vocab, padding_side, add_special_tokens)

    def describe_alphabet(self) -> str:
        return "protein may hold the 20 amino acids, X B U Z O and the gaps . -"

    def with_special_tokens(self, ids: np.ndarray) -> np.ndarray:
        return np.insert(ids, 0, self.ids[self.cls_token])

    def has_cls(self) -> bool:
        return self.add_special_tokens


def reverse_complement(seq: str) -> str:
    """Reverse complement of upper- or lower-case DNA with IUPAC codes (case is kept)."""
    table = str.maketrans(
        "".join(DNA_COMPLEMENT) + "".join(DNA_COMPLEMENT).lower(),
        "".join(DNA_COMPLEMENT.values()) + "".join(DNA_COMPLEMENT.values()).lower(),
    )
    return seq.translate(table)[::-1]


def make_tokenizer(alphabet: str = "dna", **kwargs) -> CharTokenizer:
    kinds = {"dna": DNATokenizer, "protein": ProteinTokenizer}
    if alphabet not in kinds:
        raise ZooError(f"alphabet={alphabet!r}; choose dna or protein")
    return kinds[alphabet](**kwargs)


def tokenizer_from_config(config: dict) -> CharTokenizer:
    config = dict(config)
    return make_tokenizer(config.pop("kind", "dna"), **config)


def load_tokenizer(source: str | os.PathLike) -> CharTokenizer:
    """From a `tokenizer.json` or a model folder holding one (written by `zoo genomics export`)."""
    path = Path(source)
    path = path / TOKENIZER_FILE if path.is_dir() else path
    if not path.is_file():
        raise ZooError(f"no tokenizer at {source}: give a tokenizer.json or a folder from `zoo genomics export`")
    try:
        return tokenizer_from_config(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ZooError(f"{path} is not a genomics tokenizer.json ({err}); re-export the model") from None
