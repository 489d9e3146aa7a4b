"""`zoo video`: PSNR/SSIM against hand-computed values, the datamodule and its contract, train -> predict ->
export -> load through `zoo.training.run` (as the CLI), and a trained ConvS5 beating copy-last-frame on unseen
digits."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from torch.utils.data import DataLoader

from domains.video.data import VideoDataModule, pad_clips
from domains.video.metrics import MAX_PSNR, HorizonMetrics, copy_last_frame, frame_psnr, frame_ssim
from domains.video.moving_digits import MovingDigits
from tests.zoo_cli import one_line_error, zoo
from zoo import create_model, from_pretrained, open_weights
from zoo.errors import DataError
from zoo.models.video_base import next_frame_loss
from zoo.training import restore_task, run

TINY = [
    "model.name=test_convs5",
    "model.kwargs={}",
    "image_size=16",
    "context=4",
    "horizon=6",
    "data.clip_length=8",
    "data.num_train_clips=32",
    "data.num_val_clips=8",
    "data.num_test_clips=8",
    "data.num_predict=3",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]


def config(run_dir: Path, *overrides: str, base: tuple[str, ...] = tuple(TINY)):
    with initialize_config_module(config_module="domains.video.configs", version_base="1.3"):
        return compose(
            "train", overrides=[f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir.parent}", *base, *overrides]
        )


# ------------------------------------------------------------------------------------------- metrics


def reference_ssim(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM (Wang et al. 2004) written out: Gaussian-weighted means/variances in the window around every pixel
    (borders reflected), averaged over the frame."""
    offsets = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    w = np.outer(g / g.sum(), g / g.sum())
    c1, c2 = 0.01**2, 0.03**2
    pad = size // 2
    x, y = np.pad(x, pad, mode="reflect"), np.pad(y, pad, mode="reflect")
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * a * a).sum() - mu_a**2, (w * b * b).sum() - mu_b**2
            cov = (w * a * b).sum() - mu_a * mu_b
            values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_psnr_and_ssim_equal_hand_computed_values():
    grey, light = torch.full((1, 2, 1, 16, 16), 0.2), torch.full((1, 2, 1, 16, 16), 0.6)
    assert torch.allclose(frame_psnr(grey, light), torch.full((1, 2), 10 * math.log10(1 / 0.4**2)))
    # constant frames: no variance, so SSIM is the luminance term alone
    expected = (2 * 0.2 * 0.6 + 1e-4) / (0.2**2 + 0.6**2 + 1e-4)
    assert torch.allclose(frame_ssim(grey, light), torch.full((1, 2), expected), atol=1e-6)
    x = torch.rand(16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = (x + 0.2 * torch.rand(16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)).clamp(0, 1)
    mse = float(((x - y) ** 2).mean())
    assert float(frame_psnr(x.view(1, 1, 16, 16), y.view(1, 1, 16, 16))) == pytest.approx(-10 * math.log10(mse), 1e-5)
    assert float(frame_ssim(x.view(1, 1, 16, 16), y.view(1, 1, 16, 16))) == pytest.approx(
        reference_ssim(x.numpy(), y.numpy()), abs=1e-5
    )
    assert float(frame_psnr(x.view(1, 1, 16, 16), x.view(1, 1, 16, 16))) == MAX_PSNR  # exact: capped, not inf


def test_horizon_metrics_average_per_step_and_leave_out_frames_past_the_clip():
    truth = torch.full((2, 3, 1, 16, 16), 0.5)
    pred = truth.clone()
    pred[0] += 0.1  # clip 0: MSE 0.01 -> 20 dB at every step
    pred[1] += torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1, 1)  # clip 1: 20, 13.98, 10.46 dB
    valid = torch.tensor([[True, True, True], [True, True, False]])  # clip 1 ended after 2 generated frames
    metrics = HorizonMetrics(report_steps=(2, 50))
    metrics.update(pred, truth, valid)
    curve = metrics.curve()["psnr"]
    db = [10 * math.log10(1 / e**2) for e in (0.1, 0.2)]
    assert curve.tolist() == pytest.approx([db[0], (db[0] + db[1]) / 2, db[0]], rel=1e-5)
    result = metrics.compute()
    assert float(result["psnr"]) == pytest.approx((4 * db[0] + db[1]) / 5, rel=1e-5)
    assert float(result["psnr@2"]) == pytest.approx(curve[1].item()) and "psnr@50" not in result
    context = torch.rand(2, 4, 1, 16, 16)
    assert torch.equal(copy_last_frame(context, 3), context[:, 3:4].expand(2, 3, 1, 16, 16))


