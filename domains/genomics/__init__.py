"""Genomics: HyenaDNA, DNA-xLSTM and baselines on DNA, from FASTA to per-base predictions.

Pre-train on a genome (next nucleotide; masked-LM for bidirectional models), fine-tune
sequence classifiers or regressors, label every base from BED regions, tune soft prompts
of a frozen model, and export embeddings. Tokens use HyenaDNA's ids, so the official
checkpoints (`zoo list hyenadna --pretrained`) fit. With no data.path every verb runs on
the embedded data: real JASPAR motifs (CTCF, GATA1, SP1, TP53, from pyjaspar) planted in
synthetic background DNA; held-out positions, a reverse-complement test set and a PWM
scanner ceiling keep the scores honest. Your files: CSV/TSV, FASTA/FASTQ (gzip, bgzip),
BED against a FASTA, or a GenomicBenchmarks folder (data.path=...).
"""

EXAMPLES = [
    "zoo genomics train                                    # which TF motif? HyenaDNA on the embedded JASPAR task",
    "zoo genomics train model=transformer          # the attention baseline (dna_xlstm, dna_xlstm_rc, mamba, s5)",
    "zoo genomics train experiment=shuffled                # control: shuffled labels must score at chance",
    "zoo genomics predict ckpt_path=last                   # per-record class probabilities, record id first",
    "zoo genomics pretrain data.path=genome.fa data.context_length=1024 model.kwargs.max_seq_len=1026",
    "zoo genomics finetune weights=runs/genomics/train/<run>/checkpoints/best.ckpt",
    "zoo genomics finetune weights=hf://LongSafari/hyenadna-tiny-1k-seqlen   # official weights, their architecture",
    "zoo genomics train model=dna_xlstm_rc         # reverse-complement equivariant: strand-invariant predictions",
    "zoo genomics train task.rc_conjoin=true               # any backbone: average each prediction over both strands",
    "zoo genomics train data.path=seqs.csv data.on_too_long=slide",
    "zoo genomics train data.path=genomic_benchmarks/human_nontata_promoters",
    "zoo genomics train experiment=tokens data.path=genome.fa data.regions=peaks.bed",
    "zoo genomics finetune experiment=softprompt weights=<pretrained folder>",
    "zoo genomics embed weights=<folder> data.path=genome.fa embed.region=chr1:0-1000000",
]

# `make demo`: train then predict on the embedded data. The model is `model=hyenadna` at width 32 (the
# registry-test size) and torch is pinned to one thread: on this shared two-core machine the default
# width-64 run with two threads took 404 s, pinned 64-85 s, this 41-42 s (docs/genomics.md).
_DEMO_DATA = [
    "data.embedded.n_val=200",
    "data.embedded.n_test=400",
    "trainer.enable_progress_bar=false",
    "threads=1",
]
_DEMO_MODEL = ["model.kwargs.d_model=32", "model.kwargs.d_inner=64", "model.kwargs.filter_order=16"]
DEMO = {
    "train": ["trainer.max_epochs=4", *_DEMO_MODEL, *_DEMO_DATA],
    "predict": _DEMO_DATA,  # the demo runner adds ckpt_path=<the trained checkpoint>
    "metric": "test/acc",
}
