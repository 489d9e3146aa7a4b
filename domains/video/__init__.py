"""Video: long-horizon frame prediction (ConvS5, ConvLSTM, a causal video Transformer) and captioning (SwinBERT).

Train a model to predict the next frame (teacher forcing), then let it generate: given the
first `context` frames of a clip it rolls out `horizon` frames, each from its own previous
prediction, scored per horizon step with PSNR and SSIM against the truth and against the
copy-last-frame baseline. The embedded data are moving digits (real handwritten digits from
scikit-learn, bouncing on a 32x32 canvas; the test clips use digit images never seen in
training), so every verb runs without a download. Give data.path=<video file | GIF | folder of
frames | folder of videos> for your own (mp4/webm/avi/mov/mkv through PyAV). `predict` writes a
GIF (and an MP4) of truth | prediction and a PNG strip for each clip. Bad videos stop the run
with one line, or are skipped with data.on_invalid=skip. experiment=captioning trains SwinBERT on
clips with captions (the digits' template captions, or data.captions=<MSR-VTT .json | video,caption .csv>)
and reports BLEU-4, CIDEr-D, ROUGE-L and, on the digits, slot accuracy; `predict` writes captions.
"""

EXAMPLES = [
    "zoo video train                                     # ConvS5 on the embedded moving digits, 32x32",
    "zoo video train model=convlstm                      # baselines: model=convlstm | model=video_transformer",
    "zoo video eval ckpt_path=last data.horizon=200 data.num_test_clips=32   # PSNR/SSIM at steps 10, 50, 200",
    "zoo video predict ckpt_path=last                    # GIF/MP4/PNG of 8 test clips + predictions.csv",
    "zoo video predict ckpt_path=last data.predict_path=my_clips/ data.horizon=30",
    "zoo video export ckpt_path=last output=convs5_digits   # hub folder (zoo.from_pretrained reads it)",
    "zoo video train data.path=my_videos/ image_size=64 in_channels=3 data.fps=10 data.clip_length=24",
    "zoo video finetune weights=convs5_digits data.path=my_videos/ data.on_invalid=skip",
    "zoo video train experiment=moving_mnist              # the paper's size and protocol, for a GPU",
    "zoo video train experiment=captioning               # SwinBERT captions of the moving digits",
    "zoo video train experiment=captioning model.kwargs.learned_mask=false   # without the learned sparse mask",
    "zoo video train experiment=captioning data.path=my_videos/ data.captions=captions.json",
]

# `make demo`: ConvS5 for one epoch of 256 embedded clips (16 steps of 16 clips), then GIF/MP4/PNG of 4 test
# clips; about 40 s on the shared 2-core machine. The demo runner adds ckpt_path=<trained checkpoint> to predict.
DEMO = {
    "train": [
        "trainer.max_epochs=1",
        "data.num_train_clips=256",
        "data.num_test_clips=32",
        "trainer.enable_progress_bar=false",
    ],
    "predict": ["data.num_predict=4", "trainer.enable_progress_bar=false"],
    "metric": "test/psnr",
}
