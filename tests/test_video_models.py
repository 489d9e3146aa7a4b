"""Frame predictors (ConvS5, ConvLSTM, video Transformer): step == forward, resets, rollout, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from domains.video.moving_digits import MovingDigits
from zoo import create_model, from_pretrained
from zoo.errors import ZooError
from zoo.hub import save_pretrained
from zoo.models.video_base import next_frame_loss

MODELS = ["test_convs5", "test_convlstm", "test_video_transformer"]


def build(name: str, **kwargs):
    torch.manual_seed(0)
    return create_model(name, **kwargs).double().eval()


def clips(batch=2, length=7, seed=0) -> torch.Tensor:
    return torch.rand(batch, length, 1, 16, 16, generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("name", MODELS)
def test_declares_capabilities(name):
    model = build(name)
    assert model.recurrent and model.causal and model.predicts_frames
    assert model(clips()).shape == (2, 7, 1, 16, 16)


@pytest.mark.parametrize("name", MODELS)
def test_step_equals_parallel_forward_with_resets(name):
    model, x = build(name), clips(length=8)
    reset = torch.zeros(2, 8, dtype=torch.bool)
    reset[0, 3] = reset[1, 6] = True
    with torch.no_grad():
        full = model(x, reset=reset)
        state, steps = model.init_state(2), []
        for t in range(8):
            y, state = model.step(x[:, t], state, reset[:, t])
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_reset_equals_running_clips_separately(name):
    model, x = build(name), clips(batch=1, length=9)
    reset = torch.zeros(1, 9, dtype=torch.bool)
    reset[0, 5] = True
    with torch.no_grad():
        joined = model(x, reset=reset)
        torch.testing.assert_close(joined[:, :5], model(x[:, :5]), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(joined[:, 5:], model(x[:, 5:]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_rollout_shapes_and_first_frame_equals_step(name):
    model, context = build(name), clips(length=5)
    with torch.no_grad():
        generated = model.rollout(context, horizon=4)
        state = model.init_state(2)
        for t in range(5):
            out, state = model.step(context[:, t], state)
        first = model.to_frames(out)
        second, _ = model.step(first, state)
    assert generated.shape == (2, 4, 1, 16, 16)
    assert generated.min() >= 0 and generated.max() <= 1
    torch.testing.assert_close(generated[:, 0], first, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(generated[:, 1], model.to_frames(second), rtol=1e-9, atol=1e-9)
    assert model.rollout(context, horizon=0).shape == (2, 0, 1, 16, 16)


def state_numel(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, dict):
        return sum(state_numel(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_numel(v) for v in state)
    return 0


@pytest.mark.parametrize(
    "name, constant", [("test_convs5", True), ("test_convlstm", True), ("test_video_transformer", False)]
)
def test_generation_memory_per_frame(name, constant):
    """Recurrent states keep their size as frames are generated; the Transformer's KV cache grows by one frame."""
    model = build(name)
    with torch.no_grad():
        out, state = model.prefill(clips(length=6))
        sizes = [state_numel(state)]
        for _ in range(3):
            out, state = model.step(model.to_frames(out), state)
            sizes.append(state_numel(state))
    growth = {b - a for a, b in zip(sizes, sizes[1:])}
    assert growth == {0} if constant else (len(growth) == 1 and growth.pop() > 0)


def test_next_frame_loss_skips_targets_across_a_reset():
    model, x = build("test_convs5"), clips(batch=1, length=8)
    reset = torch.zeros(1, 8, dtype=torch.bool)
    reset[0, 3] = True
    with torch.no_grad():
        joined = next_frame_loss(model, x, reset)
        first, second = next_frame_loss(model, x[:, :3]), next_frame_loss(model, x[:, 3:])
    torch.testing.assert_close(joined, (2 * first + 4 * second) / 6)  # 2 + 4 targets; the one at the reset is skipped


def test_classifier_mode_and_bad_frames():
    model = build("test_convs5", num_classes=4, global_pool="mean")
    assert model.decoder is None and model(clips()).shape == (2, 4)
    with pytest.raises(ZooError, match="frame decoder"):
        model.rollout(clips(), 2)
    framed = build("test_convlstm")
    framed.reset_classifier(3)
    assert framed.decoder is None and framed(clips()).shape == (2, 7, 3)
    with pytest.raises(ZooError, match=r"\(C, H, W\) = \(1, 16, 16\)"):
        build("test_video_transformer")(torch.rand(2, 3, 1, 32, 32).double())
    with pytest.raises(ZooError, match="multiple of 4"):
        create_model("test_convs5", image_size=18)


@pytest.mark.parametrize("name", MODELS)
def test_training_on_moving_digits_beats_baselines(name):
    """120 Adam steps on 32 train clips; next-frame BCE on clips of unseen test digits must fall below
    both a constant-intensity predictor and copying the previous frame (probabilities clamped to [0.01, 0.99])."""
    torch.set_num_threads(1)
    kwargs = dict(num_clips=32, clip_length=8, image_size=16, num_digits=1, seed=0)
    train, test = MovingDigits("train", **kwargs), MovingDigits("test", **{**kwargs, "num_clips": 16})
    held_out = torch.stack([test[i]["frames"] for i in range(len(test))])
    torch.manual_seed(0)
    model = create_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = next_frame_loss(model.eval(), held_out).item()
    model.train()
    loader = DataLoader(train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(30):
        for batch in loader:
            loss = next_frame_loss(model, batch["frames"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        after = next_frame_loss(model.eval(), held_out).item()
    target = held_out[:, 1:]
    constant = F.binary_cross_entropy(target.new_full(target.shape, held_out.mean().item()), target).item()
    copy = F.binary_cross_entropy(held_out[:, :-1].clamp(0.01, 0.99), target).item()
    assert after < 0.5 * before
    assert after < 0.9 * min(constant, copy), (after, constant, copy)


@pytest.mark.parametrize("name", MODELS)
def test_frame_predictor_save_load_identical(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, image_size=32).eval()
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m").eval()
    assert loaded.predicts_frames and loaded.image_size == 32
    x = torch.rand(1, 4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_paper_sizes_match_the_published_moving_mnist_configs():
    """The ConvS5 paper's Moving-MNIST models (the authors' published hyperparameters): a 16x16x256 latent from
    64x64 frames and 8 layers in each; ConvS5 with P = 256 (128 complex), a 3x3 D, GELU, post-norm, clipped
    eigenvalues."""
    convs5 = create_model("convs5_moving_mnist")
    assert (convs5.image_size, convs5.latent_size, convs5.latent_dim, len(convs5.blocks)) == (64, 16, 256, 8)
    for block in convs5.blocks:
        ssm = block.ssm
        assert (ssm.state_size, ssm.kernel_size, ssm.out_kernel_size, ssm.clip_eigs) == (128, 3, 3, True)
        assert ssm.D.shape == (256, 256, 3, 3)
        assert (block.activation, block.prenorm, block.gate) == ("gelu", False, None)
        dt = ssm.log_step.exp()
        assert dt.min() >= 1e-3 and dt.max() <= 1e-1
    convlstm = create_model("convlstm_moving_mnist")
    assert [(c.hidden, c.hidden_conv.kernel_size) for c in convlstm.cells] == [(256, (3, 3))] * 8
    with torch.device("meta"):  # 236M parameters: the shapes are what is checked
        transformer = create_model("video_transformer_moving_mnist")
    assert (transformer.tokens_per_frame, transformer.dim, len(transformer.layers)) == (1, 1024, 8)
    layer = transformer.layers[0]
    assert (layer.attn.num_heads, layer.mlp[0].out_features) == (16, 4096)
