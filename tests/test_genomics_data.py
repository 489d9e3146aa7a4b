"""Genomics readers, the genome index, bad input, the embedded JASPAR data and the datamodules."""

from __future__ import annotations

import gzip
import random

import numpy as np
import pytest
from Bio import bgzf

from domains.genomics.bed import RegionLabels, read_bed, region_examples
from domains.genomics.data import PretrainDataModule, SequenceDataModule, TokenDataModule, split_spans
from domains.genomics.embedded import MotifTask, entropy_rate
from domains.genomics.fasta import compression, open_genome, read_records
from domains.genomics.jaspar import load_motifs, scanner_predictions
from domains.genomics.records import Example, apply_length_policy, windows
from domains.genomics.sources import load_examples
from domains.genomics.tokenizer import DNATokenizer, reverse_complement
from zoo.errors import DataError, ZooError

RNG = random.Random(0)
GENOME = {f"chr{i}": "".join(RNG.choice("ACGTacgtN") for _ in range(RNG.randint(50, 3000))) for i in range(4)}


def fasta_text(records: dict[str, str], width: int = 60, newline: str = "\n") -> str:
    out = []
    for name, seq in records.items():
        out.append(f">{name} some description{newline}")
        out += [seq[i : i + width] + newline for i in range(0, len(seq), width)]
    return "".join(out)


def write(path, text: str, how: str = "plain"):
    data = text.encode()
    if how == "gzip":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    elif how == "bgzf":
        with bgzf.BgzfWriter(str(path), "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- FASTA / FASTQ


@pytest.mark.parametrize("how,suffix", [("plain", ".fa"), ("gzip", ".fa.gz"), ("bgzf", ".fa.gz")])
def test_records_and_windows_equal_slicing(tmp_path, how, suffix):
    path = write(tmp_path / f"g{suffix}", fasta_text(GENOME, width=61), how)
    assert compression(path) == {"plain": "none", "gzip": "gzip", "bgzf": "bgzf"}[how]
    assert {r.id: r.seq for r in read_records(path)} == GENOME
    rng = random.Random(1)
    for genome in (open_genome(path), open_genome(path)):  # the second reads the .fai/.gzi the first wrote
        assert genome.lengths == {k: len(v) for k, v in GENOME.items()}
        for _ in range(200):
            name = rng.choice(list(GENOME))
            start = rng.randint(0, len(GENOME[name]))
            end = rng.randint(start, len(GENOME[name]) + 20)
            assert genome.fetch(name, start, end) == GENOME[name][start:end]
    assert (tmp_path / f"g{suffix}.gzi").exists() == (how == "bgzf")


def test_index_is_samtools_faidx_and_reused(tmp_path):
    path = write(tmp_path / "g.fa", fasta_text({"a": "ACGT" * 30, "b": "GG"}, width=50, newline="\r\n"))
    genome = open_genome(path)
    # samtools faidx: name, length, offset of the first base, bases per line, bytes per line
    header_a, header_b = len(">a some description\r\n"), len(">b some description\r\n")
    offset_b = header_a + 2 * 52 + 22 + header_b
    assert (tmp_path / "g.fa.fai").read_text() == f"a\t120\t{header_a}\t50\t52\nb\t2\t{offset_b}\t2\t4\n"
    assert genome.fetch("a", 45, 105) == ("ACGT" * 30)[45:105]
    assert open_genome(path).entries == genome.entries  # read back from the .fai


def test_fastq_records(tmp_path):
    path = write(tmp_path / "r.fq.gz", "@r1 x\nACGTN\n+\nIIIII\n@r2\nGGC\n+r2\nIII\n", "gzip")
    assert [(r.id, r.seq) for r in read_records(path)] == [("r1", "ACGTN"), ("r2", "GGC")]
    assert open_genome(path).fetch("r1", 1, 3) == "CG"


@pytest.mark.parametrize(
    "text,message",
    [
        (">r1\nACGT\n>r2\n>r3\nGG\n", r"record 'r2': empty record"),
        (">r1\nACGT\n>r2\nACXT\n", r"record 'r2': illegal character 'X' at position 3"),
        (">r1\nACGT\r\n>r2\nACGT\n", r"g.fa:2 \(record 'r1'\): mixed line endings"),
        (">r1\nACGT\n>r1\nGG\n", r"record 'r1': duplicate record id"),
        ("ACGT\n", r"neither FASTA \('>'\) nor FASTQ"),
        ("", r"the file is empty"),
    ],
)
def test_bad_fasta_is_one_clear_error(tmp_path, text, message):
    path = write(tmp_path / "g.fa", text)
    with pytest.raises(DataError, match=message):
        list(read_records(path))
    with pytest.raises(DataError, match=message):
        open_genome(path)


def test_truncated_gzip_names_the_record(tmp_path):
    full = tmp_path / "full.fa.gz"
    write(full, fasta_text({f"r{i}": "ACGT" * 4000 for i in range(6)}), "gzip")
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"cut.fa.gz:\d+ \(record 'r\d'\): the gzip stream ends early"):
        list(read_records(cut))


