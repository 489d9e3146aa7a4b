"""Hyena / HyenaDNA (Poli et al. 2023; Nguyen et al. 2023): official checkpoints convert to outputs equal
to a restatement of the official code, plus fftconv use, causality, the filter shift and padding masks."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
import torch.nn.functional as F

from tests.reference import hyenadna_release as release
from tests.reference.hyenadna_release import reference_model, write_lightning
from zoo import create_model, from_pretrained
from zoo.convert import detect_format
from zoo.convert.hyenadna import _architecture_name, read_lightning_checkpoint, zoo_kwargs
from zoo.errors import ZooError
from zoo.layers import hyena
from zoo.layers.hyena import HyenaOperator, ImplicitFilter
from zoo.models.hyenadna import RELEASED_SIZES, HyenaDNA

SIZE = dict(d_model=16, n_layer=2, d_inner=32, l_max=64)
FILTER = dict(filter_order=8, emb_dim=5, w=10)
TOKENS = torch.randint(0, 12, (2, 40), generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny; on a shared, oversubscribed CPU, OpenMP's thread hand-offs cost 20x the math."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference(kind: str, seed: int = 0, **options):
    return reference_model(kind, SIZE, seed, filter_args=FILTER, **options)


def lightning_config(checkpointed=False, **layer) -> dict:
    return release.lightning_config(SIZE, checkpointed, filter_args=FILTER, **layer)


def hf_config() -> dict:
    return release.hf_config(SIZE, FILTER)


def write_hf(folder, ref, fmt="safetensors", drop=()):
    return release.write_hf(folder, ref, hf_config(), fmt, drop)


VARIANTS = {  # name: (reference model, how its folder is written)
    "lightning": (dict(kind="lightning"), lambda f, ref: write_lightning(f, ref, lightning_config())),
    "lightning_grad_checkpointing": (
        dict(kind="lightning", seed=1, checkpointed=True),
        lambda f, ref: write_lightning(f, ref, lightning_config(checkpointed=True)),
    ),
    "lightning_training_shift_normalized": (
        dict(kind="lightning", seed=2, shift=0.0, normalized=True),
        lambda f, ref: write_lightning(f, ref, lightning_config(shift=0.0, normalized=True)),
    ),
    "hf_safetensors_z_parameter": (dict(kind="hf", seed=3, z_as_parameter=True), write_hf),
    "hf_bin": (dict(kind="hf", seed=4), lambda f, ref: write_hf(f, ref, fmt="bin")),
    # Tables left out of the file are recomputed from the config: checks our z, t and deltas formulas.
    "hf_without_fixed_tables": (
        dict(kind="hf", seed=5, jitter=False),
        lambda f, ref: write_hf(f, ref, drop=("pos_emb.z", "pos_emb.t", "modulation.deltas")),
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_official_checkpoint_converts_to_equal_outputs(tmp_path, variant):
    spec, write = VARIANTS[variant]
    ref = reference(**spec)
    folder = write(tmp_path / variant, ref)
    assert detect_format(folder) == "hyenadna"
    model = from_pretrained(folder).eval()
    with torch.no_grad():
        hidden_ref, logits_ref = ref(TOKENS)
        hidden = model.forward_features(TOKENS)
        logits = model.lm_logits(hidden)
    torch.testing.assert_close(hidden, hidden_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, logits_ref, atol=1e-5, rtol=1e-5)


def test_weights_ckpt_needs_the_allowlist_and_loads_with_weights_only(tmp_path):
    folder = write_lightning(tmp_path / "ckpt", reference("lightning"), lightning_config())
    with pytest.raises(Exception, match="omegaconf"):
        torch.load(folder / "weights.ckpt", weights_only=True)
    assert "model.backbone.ln_f.weight" in read_lightning_checkpoint(folder / "weights.ckpt")


def test_converter_names_unmapped_missing_and_misshapen_keys(tmp_path):
    ref = reference("hf")
    folder = write_hf(tmp_path / "extra", ref, fmt="bin")
    state = torch.load(folder / "pytorch_model.bin")
    torch.save({**state, "hyena.backbone.layers.0.mixer.mystery.weight": torch.zeros(2)}, folder / "pytorch_model.bin")
    with pytest.raises(ZooError, match=r"unmapped: hyena\.backbone\.layers\.0\.mixer\.mystery\.weight"):
        from_pretrained(folder)
    del state["hyena.backbone.layers.1.mlp.fc2.bias"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ZooError, match=r"missing \(zoo names\): blocks\.1\.mlp\.fc2\.bias"):
        from_pretrained(folder)
    folder = write_hf(tmp_path / "shape", ref, fmt="bin")
    (folder / "config.json").write_text(json.dumps({**hf_config(), "d_inner": 48}))
    with pytest.raises(ZooError, match=r"wrong shape: .*fc1\.weight"):
        from_pretrained(folder)


def test_unsupported_official_options_are_refused():
    with pytest.raises(ZooError, match="order=3"):
        zoo_kwargs(lightning_config(order=3))
    with pytest.raises(ZooError, match="attn_layer_idx"):
        zoo_kwargs({**lightning_config(), "attn_layer_idx": [1]})


RELEASED_HF_CONFIGS = {  # (d_model, n_layer, d_inner, max_seq_len) of each LongSafari/*-hf config.json
    "hyenadna_tiny_1k": (128, 2, 512, 1026),
    "hyenadna_tiny_1k_d256": (256, 2, 1024, 1026),
    "hyenadna_tiny_16k": (128, 2, 512, 16386),
    "hyenadna_small_32k": (256, 4, 1024, 32770),
    "hyenadna_medium_160k": (256, 8, 1024, 160002),
    "hyenadna_medium_450k": (256, 8, 1024, 450002),
    "hyenadna_large_1m": (256, 8, 1024, 1000002),
}


@pytest.mark.parametrize("name", RELEASED_HF_CONFIGS)
def test_released_configs_convert_to_the_registered_architectures(name):
    d_model, n_layer, d_inner, seq = RELEASED_HF_CONFIGS[name]
    config = {
        **hf_config(),
        "d_model": d_model,
        "n_layer": n_layer,
        "d_inner": d_inner,
        "max_seq_len": seq,
        "activation_freq": 10,
        "emb_dim": 5,
        "filter_order": 64,
    }  # the other fields are as released
    kwargs = zoo_kwargs(config)
    assert _architecture_name(kwargs) == name
    defaults = {k: p.default for k, p in inspect.signature(HyenaDNA).parameters.items()} | {"vocab_size": 12}
    assert kwargs == {k: {**defaults, **RELEASED_SIZES[name]}[k] for k in kwargs}
    with torch.device("meta"):
        ours, theirs = create_model(name).state_dict(), HyenaDNA(**kwargs).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize(
    "name,l_max,checkpointing", [("hyenadna_tiny_1k", 1026, False), ("hyenadna_large_1m", 1000002, True)]
)
def test_released_lightning_configs_convert_to_the_registered_architectures(name, l_max, checkpointing):
    size = RELEASED_SIZES[name]
    config = release.lightning_config({**size, "l_max": l_max}, checkpointing)
    kwargs = zoo_kwargs(config)
    assert _architecture_name(kwargs) == name and kwargs["filter_shift"] == 0.05
    defaults = {k: p.default for k, p in inspect.signature(HyenaDNA).parameters.items()} | {"vocab_size": 12}
    assert kwargs == {k: {**defaults, **size}[k] for k in kwargs}


def naive_causal_conv(u, k, bias, causal=True):
    """y[t] = sum_{s<=t} k[s] u[t-s] + bias * u[t], by a direct (quadratic) convolution."""
    length = u.shape[-1]
    y = F.conv1d(F.pad(u, (length - 1, 0)), k[:, :length].flip(-1)[:, None], groups=u.shape[1])
    return y + u * bias[:, None]


@pytest.mark.parametrize("order", [2, 3])
def test_operator_fftconv_equals_naive_convolution(monkeypatch, order):
    torch.manual_seed(order)
    op = HyenaOperator(8, max_seq_len=64, order=order, filter_order=8).double()
    u = torch.randn(2, 37, 8, dtype=torch.float64)
    expected_fft = op(u)
    monkeypatch.setattr(hyena, "fftconv", naive_causal_conv)
    torch.testing.assert_close(expected_fft, op(u), atol=1e-10, rtol=1e-10)


def test_causal_future_tokens_do_not_change_the_past():
    model = create_model("test_hyenadna").eval()
    later = TOKENS.clone()
    later[:, 25:] = (later[:, 25:] + 3) % 12
    with torch.no_grad():
        a, b = model.forward_features(TOKENS), model.forward_features(later)
    torch.testing.assert_close(a[:, :25], b[:, :25], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(a[:, 25:], b[:, 25:])


def test_filter_shift_adds_shift_times_raw_mlp_output():
    torch.manual_seed(0)
    shifted = ImplicitFilter(6, 50, shift=0.05, width=8)
    plain = ImplicitFilter(6, 50, shift=0.0, width=8)
    plain.load_state_dict(shifted.state_dict())
    with torch.no_grad():
        raw = shifted.raw(40).transpose(0, 1)
        torch.testing.assert_close(shifted(40) - plain(40), 0.05 * raw, atol=1e-6, rtol=1e-5)
        window = torch.exp(-shifted.t[:40] * shifted.deltas.abs()).transpose(0, 1)
        torch.testing.assert_close(plain(40), raw * window)


def test_padding_mask_left_and_right():
    model = create_model("test_hyenadna").eval()
    real = TOKENS[:1, :30]
    pads_a, pads_b = torch.full((1, 10), 4), torch.randint(0, 12, (1, 10), generator=torch.Generator().manual_seed(5))
    mask = torch.cat([torch.zeros(1, 10, dtype=torch.bool), torch.ones(1, 30, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        left_a = model.forward_features(torch.cat([pads_a, real], 1), mask)
        left_b = model.forward_features(torch.cat([pads_b, real], 1), mask)
        right = model.forward_features(torch.cat([real, pads_b], 1), mask.flip(1))
        alone = model.forward_features(real)
    torch.testing.assert_close(left_a[:, 10:], left_b[:, 10:], atol=0, rtol=0)
    torch.testing.assert_close(right[:, :30], alone, atol=1e-6, rtol=1e-6)


def test_input_longer_than_context_is_a_clear_error():
    model = create_model("test_hyenadna", max_seq_len=32)
    with pytest.raises(ZooError, match="exceeds this HyenaDNA's max_seq_len 32"):
        model(TOKENS)


def test_next_token_loss_falls():
    torch.manual_seed(0)
    model = create_model("test_hyenadna", embed_dropout=0.0, n_layer=1, max_seq_len=32)
    pattern = torch.tensor([7, 8, 9, 10, 7, 9]).repeat(4)[None].repeat(2, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        logits = model.lm_logits(model.forward_features(pattern[:, :-1]))
        loss = F.cross_entropy(logits.flatten(0, 1), pattern[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
