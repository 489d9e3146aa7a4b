"""Molecule readers, bad input, embedded data, splits and the datamodules."""

from __future__ import annotations

import csv
import gzip
import logging
import math

import pytest
import torch
from rdkit import Chem

from domains.chem.data import PropertyDataModule, SmilesDataModule
from domains.chem.embedded import load_embedded
from domains.chem.readers import read_molecules
from domains.chem.splits import murcko_scaffold, random_split, scaffold_split
from domains.chem.tokenizer import SmilesTokenizer
from zoo.errors import DataError, ZooError

MOLECULES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "OCC", "C1CCNCC1", "Clc1ccccc1"]  # OCC duplicates CCO


def write(path, text, compress=False):
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def sdf_text(records):
    """An SDF with one record per (smiles, {field: value})."""
    blocks = []
    for smiles, fields in records:
        mol = Chem.MolFromSmiles(smiles)
        for key, value in fields.items():
            mol.SetProp(key, str(value))
        blocks.append(Chem.SDWriter.GetText(mol))
    return "".join(blocks)


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize("compress", [False, True])
def test_csv_with_targets_canonicalised_and_deduplicated(tmp_path, compress):
    text = "name,SMILES,logS\n" + "".join(f"m{i},{s},{i / 2}\n" for i, s in enumerate(MOLECULES))
    path = write(tmp_path / ("mols.csv.gz" if compress else "mols.csv"), text, compress)
    table = read_molecules(path, id_column="name", target_columns=["logS"])
    assert [m.smiles for m in table.molecules] == [Chem.CanonSmiles(s) for s in MOLECULES if s != "OCC"]
    assert table.duplicates == 1
    assert table.molecules[2].id == "m2" and table.molecules[2].targets == {"logS": 1.0}


def test_tsv_smi_and_sdf_read_the_same_molecules(tmp_path):
    tsv = read_molecules(
        write(tmp_path / "a.tsv", "smiles\tid\n" + "".join(f"{s}\t{i}\n" for i, s in enumerate(MOLECULES)))
    )
    smi = read_molecules(write(tmp_path / "a.smi", "".join(f"{s} id{i}\n" for i, s in enumerate(MOLECULES))))
    sdf = read_molecules(
        write(tmp_path / "a.sdf.gz", sdf_text([(s, {"y": i}) for i, s in enumerate(MOLECULES)]), True),
        target_columns=["y"],
    )
    assert tsv.smiles == smi.smiles == sdf.smiles
    assert smi.molecules[1].id == "id1"
    assert [m.targets["y"] for m in sdf.molecules] == [0.0, 1.0, 2.0, 4.0, 5.0]


def test_smi_with_a_header_carries_labels(tmp_path):
    path = write(tmp_path / "a.smi", "SMILES name pIC50\nCCO ethanol 5.5\nCCN ethylamine 7\n")
    table = read_molecules(path, id_column="name", target_columns=["pIC50"])
    assert [(m.id, m.targets["pIC50"]) for m in table.molecules] == [("ethanol", 5.5), ("ethylamine", 7.0)]
    with pytest.raises(DataError, match=r"no column 'logS' \(target_columns\)"):
        read_molecules(path, target_columns=["logS"])
    with pytest.raises(DataError, match=r"d.smi:3: 2 fields, header has 3"):  # whitespace-separated: no empty cells
        read_molecules(write(tmp_path / "d.smi", "smiles name y\nCCO a 1\nCCN b\n"), target_columns=["y"])
    with pytest.raises(DataError, match=r"b.smi:1: no header line naming the columns y"):
        read_molecules(write(tmp_path / "b.smi", "CCO 1 5.5\n"), target_columns=["y"])
    assert (
        read_molecules(write(tmp_path / "c.smi", "CCO ethyl alcohol\n")).molecules[0].id == "ethyl"
    )  # no labels: names may have spaces


def test_options_keep_input_spelling_and_duplicates(tmp_path):
    path = write(tmp_path / "a.smi", "OCC\nCCO\n")
    table = read_molecules(path, canonical=False, dedupe=False)
    assert table.smiles == ["OCC", "CCO"]
    assert read_molecules(path, canonical=False).smiles == ["OCC"]  # de-duplication still compares canonical forms


