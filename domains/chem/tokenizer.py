"""SMILES tokenizer: the regex of Schwaller et al. plus special tokens, saved with the model.

One token per atom or bond symbol: bracket atoms (`[nH]`, `[C@@H]`, `[O-]`) are
single tokens, so are two-letter elements outside brackets (`Cl`, `Br`) and
two-digit ring closures (`%10`, `%(123)`). Segmentation follows the regex of
Schwaller et al., "Molecular Transformer" (ACS Cent. Sci. 2019), extended with
the three-digit `%(nnn)` ring bonds RDKit writes; every character of a SMILES
must be covered, so a round trip `decode(encode(s)) == s` holds for any string
the tokenizer accepts.

Special tokens: `<pad>` (0), `<bos>`, `<eos>`, `<sep>` (between the molecules of
an in-context prompt) and `<unk>` (a token unseen when the vocabulary was built).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from zoo.errors import DataError, ZooError
from zoo.io import write_text_atomic

PAD, BOS, EOS, SEP, UNK = "<pad>", "<bos>", "<eos>", "<sep>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, SEP, UNK)

# Alternatives are tried left to right, so two-letter symbols come before their one-letter prefixes.
SMILES_REGEX = re.compile(
    r"(\[[^\[\]]+\]|Br|Cl|N|O|S|P|F|I|B|C|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$"
    r"|%\(\d+\)|%\d{2}|\d)"
)


def split_smiles(smiles: str, where: str = "") -> list[str]:
    """Split one SMILES into tokens; raises DataError naming the first character no token covers."""
    tokens, position = [], 0
    for match in SMILES_REGEX.finditer(smiles):
        if match.start() != position:
            break
        tokens.append(match.group())
        position = match.end()
    if position != len(smiles):
        at = f"{where}: " if where else ""
        raise DataError(
            f"{at}SMILES {smiles!r} has an unexpected character {smiles[position]!r} at position {position}; "
            "write atoms outside the organic subset in brackets (e.g. [Na], [se])"
        )
    return tokens


class SmilesTokenizer:
    """Maps SMILES to token ids and back; the vocabulary is a list, id = index."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            tokens = list(SPECIAL_TOKENS) + [t for t in tokens if t not in SPECIAL_TOKENS]
        if len(set(tokens)) != len(tokens):
            raise ZooError("tokenizer vocabulary has duplicate tokens; rebuild it from the data")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id = (self.index[t] for t in SPECIAL_TOKENS)

    @classmethod
    def from_smiles(cls, smiles: Iterable[str]) -> SmilesTokenizer:
        """Vocabulary of every token in `smiles`, sorted so that it does not depend on data order."""
        seen: set[str] = set()
        for s in smiles:
            seen.update(split_smiles(s))
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, smiles: str, bos: bool = True, eos: bool = True) -> list[int]:
        ids = [self.index.get(t, self.unk_id) for t in split_smiles(smiles)]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_context(self, molecules: Sequence[str], close: bool = True) -> list[int]:
        """`<bos> m1 <sep> m2 ... mk <eos>`; with `close=False` the end is `<sep>` (a prompt to continue)."""
        ids = [self.bos_id]
        for i, smiles in enumerate(molecules):
            ids += self.encode(smiles, bos=False, eos=False)
            last = i == len(molecules) - 1
            ids.append(self.eos_id if last and close else self.sep_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Tokens joined, special tokens dropped (the caller splits at `<sep>`/`<eos>` first)."""
        specials = {self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id}
        return "".join(self.tokens[i] for i in ids if i not in specials)

    # ---------------------------------------------------------------- persistence

    def to_json(self) -> str:
        return json.dumps({"type": "smiles_regex", "tokens": self.tokens}, indent=1)

    def save(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, self.to_json())

    @classmethod
    def from_json(cls, text: str, where: str = "tokenizer") -> SmilesTokenizer:
        try:
            spec = json.loads(text)
            return cls(spec["tokens"])
        except (ValueError, KeyError, TypeError) as err:
            raise ZooError(
                f"{where}: not a longzoo SMILES tokenizer file ({err}); export the model again with `zoo chem export`"
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> SmilesTokenizer:
        """From a `tokenizer.json`, or a folder holding one (a pretrained model's vocabulary comes with `weights=`)."""
        path = Path(path)
        path = path / "tokenizer.json" if path.is_dir() else path
        if not path.is_file():
            raise ZooError(
                f"no tokenizer file at {path}; give a tokenizer.json, or weights=<model> to use a model's vocabulary"
            )
        return cls.from_json(path.read_text(), where=str(path))
