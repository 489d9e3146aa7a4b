"""CSV dialects in every domain's table reader: `,` `;` and tab detected from the header line, or named
with `data.delimiter`; decimal commas read when `data.decimal=comma` is given (issue 26 point 8).

Each domain reads one table twice, as a plain comma/dot CSV and as a European spreadsheet would save it
(semicolons between cells, decimal commas), and must get the same values. The configs are composed as
`zoo <domain> train data.decimal=comma` composes them, so the keys are checked to reach the reader.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from domains.chem.readers import read_molecules
from domains.genomics.sources import load_examples
from domains.genomics.tables import read_labels, read_table
from domains.genomics.tokenizer import make_tokenizer
from domains.timeseries.tables import load_series
from zoo.errors import DataError


def european(rows: list[list[object]]) -> str:
    """Cells joined by `;`, numbers written with a decimal comma."""
    return "".join(";".join(str(cell).replace(".", ",") for cell in row) + "\n" for row in rows)


def plain(rows: list[list[object]], sep: str = ",") -> str:
    return "".join(sep.join(str(cell) for cell in row) + "\n" for row in rows)


def data_config(domain: str, *overrides: str):
    with initialize_config_module(config_module=f"domains.{domain}.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides)).data


# ----------------------------------------------------------------------------- time series

DATES = pd.date_range("2021-03-01", periods=120, freq="h").strftime("%Y-%m-%d %H:%M:%S")
SERIES = [["date", "temp", "load"]] + [
    [d, round(10 + i * 0.25, 2), round(0.5 + (i % 24) * 0.125, 3)] for i, d in enumerate(DATES)
]


def test_timeseries_semicolons_and_decimal_commas_read_as_the_plain_csv(tmp_path):
    (tmp_path / "plain.csv").write_text(plain(SERIES))
    (tmp_path / "euro.csv").write_text(european(SERIES))
    (tmp_path / "tabs.csv").write_text(plain(SERIES, "\t"))  # a tab-separated file named .csv
    expected, freq = load_series(str(tmp_path / "plain.csv"))
    euro, euro_freq = load_series(str(tmp_path / "euro.csv"), decimal=",")
    pd.testing.assert_frame_equal(euro, expected)
    assert euro_freq == freq == "h" and expected["temp"].iloc[3] == 10.75
    pd.testing.assert_frame_equal(load_series(str(tmp_path / "tabs.csv"))[0], expected)
    named, _ = load_series(str(tmp_path / "euro.csv"), delimiter="semicolon", decimal="comma")
    pd.testing.assert_frame_equal(named, expected)
    with pytest.raises(
        DataError, match=r"euro.csv:2: column 'temp' value '10,0' is not a number; .*data.decimal=comma"
    ):
        load_series(str(tmp_path / "euro.csv"))  # the delimiter is found, the decimal commas must be declared
    with pytest.raises(DataError, match="is also the column delimiter"):
        load_series(str(tmp_path / "plain.csv"), decimal=",")
    with pytest.raises(DataError, match=r"data.delimiter='::': give one character"):
        load_series(str(tmp_path / "plain.csv"), delimiter="::")


def test_timeseries_config_passes_the_dialect_to_the_reader(tmp_path):
    (tmp_path / "euro.csv").write_text(european(SERIES))
    cfg = data_config(
        "timeseries",
        f"data.path={tmp_path / 'euro.csv'}",
        "data.decimal=comma",
        "data.target=load",
        "seq_len=24",
        "horizon=6",
        "label_len=12",
    )
    assert cfg.delimiter is None and cfg.decimal == "comma"
    module = instantiate(cfg, _convert_="all")
    module.setup("fit")
    assert module.frame["load"].iloc[:3].tolist() == [0.5, 0.625, 0.75]


# ----------------------------------------------------------------------------- chemistry

MOLECULES = [
    ["smiles", "name", "logS"],
    ["CCO", "ethanol", 0.5],
    ["c1ccccc1O", "phenol", -0.25],
    ["CCN", "ethylamine", 1.125],
]


def test_chem_semicolons_and_decimal_commas_read_as_the_plain_csv(tmp_path):
    (tmp_path / "plain.csv").write_text(plain(MOLECULES))
    (tmp_path / "euro.csv").write_text(european(MOLECULES))
    expected = read_molecules(tmp_path / "plain.csv", id_column="name", target_columns=["logS"]).molecules
    euro = read_molecules(tmp_path / "euro.csv", id_column="name", target_columns=["logS"], decimal="comma").molecules
    assert euro == expected and [m.targets["logS"] for m in euro] == [0.5, -0.25, 1.125]
    (tmp_path / "tabs.csv").write_text(plain(MOLECULES, "\t"))  # a tab-separated file named .csv
    assert read_molecules(tmp_path / "tabs.csv", id_column="name", target_columns=["logS"]).molecules == expected
    with pytest.raises(DataError, match=r"euro.csv:2: target 'logS' = '0,5' is not a number; .*data.decimal=comma"):
        read_molecules(tmp_path / "euro.csv", target_columns=["logS"])


def test_chem_config_passes_the_dialect_to_the_reader(tmp_path):
    rows = [["smiles", "pic50"]] + [[s, 5 + i / 4] for i, s in enumerate(["CCO", "CCN", "CCC", "CCCO", "CCCN"])]
    (tmp_path / "euro.csv").write_text(european(rows))
    cfg = data_config(
        "chem",
        "experiment=property",
        f"data.path={tmp_path / 'euro.csv'}",
        "data.target_columns=[pic50]",
        "data.decimal=comma",
        "data.delimiter=semicolon",
    )
    module = instantiate(cfg, _convert_="all")
    assert [m.targets["pic50"] for m in module.read().molecules] == [5.0, 5.25, 5.5, 5.75, 6.0]


# ----------------------------------------------------------------------------- genomics

SEQUENCES = [["id", "sequence", "label"]] + [[f"s{i}", "ACGT" * (i + 2), round(0.25 * i - 1, 2)] for i in range(12)]


def test_genomics_semicolons_and_decimal_commas_read_as_the_plain_csv(tmp_path):
    (tmp_path / "plain.csv").write_text(plain(SEQUENCES))
    (tmp_path / "euro.csv").write_text(european(SEQUENCES))
    expected = read_table(tmp_path / "plain.csv", task_type="regression")
    euro = read_table(tmp_path / "euro.csv", task_type="regression", decimal=",")
    assert euro == expected and [e.label for e in euro[:3]] == [(-1.0,), (-0.75,), (-0.5,)]
    assert read_table(tmp_path / "euro.csv", task_type="regression", delimiter="semicolon", decimal="comma") == expected
    labels = read_labels(tmp_path / "euro.csv", task_type="regression", decimal="comma")
    assert labels == {e.id: e.label for e in expected}
    with pytest.raises(DataError, match=r"euro.csv:2 .*label '-1,0' .* not a number.*data.decimal=comma"):
        read_table(tmp_path / "euro.csv", task_type="regression")
    # a classification table needs no decimal mark: the semicolons alone are found
    assert [e.label for e in read_table(tmp_path / "euro.csv")] == [
        str(row[2]).replace(".", ",") for row in SEQUENCES[1:]
    ]


def test_genomics_semicolon_table_trains_without_any_setting(tmp_path):
    rows = [["sequence", "label"]] + [["ACGT" * 3 + "AC"[i % 2] * 4, "ab"[i % 2]] for i in range(40)]
    (tmp_path / "euro.csv").write_text(european(rows))
    module = instantiate(data_config("genomics", f"data.path={tmp_path / 'euro.csv'}"), _convert_="all")
    assert module.classes == ["a", "b"] and sum(len(part) for part in module.splits.values()) == 40


def test_genomics_config_passes_the_decimal_mark_to_the_reader(tmp_path):
    (tmp_path / "euro.csv").write_text(european(SEQUENCES))
    cfg = data_config(
        "genomics", f"data.path={tmp_path / 'euro.csv'}", "data.task_type=regression", "data.decimal=comma"
    )
    module = instantiate(cfg, _convert_="all")
    values = sorted(label for part in module.splits.values() for (label,) in (e.label for e in part))
    assert values == sorted(0.25 * i - 1 for i in range(12)) and not any(math.isnan(v) for v in values)


def test_genomics_fasta_labels_table_is_read_in_the_given_dialect(tmp_path):
    (tmp_path / "seqs.fa").write_text("".join(f">{row[0]}\n{row[1]}\n" for row in SEQUENCES[1:]))
    (tmp_path / "labels.csv").write_text(european([["id", "label"]] + [[r[0], r[2]] for r in SEQUENCES[1:]]))
    read = dict(labels=str(tmp_path / "labels.csv"), task_type="regression")
    examples = load_examples(str(tmp_path / "seqs.fa"), make_tokenizer(), **read, decimal="comma")
    assert [e.label for e in examples] == [(row[2],) for row in SEQUENCES[1:]]
    with pytest.raises(DataError, match=r"labels.csv:2: .*'-1,0'.*data.decimal=comma"):
        load_examples(str(tmp_path / "seqs.fa"), make_tokenizer(), **read)
