"""Chemistry: SMILES language models (Chem-xLSTM, Transformer, LSTM) with RDKit.

Train a causal language model on SMILES, sample new molecules (temperature,
top-k, in-context prompts of example molecules), and fine-tune for property
regression or classification. The embedded data (NCI molecules and measured
ChEMBL pIC50 values that ship with RDKit) make every verb run without a
download; give data.path=<.csv|.tsv|.smi|.sdf[.gz]> for your own molecules.
"""

EXAMPLES = [
    "zoo chem train                                        # Chem-xLSTM on the embedded NCI molecules",
    "zoo chem train model=transformer trainer.max_epochs=5  # the Transformer baseline (model=lstm: LSTM)",
    "zoo chem sample ckpt_path=last data.num_samples=500 task.sampling.temperature=0.8",
    "zoo chem train experiment=incontext                   # train on families of molecules",
    "zoo chem sample ckpt_path=last data.prompt=examples.smi  # in-context generation",
    "zoo chem predict ckpt_path=last                       # samples.csv + structure grid PNG",
    "zoo chem export ckpt_path=last output=chem_lm          # hub folder with tokenizer.json",
    "zoo chem finetune weights=chem_lm                      # pIC50 regression, scaffold split",
    "zoo chem train experiment=property data.path=my.csv data.target_columns=[logS]",
    "zoo chem predict experiment=property ckpt_path=last data.predict_path=new.smi",
]

# `make demo`: Chem-xLSTM on 1,000 embedded NCI molecules of at most 32 tokens for two epochs, then 48 samples
# (CSV + structure grid). About 20 s of CPU on one thread; the predict step gets the same data settings so that
# novelty is measured against the split the model was trained on.
_DEMO_DATA = ["data.limit=1000", "data.max_tokens=32", "trainer.enable_progress_bar=false"]
DEMO = {
    "train": ["trainer.max_epochs=2", "task.optimizer.lr=4e-3", "task.eval_samples=100", *_DEMO_DATA],
    "predict": ["data.num_samples=48", *_DEMO_DATA],
    "metric": "test/validity",
}
