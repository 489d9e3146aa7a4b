"""SMILES tokenizer: segmentation of tricky SMILES, exact round trips, special tokens, persistence."""

from __future__ import annotations

import pytest
from rdkit import Chem

from domains.chem.tokenizer import BOS, EOS, PAD, SEP, UNK, SmilesTokenizer, split_smiles
from zoo.errors import DataError, ZooError

TRICKY = {
    "C[C@@H](N)C(=O)O": ["C", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O"],  # chirality in brackets
    "F/C=C/F": ["F", "/", "C", "=", "C", "/", "F"],  # E/Z bonds
    "C\\C=C\\C": ["C", "\\", "C", "=", "C", "\\", "C"],
    "[2H]C([2H])([2H])Cl": ["[2H]", "C", "(", "[2H]", ")", "(", "[2H]", ")", "Cl"],  # isotopes, Cl not C + l
    "[O-][N+](=O)c1ccccc1Br": ["[O-]", "[N+]", "(", "=", "O", ")", "c", "1", "c", "c", "c", "c", "c", "1", "Br"],
    "C1CC%10CC1CCCCCCC%10": ["C", "1", "C", "C", "%10", "C", "C", "1"] + ["C"] * 7 + ["%10"],  # two-digit ring bond
    "C%(123)CC%(123)": ["C", "%(123)", "C", "C", "%(123)"],  # RDKit's three-digit form
    "[Na+].[Cl-]": ["[Na+]", ".", "[Cl-]"],  # salts
    "c1ccc2c(c1)[se]c1ccccc12": [
        "c",
        "1",
        "c",
        "c",
        "c",
        "2",
        "c",
        "(",
        "c",
        "1",
        ")",
        "[se]",
        "c",
        "1",
        "c",
        "c",
        "c",
        "c",
        "c",
        "1",
        "2",
    ],
    "CC(C)(C)[Si](C)(C)O": ["C", "C", "(", "C", ")", "(", "C", ")", "[Si]", "(", "C", ")", "(", "C", ")", "O"],
    "[13CH4]": ["[13CH4]"],
    "C#N": ["C", "#", "N"],
    "B(O)O": ["B", "(", "O", ")", "O"],
    "*C(=O)O": ["*", "C", "(", "=", "O", ")", "O"],
    "c1cc[nH]c1": ["c", "1", "c", "c", "[nH]", "c", "1"],
    "[NH3+][C@@H](C)C(=O)[O-]": ["[NH3+]", "[C@@H]", "(", "C", ")", "C", "(", "=", "O", ")", "[O-]"],  # zwitterion
    "c1cc[nH+]cc1": ["c", "1", "c", "c", "[nH+]", "c", "c", "1"],  # charged aromatic
    "[Fe+2].[O-2]": ["[Fe+2]", ".", "[O-2]"],  # charge counts
    "N[C@H]1CC[C@@](C)(O)CC1": ["N", "[C@H]", "1", "C", "C", "[C@@]", "(", "C", ")", "(", "O", ")", "C", "C", "1"],
    "c1ccoc1.c1ccsc1.c1cc[se]c1": [
        "c",
        "1",
        "c",
        "c",
        "o",
        "c",
        "1",
        ".",
        "c",
        "1",
        "c",
        "c",
        "s",
        "c",
        "1",
        ".",
        "c",
        "1",
        "c",
        "c",
        "[se]",
        "c",
        "1",
    ],  # aromatic o, s, [se]
    "CSc1ccccc1": ["C", "S", "c", "1", "c", "c", "c", "c", "c", "1"],  # S then aromatic c, not Sc
    "BrC(Cl)=C(Br)Cl": ["Br", "C", "(", "Cl", ")", "=", "C", "(", "Br", ")", "Cl"],
    "C%99CC%99": ["C", "%99", "C", "C", "%99"],
}


@pytest.mark.parametrize("smiles,tokens", TRICKY.items())
def test_split_matches_hand_segmentation(smiles, tokens):
    assert split_smiles(smiles) == tokens
    assert "".join(tokens) == smiles


def test_round_trip_over_every_tricky_smiles():
    tokenizer = SmilesTokenizer.from_smiles(TRICKY)
    for smiles in TRICKY:
        ids = tokenizer.encode(smiles)
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
        assert tokenizer.decode(ids) == smiles
        assert Chem.MolFromSmiles(tokenizer.decode(ids)) is not None


def test_special_tokens_come_first_and_vocab_is_order_independent():
    a = SmilesTokenizer.from_smiles(["CCO", "c1ccccc1Cl"])
    b = SmilesTokenizer.from_smiles(["c1ccccc1Cl", "CCO"])
    assert a.tokens == b.tokens
    assert a.tokens[:5] == [PAD, BOS, EOS, SEP, UNK] and a.pad_id == 0
    assert "Cl" in a.tokens and "l" not in a.tokens


def test_unknown_token_maps_to_unk_and_is_dropped_on_decode():
    tokenizer = SmilesTokenizer.from_smiles(["CCO"])
    ids = tokenizer.encode("CC[Se]O", bos=False, eos=False)
    assert ids[2] == tokenizer.unk_id
    assert tokenizer.decode(ids) == "CCO"


def test_context_encoding_separates_molecules():
    tokenizer = SmilesTokenizer.from_smiles(["CCO", "CN"])
    closed = tokenizer.encode_context(["CCO", "CN"])
    assert closed == [
        tokenizer.bos_id,
        *tokenizer.encode("CCO", False, False),
        tokenizer.sep_id,
        *tokenizer.encode("CN", False, False),
        tokenizer.eos_id,
    ]
    assert tokenizer.encode_context(["CCO", "CN"], close=False)[-1] == tokenizer.sep_id


def test_unexpected_character_names_position():
    with pytest.raises(DataError, match=r"unexpected character 'X' at position 2"):
        split_smiles("CCX", where="mols.smi:7")
    with pytest.raises(DataError, match="mols.smi:7"):
        split_smiles("CC[NH", where="mols.smi:7")  # an unclosed bracket atom


def test_save_and_load(tmp_path):
    tokenizer = SmilesTokenizer.from_smiles(TRICKY)
    tokenizer.save(tmp_path / "tokenizer.json")
    assert SmilesTokenizer.load(tmp_path).tokens == tokenizer.tokens  # a model folder
    assert SmilesTokenizer.load(tmp_path / "tokenizer.json").tokens == tokenizer.tokens
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ZooError, match="not a longzoo SMILES tokenizer"):
        SmilesTokenizer.load(tmp_path / "bad.json")
    with pytest.raises(ZooError, match="no tokenizer"):
        SmilesTokenizer.load(tmp_path / "missing")