def test_unequal_lines_refuse_random_access(tmp_path):
    path = write(tmp_path / "g.fa", ">r1\nACGT\nAC\nACGT\n")
    assert [r.seq for r in read_records(path)] == ["ACGTACACGT"]  # streaming is fine
    with pytest.raises(DataError, match=r"g.fa:4 \(record 'r1'\): lines of different lengths"):
        open_genome(path)


# ----------------------------------------------------------------------------- tables, BED, benchmarks


def test_csv_fasta_labels_and_missing_labels(tmp_path):
    tokenizer = DNATokenizer()
    table = write(tmp_path / "s.csv", "id,sequence,label\na,ACGT,pos\nb,GGCC,neg\n")
    assert [(e.id, e.seq, e.label) for e in load_examples(str(table), tokenizer)] == [
        ("a", "ACGT", "pos"),
        ("b", "GGCC", "neg"),
    ]
    gap = write(tmp_path / "gap.tsv", "name\tseq\tclass\na\tACGT\tpos\nb\tGGCC\t\n")
    with pytest.raises(DataError, match=r"gap.tsv:3 \(record 'b'\): missing label in column 'class'"):
        load_examples(str(gap), tokenizer)
    fasta = write(tmp_path / "s.fa", ">a\nACGT\n>b\nGGCC\n>c\nTTT\n")
    labels = write(tmp_path / "labels.csv", "id,label\na,1\nb,0\n")
    with pytest.raises(DataError, match=r"s.fa: record 'c' has no label in .*labels.csv"):
        load_examples(str(fasta), tokenizer, labels=str(labels))
    assert [e.label for e in load_examples(str(fasta), tokenizer, labels=str(labels), require_labels=False)] == [
        "1",
        "0",
        None,
    ]
    regression = write(tmp_path / "r.csv", "sequence,expr,gc\nACGT,1.5,0.5\nGGGA,x,0.75\n")
    with pytest.raises(DataError, match=r"r.csv:3 .*'x' in column 'expr' is not a number"):
        load_examples(str(regression), tokenizer, label_columns=["expr", "gc"], task_type="regression")


def test_bad_tables_and_bed_name_the_line(tmp_path):
    tokenizer = DNATokenizer()
    empty = write(tmp_path / "e.csv", "id,sequence,label\na,ACGT,x\nb,,y\n")
    with pytest.raises(DataError, match=r"e.csv:3 \(record 'b'\): empty sequence"):
        load_examples(str(empty), tokenizer)
    for name, text in (
        ("t.csv.gz", "id,sequence,label\n" + "".join(f"r{i},{'ACGT' * 500},x\n" for i in range(200))),
        ("t.bed.gz", "".join(f"chr1\t{i}\t{i + 5}\tn{i}\n" for i in range(20000))),
    ):
        data = gzip.compress(text.encode())
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(
            DataError, match=rf"{name}(:\d+| \(after the row on line \d+\)): the gzip stream ends early"
        ):
            read_bed(tmp_path / name) if name.endswith(".bed.gz") else load_examples(str(tmp_path / name), tokenizer)


def test_genomic_benchmarks_layout(tmp_path):
    for split, cls, name, seq in [
        ("train", "positive", "1", "ACGT"),
        ("train", "negative", "2", "GGCC\n"),
        ("test", "positive", "3", "TTAA"),
        ("test", "negative", "4", "CCGG"),
    ]:
        folder = tmp_path / "bench" / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(seq)
    examples = load_examples(str(tmp_path / "bench"), DNATokenizer())
    assert [(e.id, e.seq, e.label, e.split) for e in examples] == [
        ("train/negative/2", "GGCC", "negative", "train"),
        ("train/positive/1", "ACGT", "positive", "train"),
        ("test/negative/4", "CCGG", "negative", "test"),
        ("test/positive/3", "TTAA", "positive", "test"),
    ]


