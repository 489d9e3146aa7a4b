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
    "zoo genomics train model=transformer                  # the attention baseline (dna_xlstm, dna_xlstm_rc, mamba, s5)",
    "zoo genomics train experiment=shuffled                # control: shuffled labels must score at chance",
    "zoo genomics predict ckpt_path=last                   # per-record class probabilities, record id first",
    "zoo genomics pretrain data.path=genome.fa data.context_length=1024 model.kwargs.max_seq_len=1026",
    "zoo genomics finetune weights=runs/genomics/train/<run>/checkpoints/best.ckpt",
    "zoo genomics finetune model=hyenadna_tiny_1k weights=hyenadna_tiny_1k.hg38   # official weights (network or cache)",
    "zoo genomics train data.path=seqs.csv data.on_too_long=slide",
    "zoo genomics train data.path=genomic_benchmarks/human_nontata_promoters",
    "zoo genomics train experiment=tokens data.path=genome.fa data.regions=peaks.bed",
    "zoo genomics finetune experiment=softprompt weights=<pretrained folder>",
    "zoo genomics embed weights=<folder> data.path=genome.fa embed.region=chr1:0-1000000",
]

# `make demo`: train then predict on the embedded data (about 30 s of CPU on an idle two-core machine).
_DEMO_DATA = ["data.embedded.n_val=200", "data.embedded.n_test=400", "trainer.enable_progress_bar=false"]
DEMO = {
    "train": ["trainer.max_epochs=4", *_DEMO_DATA],
    "predict": ["ckpt_path=last", *_DEMO_DATA],
    "metric": "test/acc",
}
