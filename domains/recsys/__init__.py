"""Recommendation: Recformer (items as text, Longformer encoder) and its baselines on user histories.

Recformer (Li et al., KDD 2023) turns each item into a "key value" sentence (title, year, genre) and a
user's history into those sentences, most recent first; it is pre-trained with item-item contrastive
learning (+ MLM), then fine-tuned in the paper's two stages against a frozen table of encoded items, so
items never seen in training are ranked by their text alone. Baselines through the same verbs: SASRec
(item ids, equal size), popularity, and a TF-IDF text model. Metrics over the whole catalogue:
NDCG@10, Recall@10, MRR. The embedded data is MovieLens-100k from RecBole's wheel (no download); give
data.path=<.inter|.jsonl> (and data.item_path=<.item|.jsonl>) for your own histories.

`history="Toy Story (1995); Heat (1995)"` works as the shell leaves it: `zoo` passes a value Hydra
cannot parse (';', '(') as plain text.
"""

EXAMPLES = [
    "zoo recsys train                                   # Recformer: pre-training, two-stage fine-tuning (~1-2 min)",
    "zoo recsys train model=sasrec                      # baselines: model=sasrec | popularity | text_tfidf",
    "zoo recsys train experiment=zero_shot              # 20% of items never trained on; test ranks them by text",
    'zoo recsys predict history="Toy Story (1995); Heat (1995)" topk=10     # newest training run',
    'zoo recsys predict history="Toy Story (1995)" items=new.item         # new items, no retraining',
    "zoo recsys eval ckpt_path=last                     # test metrics of the newest training run",
    "zoo recsys export output=recformer_ml100k          # folder for zoo.load_pipeline / finetune weights=",
    "zoo recsys train experiment=pretrain               # pre-training only, then:",
    "zoo recsys finetune weights=<exported folder>      # the paper's two-stage fine-tuning alone",
    "zoo recsys train data.path=my.inter data.item_path=my.item   # your RecBole atomic files (or .jsonl)",
]

# `make demo`: Recformer on 300 users x the 400 most rated movies, 2 pre-training + 3 fine-tuning epochs (12 s
# on one thread at load 1), then the top 10 after a two-movie history (6 s).
DEMO = {
    "train": [
        "data.max_users=300",
        "pretrain_epochs=2",
        "task.stage1_epochs=2",
        "trainer.max_epochs=5",
        "threads=1",
        "trainer.enable_progress_bar=false",
    ],
    "predict": ["history=Toy Story (1995); Heat (1995)", "topk=10", "threads=1"],
    "metric": "test/ndcg@10",
}
