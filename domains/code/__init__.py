"""Code completion: CodeFill (value + type + statement streams of Python) and its baselines, for an editor.

CodeFill (Izadi, Gismondi, Gousios, ICSE 2022) reads a Python file as two aligned streams, the token values
(byte-level BPE pieces) and their types (identifier roles from `ast`/`symtable`: FUNCTION_CALL, LOCAL_VARIABLE,
ATTRIBUTE, MODULE, ...), and learns next value, next type and statement completion together; value candidates
are re-ranked by the predicted type. Baselines through the same verbs: the value-only ablation (multitask=false)
and a Kneser-Ney n-gram (model=ngram). The encoder is any zoo backbone (model.kwargs.backbone=transformer |
hyena | xlstm | mamba | s5). Metrics: accuracy and MRR@10 of the next piece on all tokens and at the paper's
cardinal points; ROUGE-L and exact match of statement completion at n = 2..8 tokens.

The embedded data is the running interpreter's standard library (no download), split by top-level package;
data.path=<folder of .py | .jsonl> for your own code. `zoo code predict file=x.py line=L col=C` prints
completion items as JSON for an editor (file=- reads stdin). Details: docs/code.md.
"""

from pathlib import Path

EXAMPLES = [
    "zoo code train                                     # CodeFill, 80 stdlib files, 2 epochs (~2 min of one CPU core)",
    "zoo code train multitask=false                     # the value-only ablation; model=ngram: Kneser-Ney baseline",
    "zoo code train model.kwargs.backbone=hyena         # another encoder: transformer | hyena | xlstm | mamba | s5",
    "zoo code predict file=x.py line=12 col=8 topk=5    # completion items as JSON (newest training run)",
    "cat x.py | zoo code predict line=12 col=8 mode=statement   # the rest of the statement, source from stdin",
    "zoo code eval ckpt_path=last                       # test metrics of the newest training run",
    "zoo code export output=codefill_stdlib             # folder for zoo.load_pipeline / Completer.from_pretrained",
    "zoo code finetune weights=codefill_stdlib data.path=my_project/   # go on training on your own code",
    "zoo code train data.path=my_project/ data.max_files=null        # your .py files (or a .jsonl of files)",
]

SNIPPET = Path(__file__).parent / "configs" / "examples" / "snippet.py"

# `make demo`: a width-64 CodeFill on 40 stdlib files, windows of 128 pieces, 2 epochs of ~60 steps (about 30 s of
# one CPU core), then the completions after `os.path.` in an embedded snippet (methods such as `join`, `get`).
DEMO = {
    "train": [
        "data.max_files=40",
        "data.statement_examples=20",
        "data.progress=false",
        "data.batch_size=8",
        "data.context=128",
        "model.kwargs.dim=64",
        "task.optimizer.lr=3e-3",
        "trainer.max_epochs=2",
        "threads=1",
        "trainer.enable_progress_bar=false",
    ],
    "predict": [f"file={SNIPPET}", "line=16", "col=23", "topk=5", "threads=1"],
    "metric": "test/mrr@10_cardinal",
}
