"""Genomics tokenizers against the official vocabularies: HyenaDNA (DNA) and Prot-xLSTM (protein)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from domains.genomics.tokenizer import DNATokenizer, ProteinTokenizer, load_tokenizer, reverse_complement
from zoo.errors import DataError, ZooError

# Restated from HazyResearch/hyena-dna CharacterTokenizer(characters=["A", "C", "G", "T", "N"]):
# special tokens first, then one id per character from 7; [SEP] appended; padding on the left.
HYENADNA_IDS = {
    "[CLS]": 0,
    "[SEP]": 1,
    "[BOS]": 2,
    "[MASK]": 3,
    "[PAD]": 4,
    "[RESERVED]": 5,
    "[UNK]": 6,
    **{ch: i + 7 for i, ch in enumerate("ACGTN")},
}
# Restated from ml-jku/Prot-xLSTM protxlstm/utils.py AA_TO_ID (ProtMamba's alphabet) with MASK_TO_ID.
PROT_XLSTM_IDS = {
    "<cls>": 0,
    "<pad>": 1,
    "<eos>": 2,
    "<unk>": 3,
    **{aa: i + 4 for i, aa in enumerate("LAGVSERTIDPKQNFYMHWCXBUZO")},
    ".": 29,
    "-": 30,
    "<null_1>": 31,
    "<mask>": 32,
    **{f"<mask-{k}>": 32 + k for k in range(1, 6)},
}


def hyenadna_reference(seq: str, length: int) -> list[int]:
    """What the official tokenizer returns for upper-case input with add_special_tokens and left padding."""
    ids = [HYENADNA_IDS.get(ch, HYENADNA_IDS["[UNK]"]) for ch in seq] + [HYENADNA_IDS["[SEP]"]]
    return [HYENADNA_IDS["[PAD]"]] * (length - len(ids)) + ids


def test_dna_ids_match_hyenadna():
    tokenizer = DNATokenizer()
    assert {t: i for i, t in enumerate(tokenizer.vocab)} == HYENADNA_IDS and len(tokenizer) == 12
    seqs = ["ACGTN", "GATTACA", "TTN"]
    ids, mask = tokenizer.pad([tokenizer.encode(s) for s in seqs])
    assert ids.tolist() == [hyenadna_reference(s, 8) for s in seqs]
    assert mask.tolist() == [[i >= 8 - len(s) - 1 for i in range(8)] for s in seqs]


def test_cls_first_is_an_option():
    assert DNATokenizer(prepend_cls=True).encode("AC").tolist() == [0, 7, 8, 1]
    assert DNATokenizer(prepend_cls=True).has_cls() and not DNATokenizer().has_cls()
    assert not DNATokenizer(prepend_cls=True, add_special_tokens=False).has_cls()


def test_lower_case_is_upper_cased_and_round_trips():
    tokenizer = DNATokenizer(add_special_tokens=False)
    assert tokenizer.encode("acgtNn").tolist() == [7, 8, 9, 10, 11, 11]
    assert tokenizer.decode(tokenizer.encode("gattaca")) == "GATTACA"


def test_iupac_policy():
    assert DNATokenizer(add_special_tokens=False).encode("ARYKMSWBDHV").tolist() == [7] + [11] * 10
    strict = DNATokenizer(on_ambiguous="error")
    with pytest.raises(
        DataError, match=r"seqs.fa: record 'r1': illegal character 'R' at position 3.*on_ambiguous=error"
    ):
        strict.encode("ACRGT", where="seqs.fa: record 'r1'")
    with pytest.raises(ZooError, match="on_ambiguous"):
        DNATokenizer(on_ambiguous="drop")


@pytest.mark.parametrize("seq,char", [("ACGU", "U"), ("AC-GT", "-"), ("ACG T", " "), ("ACGé", "é")])
def test_illegal_characters_name_the_record(seq, char):
    with pytest.raises(DataError, match=rf"x.fa: record 'r7': (illegal|non-ASCII) character {char!r}"):
        DNATokenizer().encode(seq, where="x.fa: record 'r7'")


def test_right_padding_option():
    tokenizer = DNATokenizer(padding_side="right", add_special_tokens=False)
    ids, mask = tokenizer.pad([tokenizer.encode("AC"), tokenizer.encode("ACGT")])
    assert ids.tolist() == [[7, 8, 4, 4], [7, 8, 9, 10]] and mask.tolist() == [[True, True, False, False], [True] * 4]


def test_complement_map_and_reverse_complement():
    tokenizer = DNATokenizer(add_special_tokens=False)
    complement = np.array(tokenizer.complement_map())
    seq = "AACGTTGCN"
    assert tokenizer.decode(complement[tokenizer.encode(seq)][::-1]) == reverse_complement(seq) == "NGCAACGTT"
    assert reverse_complement("acgR") == "Ycgt"
    config = yaml.safe_load(
        (Path(__file__).parent.parent / "domains/genomics/configs/model/dna_xlstm_rc.yaml").read_text()
    )
    assert config["kwargs"]["complement_map"] == tokenizer.complement_map()
    assert config["kwargs"]["rc_fixed_ids"] == tokenizer.strand_fixed_ids() == [0, 1, 2, 4, 5]


def test_protein_ids_match_prot_xlstm():
    tokenizer = ProteinTokenizer()
    assert {t: i for i, t in enumerate(tokenizer.vocab)} == PROT_XLSTM_IDS and len(tokenizer) == 38
    assert tokenizer.encode("mkV-").tolist() == [0, 20, 15, 7, 30]  # <cls> first, as Prot-xLSTM's encoder
    with pytest.raises(DataError, match="illegal character 'J'"):
        tokenizer.encode("MJK", where="p.fa: record 'p1'")


def test_saved_and_loaded(tmp_path):
    tokenizer = DNATokenizer(padding_side="right", on_ambiguous="error")
    (tmp_path / "tokenizer.json").write_text(tokenizer.to_json())
    again = load_tokenizer(tmp_path)
    assert again.config() == tokenizer.config() and isinstance(again, DNATokenizer)
    (tmp_path / "p.json").write_text(ProteinTokenizer().to_json())
    assert isinstance(load_tokenizer(tmp_path / "p.json"), ProteinTokenizer)
    with pytest.raises(ZooError, match="no tokenizer"):
        load_tokenizer(tmp_path / "missing")