def test_empty_label_is_missing_not_an_error(tmp_path):
    table = read_molecules(write(tmp_path / "a.csv", "smiles,y\nCCO,\nCCN,1.5\n"), target_columns=["y"])
    assert math.isnan(table.molecules[0].targets["y"]) and table.molecules[1].targets["y"] == 1.5


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("bad.csv", "smiles,y\nCCO,1\nC1CC,2\n", r"bad.csv:3: unparsable SMILES 'C1CC'"),
        ("bad.smi", "CCO\n\nCCN\n", r"bad.smi:2: empty line"),
        ("bad.csv", "smiles,y\nCCO,1\n\nCCN,2\n", r"bad.csv:3: empty line"),
        ("bad.csv", "smiles,y\nCCO,abc\n", r"bad.csv:2: target 'y' = 'abc' is not a number"),
        ("bad.csv", "smiles,y\nCCO,1,7\n", r"bad.csv:2: 3 fields, header has 2"),
        ("bad.smi", "CCO\nC(C)(C)(C)(C)C\n", r"bad.smi:2: unparsable SMILES"),  # pentavalent carbon
    ],
)
def test_bad_records_are_reported_with_file_and_line(tmp_path, name, text, message):
    with pytest.raises(DataError, match=message) as err:
        read_molecules(write(tmp_path / name, text), target_columns=["y"] if name.endswith(".csv") else [])
    assert "on_invalid=skip" in str(err.value)


def test_missing_columns_name_the_choices(tmp_path):
    path = write(tmp_path / "a.csv", "structure,y\nCCO,1\n")
    with pytest.raises(DataError, match=r"a.csv:1: no SMILES column among \['structure', 'y'\]"):
        read_molecules(path)
    with pytest.raises(DataError, match=r"no column 'logS' \(target_columns\)"):
        read_molecules(path, smiles_column="structure", target_columns=["logS"])
    assert read_molecules(path, smiles_column="structure", target_columns=["y"]).smiles == ["CCO"]


def test_broken_sdf_record_is_reported_at_its_first_line(tmp_path):
    good = sdf_text([("CCO", {"y": 1})])
    broken = good.replace("  1  2  1  0", "  1  9  1  0")  # a bond to an atom that does not exist
    text = good + broken + sdf_text([("CCN", {"y": 3})])
    path = write(tmp_path / "a.sdf", text)
    second_record_line = good.count("\n") + 1
    with pytest.raises(DataError, match=rf"a.sdf:{second_record_line}: SDF record .* could not be parsed"):
        read_molecules(path)
    with pytest.raises(DataError, match=r"has no field <z>"):
        read_molecules(write(tmp_path / "b.sdf", good), target_columns=["z"])


def test_skip_counts_and_writes_rejects(tmp_path):
    path = write(tmp_path / "mixed.smi", "CCO a\nC1CC b\n\nc1ccccc1 d\nXYZ e\n")
    rejects = tmp_path / "out" / "rejected.csv"
    table = read_molecules(path, on_invalid="skip", rejects_path=rejects)
    assert table.smiles == ["CCO", "c1ccccc1"]
    rows = list(csv.DictReader(rejects.open()))
    assert [r["where"].rsplit(":", 1)[1] for r in rows] == ["2", "3", "5"]
    assert rows[0]["record"] == "C1CC b" and "unparsable" in rows[0]["reason"]


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown molecule file type '.xlsx'"):
        read_molecules(tmp_path / "a.xlsx")
    with pytest.raises(DataError, match="no such file"):
        read_molecules(tmp_path / "a.smi")
    with pytest.raises(DataError, match="cannot read as gzip"):
        read_molecules(write(tmp_path / "a.smi.gz", "CCO\n"))


# ------------------------------------------------------------------ embedded data and splits


def test_embedded_sets_are_real_molecules_with_measured_labels_and_tokenize_exactly():
    nci = load_embedded("nci")
    assert len(nci.molecules) > 4800 and len(nci.rejected) < 20  # RDKit rejects a few NCI valence errors
    chembl = load_embedded("chembl_pic50")
    values = [m.targets["pIC50"] for m in chembl.molecules]
    assert len(values) == 1017 and 4 < min(values) < max(values) < 10
    # The tokenizer round trip on RDKit's canonical SMILES of all ~5,900 real molecules: every character covered.
    smiles = nci.smiles + chembl.smiles
    tokenizer = SmilesTokenizer.from_smiles(smiles)
    encoded = [tokenizer.encode(s) for s in smiles]
    assert [tokenizer.decode(ids) for ids in encoded] == smiles
    assert tokenizer.unk_id not in {i for ids in encoded for i in ids}


def test_scaffold_split_keeps_scaffolds_apart_and_random_split_is_seeded():
    smiles = load_embedded("chembl_pic50", limit=300).smiles
    train, val, test = scaffold_split(smiles, 0.1, 0.1, seed=0)
    assert sorted(train + val + test) == list(range(300))
    scaffolds = [{murcko_scaffold(smiles[i]) for i in part} for part in (train, val, test)]
    assert not (scaffolds[0] & scaffolds[1] or scaffolds[0] & scaffolds[2] or scaffolds[1] & scaffolds[2])
    assert 0.7 <= len(train) / 300 <= 0.85 and len(val) and len(test)
    assert random_split(300, 0.1, 0.2, seed=1) == random_split(300, 0.1, 0.2, seed=1)
    assert [len(p) for p in random_split(300, 0.1, 0.2, seed=1)] == [210, 30, 60]
    with pytest.raises(ZooError, match="must be in"):
        random_split(10, 0.6, 0.5)