def test_bed_regions_strands_and_per_base_labels(tmp_path):
    genome = open_genome(write(tmp_path / "g.fa", fasta_text(GENOME)))
    bed = write(tmp_path / "r.bed", "track name=x\nchr1\t10\t20\tenh\t0\t+\nchr1\t30\t40\tprom\t0\t-\n")
    regions = read_bed(bed)
    examples = region_examples(regions, genome, "name", str(bed))
    assert [(e.id, e.seq, e.label) for e in examples] == [
        ("chr1:10-20", GENOME["chr1"][10:20], "enh"),
        ("chr1:30-40", reverse_complement(GENOME["chr1"][30:40]), "prom"),
    ]
    labels = RegionLabels(regions, {"enh": 1, "prom": 2})("chr1", 5, 35)
    assert labels.tolist() == [0] * 5 + [1] * 10 + [0] * 10 + [2] * 5
    with pytest.raises(DataError, match=r"r2.bed:1: need 0 <= start < end"):
        read_bed(write(tmp_path / "r2.bed", "chr1\t20\t10\n"))
    with pytest.raises(DataError, match=r"region chrX:1-5 is on 'chrX'"):
        region_examples(read_bed(write(tmp_path / "r3.bed", "chrX\t1\t5\tn\n")), genome, "name", "r3.bed")


def test_too_long_policies():
    examples = [Example("a", "ACGTACGTAC", "x"), Example("b", "ACG", "y")]
    with pytest.raises(
        DataError, match=r"s.fa: record 'a' has 10 bases, more than data.max_length=4.*on_too_long=truncate or slide"
    ):
        apply_length_policy(examples, 4, "error", source="s.fa")
    assert [e.seq for e in apply_length_policy(examples, 4, "truncate")] == ["ACGT", "ACG"]
    slid = apply_length_policy(examples, 4, "slide", stride=3)
    assert [(e.id, e.seq, e.label) for e in slid] == [
        ("a:0-4", "ACGT", "x"),
        ("a:3-7", "TACG", "x"),
        ("a:6-10", "GTAC", "x"),
        ("b", "ACG", "y"),
    ]
    assert windows(10, 4, 4) == [(0, 4), (4, 8), (6, 10)]
    with pytest.raises(ZooError, match="on_too_long"):
        apply_length_policy(examples, 4, "drop")


# ----------------------------------------------------------------------------- embedded data


def test_jaspar_matrices_equal_pyjaspar():
    from pyjaspar import jaspardb

    database = jaspardb(release="JASPAR2024")
    for motif in load_motifs():
        reference = database.fetch_motif_by_id(motif.matrix_id)
        assert reference.name.upper() == motif.name
        assert np.array_equal(motif.counts, np.array([reference.counts[b] for b in "ACGT"]))
    assert [m.name for m in load_motifs()] == ["CTCF", "GATA1", "SP1", "TP53"]


def test_embedded_task_is_honest():
    task = MotifTask(length=100, n_train=200, n_val=40, n_test=200)
    splits = task.splits()
    motifs = task.motifs()
    names = [m.name for m in motifs]
    assert {len(e.seq) for part in splits.values() for e in part} == {100}
    assert sorted(e.label for e in splits["train"]) == sorted(names * 50)  # balanced
    assert splits == task.splits()  # deterministic
    for split, lo, hi in [("train", 0, 50), ("test", 50, 100)]:  # the PWM finds each site in its half
        for example in splits[split][:40]:
            motif = motifs[names.index(example.label)]
            pwm = motif.log_odds()
            scores = [
                sum(pwm["ACGT".index(c), j] for j, c in enumerate(example.seq[s : s + motif.width]))
                for s in range(100 - motif.width + 1)
            ]
            best = int(np.argmax(scores))
            assert lo <= best and best + motif.width <= hi or max(scores) < 0.5 * pwm.max(0).sum(), (split, example)
    accuracy = {
        k: np.mean([names[p] == e.label for p, e in zip(scanner_predictions([e.seq for e in v], motifs), v)])
        for k, v in splits.items()
    }
    assert min(accuracy.values()) > 0.9, accuracy  # the training-free ceiling
    assert 1.30 < entropy_rate() < np.log(4)


