"""Registry-wide tests: every family's `test_<family>` model keeps the backbone contract."""

from __future__ import annotations

import pytest
import torch

from zoo import create_model, from_pretrained, list_models
from zoo.hub import save_pretrained

# Backbones that domains declare (the RL policy cores) are listed too: zoo.registry imports
# the `longzoo.models` entry points on first lookup (tests/test_core_structure.py).
TEST_MODELS = list_models("test_*")


def build(name: str, **kwargs):
    torch.manual_seed(0)
    return create_model(name, **kwargs).eval()


def test_every_family_has_a_test_variant():
    from zoo.registry import model_family

    families = {model_family(n) for n in list_models()}
    tested = {model_family(n) for n in TEST_MODELS}
    assert families <= tested, f"families without a test_<family> model: {families - tested}"


@pytest.mark.parametrize("name", TEST_MODELS)
def test_small_enough(name):
    assert sum(p.numel() for p in build(name).parameters()) <= 100_000


@pytest.mark.parametrize("name", TEST_MODELS)
def test_forward_finite_and_shaped(name):
    model = build(name, num_classes=5)
    x = model.example_inputs(2, 16)
    y = model(x)
    assert y.shape[0] == 2 and y.shape[-1] == 5
    assert torch.isfinite(y).all()
    features = model.forward_features(x)
    assert features.shape[-1] == model.num_features


@pytest.mark.parametrize("name", TEST_MODELS)
def test_every_parameter_gets_a_gradient(name):
    model = build(name, num_classes=3).train()
    x = model.example_inputs(2, 16)
    model(x).float().pow(2).mean().backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert not missing, f"no (finite) gradient for {missing}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_reset_classifier_changes_head_width(name):
    model = build(name, num_classes=3)
    x = model.example_inputs(2, 8)
    model.reset_classifier(7)
    assert model(x).shape[-1] == 7
    model.reset_classifier(0)
    assert model(x).shape[-1] == model.num_features


@pytest.mark.parametrize("name", TEST_MODELS)
def test_pooled_head(name):
    model = build(name, num_classes=4, global_pool="mean")
    assert model(model.example_inputs(3, 8)).shape == (3, 4)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_save_load_identical(name, tmp_path):
    model = build(name, num_classes=2)
    x = model.example_inputs(2, 12)
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m").eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in TEST_MODELS if getattr(build(n), "recurrent", False)])
def test_step_equals_forward(name):
    model = build(name, num_classes=3).double()
    x = model.example_inputs(2, 12)
    x = x.double() if x.is_floating_point() else x
    with torch.no_grad():
        full = model(x)
        state = model.init_state(2, dtype=torch.float64)
        steps = []
        for t in range(x.shape[1]):
            y, state = model.step(x[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-6, atol=1e-6)