# ------------------------------------------------------------------ datamodules


def test_smiles_datamodule_batches_and_context_packing(tmp_path):
    rows = (
        "smiles,family\n"
        + "".join(f"{'C' * n}N,a\n" for n in range(1, 9))
        + "".join(f"{'C' * n}O,b\n" for n in range(1, 9))
    )
    path = write(tmp_path / "fam.csv", rows)
    dm = SmilesDataModule(
        path=str(path),
        group_column="family",
        context_size=3,
        batch_size=4,
        split="random",
        val_fraction=0.0,
        test_fraction=0.0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["ids"].shape[0] == 4 and batch["mask"].dtype == torch.bool
    tok = dm.tokenizer
    for row, mask in zip(batch["ids"], batch["mask"]):
        ids = row[mask].tolist()
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and ids.count(tok.sep_id) == 2
        text = tok.decode(ids)
        assert ("N" in text) != ("O" in text)  # one family per sequence
    assert dm.model_kwargs() == {"vocab_size": len(tok), "num_classes": len(tok), "global_pool": ""}


def test_a_pretrained_vocabulary_reports_the_tokens_it_lacks(tmp_path, caplog):
    SmilesTokenizer.from_smiles(["CCO", "CCN"]).save(tmp_path / "tokenizer.json")
    path = write(tmp_path / "a.smi", "CCO\nCCCl\nClCCl\nCCN\n")
    with caplog.at_level(logging.WARNING, logger="domains.chem.data"):
        dm = SmilesDataModule(
            path=str(path), tokenizer=str(tmp_path / "tokenizer.json"), val_fraction=0.25, test_fraction=0.25
        )
        dm.setup_tokenizer()
    assert "encoded as <unk>: Cl (2)" in caplog.text
    assert dm.tokenizer.encode("CCCl", bos=False, eos=False)[-1] == dm.tokenizer.unk_id


def test_a_model_contract_replaces_the_data_vocabulary(tmp_path, caplog):
    path = write(tmp_path / "a.smi", "CCO\nCCCl\nClCCl\nCCN\n")
    dm = SmilesDataModule(path=str(path), val_fraction=0.25, test_fraction=0.25)
    dm.setup_tokenizer()
    model_tokens = list(SmilesTokenizer.from_smiles(["CCO", "CCN"]).tokens)
    with caplog.at_level(logging.WARNING, logger="domains.chem.data"):
        dm.accept_contract({"tokenizer": {"tokens": model_tokens}})
    assert list(dm.tokenizer.tokens) == model_tokens
    assert "encoded as <unk>: Cl (2)" in caplog.text


def test_property_datamodule_standardises_on_the_train_split():
    dm = PropertyDataModule(limit=200, batch_size=16)
    dm.setup("fit")
    kwargs = dm.task_kwargs()
    assert kwargs["target_names"] == ["pIC50"] and kwargs["task_type"] == "regression"
    labels = [m.targets["pIC50"] for m in dm.splits[0]]
    assert kwargs["target_mean"][0] == pytest.approx(sum(labels) / len(labels))
    batch = next(iter(dm.val_dataloader()))
    assert batch["y"].shape == (16, 1) and len(batch["smiles"]) == 16
    with pytest.raises(ZooError, match="target_columns"):
        PropertyDataModule(path="x.csv")


def test_property_classification_labels_must_be_binary(tmp_path):
    path = write(tmp_path / "c.csv", "smiles,active\n" + "".join(f"{'C' * n}O,{n % 3}\n" for n in range(1, 20)))
    dm = PropertyDataModule(path=str(path), target_columns=["active"], task_type="classification", split="random")
    with pytest.raises(DataError, match="must be 0 or 1"):
        dm.task_kwargs()


def test_records_are_named_by_an_id_or_name_column_when_the_table_has_one(tmp_path):
    named = write(tmp_path / "named.csv", "Name,smiles,y\nethanol,CCO,1\n,c1ccccc1,0\n")
    molecules = read_molecules(named, target_columns=["y"]).molecules
    assert [m.id for m in molecules] == ["ethanol", "3"]  # an empty name falls back to the line
    plain = write(tmp_path / "plain.csv", "smiles,y\nCCO,1\nc1ccccc1,0\n")
    assert [m.id for m in read_molecules(plain, target_columns=["y"]).molecules] == ["2", "3"]
    chosen = write(tmp_path / "chosen.csv", "name,code,smiles,y\nethanol,E1,CCO,1\n")
    assert [m.id for m in read_molecules(chosen, target_columns=["y"], id_column="code").molecules] == ["E1"]