def test_sequence_datamodule_embedded_and_shuffled_control():
    common = dict(embedded={"length": 60, "n_train": 64, "n_val": 16, "n_test": 32}, batch_size=8)
    dm = SequenceDataModule(**common)
    dm.setup("fit")
    assert dm.classes == ["CTCF", "GATA1", "SP1", "TP53"] and dm.test_names == ["test", "test_rc"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["ids"].shape == (8, 61) and batch["ids"][:, -1].eq(1).all() and batch["y"].shape == (8,)  # [SEP] last
    shuffled = SequenceDataModule(shuffle_labels=True, **common)
    shuffled.setup("fit")
    truth = [e.label for e in dm.splits["train"]]
    permuted = [shuffled.train_set.examples[i].label for i in range(64)]
    assert sorted(permuted) == sorted(truth) and permuted != truth
    assert [e.label for e in shuffled.splits["test"]] == [e.label for e in dm.splits["test"]]  # test labels stay true
    assert shuffled.reference_metrics() == {}


def test_reverse_complement_augmentation_serves_the_other_strand():
    common = dict(embedded={"length": 60, "n_train": 16, "n_val": 8, "n_test": 8}, batch_size=16)
    both = SequenceDataModule(rc_prob=1.0, **common)
    both.setup("fit")
    train = [both.tokenizer.decode(both.train_set[i]["ids"]) for i in range(16)]
    assert train == [reverse_complement(e.seq) for e in both.splits["train"]]
    assert [both.tokenizer.decode(both.val_set[i]["ids"]) for i in range(8)] == [
        e.seq for e in both.splits["val"]
    ]  # eval: as given
    with pytest.raises(ZooError, match="rc_prob reverse-complements DNA"):
        SequenceDataModule(rc_prob=0.5, alphabet="protein", **common)


def test_sequence_datamodule_user_file_bad_input(tmp_path):
    bad = write(tmp_path / "bad.csv", "sequence,label\nACGT,a\nAC!T,b\n")
    with pytest.raises(DataError, match=r"bad.csv: record 'row2': illegal character '!'"):
        SequenceDataModule(path=str(bad)).setup("fit")
    one_class = write(tmp_path / "one.csv", "sequence,label\n" + "ACGT,a\n" * 12)
    with pytest.raises(DataError, match="needs two or more"):
        _ = SequenceDataModule(path=str(one_class)).classes


def test_genome_splits_and_windows(tmp_path):
    spans = split_spans({"a": 1000, "b": 500}, 0.1, 0.2)
    assert spans == {
        "train": [("a", 0, 700), ("b", 0, 350)],
        "val": [("a", 700, 800), ("b", 350, 400)],
        "test": [("a", 800, 1000), ("b", 400, 500)],
    }
    by_record = split_spans({f"c{i}": 100 for i in range(20)}, 0.1, 0.1)
    assert sorted(len(v) for v in by_record.values()) == [2, 2, 16]
    path = write(tmp_path / "g.fa", fasta_text(GENOME))
    dm = PretrainDataModule(path=str(path), context_length=64, samples_per_epoch=10, batch_size=5, rc_prob=0.5)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["ids"].shape[0] == 5 and batch["ids"].shape[1] <= 64
    for window, strand, ids, mask in zip(batch["id"], batch["strand"], batch["ids"], batch["mask"]):
        chrom, span = window.split(":")
        start, end = map(int, span.split("-"))
        text = GENOME[chrom][start:end].upper()
        assert dm.tokenizer.decode(ids[mask]) == (text if strand == "+" else reverse_complement(text))
    tiles = [w for w in dm.val_set.tiles]
    assert all(end - start <= 64 for _, start, end in tiles)


def test_token_datamodule_labels_follow_the_strand():
    dm = TokenDataModule(
        context_length=200, samples_per_epoch=8, batch_size=8, rc_prob=1.0, embedded={"records": 1, "length": 3000}
    )
    dm.setup("fit")
    assert dm.classes == ["background", "CTCF", "GATA1", "SP1", "TP53"]
    batch = next(iter(dm.train_dataloader()))
    labeler = dm.labeler()
    for window, y, mask in zip(batch["id"], batch["y"], batch["mask"]):
        chrom, span = window.split(":")
        start, end = map(int, span.split("-"))
        assert y[mask].tolist() == labeler(chrom, start, end)[::-1].tolist()  # rc_prob=1: reversed labels
    with pytest.raises(DataError, match="need regions"):
        TokenDataModule(path="genome.fa")