# ------------------------------------------------------------------------------------------- data


def test_embedded_clips_and_the_contract():
    data = VideoDataModule(
        image_size=16,
        context=4,
        horizon=6,
        clip_length=8,
        num_train_clips=4,
        num_val_clips=2,
        num_test_clips=3,
        batch_size=2,
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["frames"].shape == (2, 8, 1, 16, 16) and batch["length"].tolist() == [8, 8]
    assert data.test_set[0]["frames"].shape == (10, 1, 16, 16)  # context + horizon
    # test clips draw on digit images no training clip uses
    train_images = {int(i) for k in range(4) for i in MovingDigits("train", 4, 8, 16)[k]["image_indices"] if i >= 0}
    assert all(int(i) % 5 == 0 for k in range(3) for i in data.test_set.digits[k]["image_indices"] if i >= 0)
    assert all(i % 5 for i in train_images)
    with pytest.raises(DataError, match=r"reads 32x32 frames with 1 channel\(s\).*pass image_size=32") as err:
        data.accept_contract({"image_size": 32, "in_channels": 1, "context": 4})
    assert "\n" not in str(err.value)
    data.accept_contract({"image_size": 16, "in_channels": 1, "context": 7})  # the model's context wins
    assert data.context == 7 and len(data.test_set[0]["frames"]) == 13


def test_pad_clips_keeps_lengths():
    items = [
        {"id": "a", "frames": torch.ones(3, 1, 4, 4), "length": 3},
        {"id": "b", "frames": torch.ones(5, 1, 4, 4), "length": 5},
    ]
    batch = pad_clips(items, horizon=7)
    assert batch["frames"].shape == (2, 5, 1, 4, 4) and batch["length"].tolist() == [3, 5] and batch["horizon"] == 7
    assert batch["frames"][0, 3:].abs().sum() == 0 and batch["id"] == ["a", "b"]


# ------------------------------------------------------------------------------------------- end to end


def test_train_predict_export_load(tmp_path):
    trained = run(config(tmp_path / "train", "trainer.limit_train_batches=2"))
    metrics = trained["metrics"]
    for name in ("test/psnr", "test/ssim", "test/copy_last/psnr", "val/psnr", "test/loss"):
        assert math.isfinite(metrics[name]), name
    assert "test/psnr@10" not in metrics  # 6 generated frames do not reach step 10
    ckpt = trained["best_checkpoint"]

    predicted = run(config(tmp_path / "predict", "mode=predict", f"ckpt_path={ckpt}"))
    out = Path(predicted["predictions"])
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["digits-test-00000", "digits-test-00001", "digits-test-00002"]
    for row in rows:
        assert 0 < float(row["psnr"]) < MAX_PSNR and -1 <= float(row["ssim"]) <= 1 and row["generated"] == "6"
        files = [out.parent / f for f in row["files"].split(";")]
        assert {f.suffix for f in files} >= {".gif", ".png"} and all(f.is_file() and f.stat().st_size for f in files)
    from PIL import Image

    with Image.open(out.parent / rows[0]["files"].split(";")[0]) as gif:
        assert gif.n_frames == 6  # one GIF frame per generated frame

    exported = run(config(tmp_path / "export", "mode=export", f"ckpt_path={ckpt}", f"output={tmp_path / 'model'}"))
    model = from_pretrained(exported["model_dir"])
    task = restore_task(open_weights(ckpt))
    frames = torch.rand(2, 5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(frames), task.backbone(frames))
        assert torch.equal(model.rollout(frames, 4), task.backbone.rollout(frames, 4))
    assert open_weights(exported["model_dir"]).data_contract == {"image_size": 16, "in_channels": 1, "context": 4}

    # a model is never fed frames of another size: one line, exit 2, through the real command
    wrong = zoo("video", "predict", f"ckpt_path={ckpt}", *TINY, "data.image_size=32", runs=tmp_path / "runs")
    assert "reads 16x16 frames with 1 channel(s)" in one_line_error(wrong)


def test_captioning_train_predict_export_and_finetune_on_new_words(tmp_path, caplog):
    """experiment=captioning: SwinBERT on moving digits, train -> predict (CSV + MSR-VTT JSON) -> export -> load."""
    tiny = [
        "experiment=captioning",
        "image_size=16",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "data.num_frames=4",
        "data.num_train_clips=32",
        "data.num_val_clips=4",
        "data.num_test_clips=8",
        "data.num_predict=3",
        "data.batch_size=8",
        "model.kwargs={}",
    ]
    trained = run(config(tmp_path / "train", base=tuple(tiny)))
    for name in ("test/cider_d", "test/bleu4", "test/rouge_l", "test/slots/digit", "test/slots/direction"):
        assert math.isfinite(trained["metrics"][name]), name
    ckpt = trained["best_checkpoint"]
    predicted = run(config(tmp_path / "predict", "mode=predict", f"ckpt_path={ckpt}", base=tuple(tiny)))
    with open(predicted["predictions"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(row["reference"].startswith("the digit") for row in rows)
    sentences = json.loads(Path(predicted["predictions"]).with_suffix(".captions.json").read_text())["sentences"]
    assert [s["caption"] for s in sentences] == [row["caption"] for row in rows]
    exported = run(config(tmp_path / "export", "mode=export", f"ckpt_path={ckpt}", base=tuple(tiny)))
    model, task = from_pretrained(exported["model_dir"]), restore_task(open_weights(ckpt))
    frames = torch.rand(2, 4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert model.generate(frames) == task.backbone.generate(frames)
    assert open_weights(exported["model_dir"]).data_contract["vocab"] == task.tokenizer.words

    # fine-tuning on the user's captions with words the model never saw: its vocabulary stays, they read as [UNK]
    captions = tmp_path / "captions.csv"
    captions.write_text("video,caption\nclip_a,the digit 3 moves up past a red ball\n")
    videos = Path(__file__).parent / "bad_inputs" / "video" / "caption_videos"
    overrides = ("mode=finetune", f"weights={ckpt}", f"data.path={videos}", f"data.captions={captions}")
    with caplog.at_level(logging.WARNING, logger="domains.video"):
        tuned = run(
            config(tmp_path / "finetune", *overrides, "data.val_fraction=0", "data.test_fraction=0", base=tuple(tiny))
        )
    assert "4 words of these captions are not in it and are read as [UNK] (e.g. a, ball, past, red)" in caplog.text
    assert restore_task(open_weights(tuned["best_checkpoint"])).tokenizer.words == task.tokenizer.words


def test_trained_convs5_beats_copy_last_frame_on_unseen_digits():
    """test_convs5 (16x16 frames, one digit), 256 teacher-forced steps, then 5 frames generated after 5 of
    context on test clips (digit images never trained on). Measured when written: 19.27 dB vs 17.71 dB for
    copy-last-frame (all-black frames: 14.80 dB); seeds 1 and 2 of the model gave 19.15 and 19.32 dB."""
    torch.manual_seed(0)
    model = create_model("test_convs5")
    epochs, lr = 8, 1e-2
    train = MovingDigits("train", num_clips=512, clip_length=10, image_size=16, num_digits=1, seed=0)
    loader = DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * len(loader), pct_start=0.2)
    for _ in range(epochs):
        for batch in loader:
            loss = next_frame_loss(model, batch["frames"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    test = MovingDigits("test", num_clips=64, clip_length=10, image_size=16, num_digits=1, seed=0)
    clips = torch.stack([test[i]["frames"] for i in range(len(test))])
    context, truth = clips[:, :5], clips[:, 5:]
    model.eval()
    ours = float(frame_psnr(model.rollout(context, 5), truth).mean())
    copy = float(frame_psnr(copy_last_frame(context, 5), truth).mean())
    assert ours > copy + 1.0, (ours, copy)
