"""The reverse-complement-equivariant DNA-xLSTM (parameter sharing, Caduceus' head): a sequence and its reverse
complement, as the tokenizer encodes them (left padding, [SEP] last), get the same pooled prediction and embedding;
per-base outputs and LM logits mirror. The plain DNA-xLSTM is the control that must differ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from domains.genomics.embed import embed_records
from domains.genomics.records import Example
from domains.genomics.tokenizer import DNATokenizer, reverse_complement
from zoo import create_model

RC_KWARGS = yaml.safe_load(
    (Path(__file__).parent.parent / "domains/genomics/configs/model/dna_xlstm_rc.yaml").read_text()
)["kwargs"]
SEQS = ["ACGTTGCAAGTCCA", "GGGATTACANNCT", "ATATGCGC", "TTTTGACGTCAAAGGC"]
TOKENIZER = DNATokenizer()


def model(rc: bool = True, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {**RC_KWARGS, "dim": 32, "depth": 2, "slstm_at": [1], "m_chunk_size": 8, **kw}
    if not rc:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("rc_equivariant", "complement_map", "rc_fixed_ids")}
    return create_model("dna_xlstm_500k", **kwargs).double().eval()


def encoded(seqs):
    return TOKENIZER.pad([TOKENIZER.encode(s) for s in seqs])


@pytest.mark.parametrize("pool", ["mean", "max", "last"])
def test_pooled_predictions_are_strand_invariant(pool):
    forward, reverse = encoded(SEQS), encoded([reverse_complement(s) for s in SEQS])
    with torch.no_grad():
        rc_model, plain = model(num_classes=4, global_pool=pool), model(rc=False, num_classes=4, global_pool=pool)
        torch.testing.assert_close(rc_model(*forward), rc_model(*reverse), atol=1e-10, rtol=1e-10)
        assert (plain(*forward) - plain(*reverse)).abs().max() > 1e-2  # the same blocks without sharing are not
    assert rc_model.head.in_features == 32 and rc_model.num_features == 64  # one head for both strands


def test_per_base_outputs_and_lm_logits_mirror():
    windows = torch.randint(7, 12, (3, 21), generator=torch.Generator().manual_seed(2))  # no special tokens, as windows
    complement = torch.tensor(RC_KWARGS["complement_map"])
    with torch.no_grad():
        per_base = model(num_classes=3)
        torch.testing.assert_close(
            per_base(complement[windows].flip(1)), per_base(windows).flip(1), atol=1e-10, rtol=1e-10
        )
        lm = model()
        (ids, mask), (rc_ids, rc_mask) = encoded(SEQS), encoded([reverse_complement(s) for s in SEQS])
        logits, rc_logits = (
            lm.lm_logits(lm.forward_features(ids, mask)),
            lm.lm_logits(lm.forward_features(rc_ids, rc_mask)),
        )
    for row, seq in enumerate(SEQS):  # base k of the sequence is base n-1-k of its reverse complement, complemented
        bases = slice(ids.shape[1] - 1 - len(seq), ids.shape[1] - 1)
        torch.testing.assert_close(
            rc_logits[row, bases], logits[row, bases].flip(0)[:, complement], atol=1e-10, rtol=1e-10
        )


def test_exported_embeddings_are_strand_invariant():
    rc_model = model().float()
    examples = [Example(f"s{i}", s) for i, s in enumerate(SEQS)]
    reverse = [Example(e.id, reverse_complement(e.seq)) for e in examples]
    vectors = np.stack(embed_records(rc_model, TOKENIZER, examples, "mean", 2, torch.device("cpu")))
    assert vectors.shape == (4, 32)
    assert np.allclose(
        vectors, np.stack(embed_records(rc_model, TOKENIZER, reverse, "mean", 2, torch.device("cpu"))), atol=1e-5
    )


def test_new_head_keeps_the_strand_sharing():
    rc_model = model(num_classes=4, global_pool="mean")
    rc_model.reset_classifier(2)
    assert rc_model.head.in_features == 32
    forward, reverse = encoded(SEQS), encoded([reverse_complement(s) for s in SEQS])
    with torch.no_grad():
        torch.testing.assert_close(rc_model.double()(*forward), rc_model(*reverse), atol=1e-10, rtol=1e-10)


def test_post_hoc_conjoining_makes_any_backbone_strand_invariant_outside_training():
    from domains.genomics.tasks import SequenceTask

    torch.manual_seed(0)
    task = SequenceTask(
        model="hyenadna_tiny_1k",
        classes=["a", "b", "c"],
        rc_conjoin=True,
        model_kwargs={"d_model": 32, "d_inner": 64, "filter_order": 16, "max_seq_len": 64, "embed_dropout": 0.0},
    )
    forward, reverse = encoded(SEQS), encoded([reverse_complement(s) for s in SEQS])
    with torch.no_grad():
        torch.testing.assert_close(task.eval().outputs(*forward), task.outputs(*reverse), atol=1e-5, rtol=1e-5)
        assert (task.train().outputs(*forward) - task.outputs(*reverse)).abs().max() > 1e-3  # training sees one strand
