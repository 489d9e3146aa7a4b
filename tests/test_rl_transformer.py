"""The Transformer over the trial: a bounded window, attention blocked at resets, chunks continuing a cache.

(Step-by-step acting == the chunk forward, and a reset == a fresh start, are tested
for every core in test_rl_ppo.py.)
"""

from __future__ import annotations

import pytest
import torch

import domains.rl.policy_cores  # noqa: F401
from zoo import create_model
from zoo.errors import ZooError


def core(memory: int = 4):
    torch.manual_seed(0)
    model = create_model("transformer_policy_small", in_features=3, dim=16, heads=2, memory=memory).eval()
    with torch.no_grad():  # a nonzero distance bias, so positions matter as after training
        for block in model.blocks:
            block.attn.distance_bias.normal_()
    return model


def inputs(batch: int, length: int, *resets: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random observations (batch, length, 3) and reset flags True at the given (env, step) pairs."""
    reset = torch.zeros(batch, length, dtype=torch.bool)
    for env, step in resets:
        reset[env, step] = True
    return torch.randn(batch, length, 3), reset


def test_receptive_field_is_depth_times_memory():
    """Each layer looks `memory` steps back (Transformer-XL).

    With 2 layers, t sees t - 2 memory, not t - 2 memory - 1.
    """
    model, t = core(2), 9
    m = 2 * model.memory
    x = torch.randn(1, 10, 3)
    with torch.no_grad():
        base = model.forward_features(x)[0, t]
        for lag, should_change in ((m, True), (m + 1, False), (m + 3, False)):
            poked = x.clone()
            poked[0, t - lag] += 5.0
            changed = not torch.allclose(model.forward_features(poked)[0, t], base, atol=1e-6)
            assert changed == should_change, f"lag {lag}"


def test_reset_blocks_attention_to_the_previous_episode():
    model = core(8)
    x, reset = inputs(1, 8, (0, 5))
    with torch.no_grad():
        out = model.forward_features(x, reset=reset)
        poked = x.clone()
        poked[0, :5] = torch.randn(5, 3)
        torch.testing.assert_close(model.forward_features(poked, reset=reset)[0, 5:], out[0, 5:])
        assert not torch.allclose(model.forward_features(poked)[0, 5:], model.forward_features(x)[0, 5:])


def test_chunks_continuing_the_cache_equal_one_pass():
    model = core(5)
    x, reset = inputs(2, 13, (1, 7))
    with torch.no_grad():
        whole = model.forward_features(x, reset=reset)
        state, parts = model.init_state(2), []
        for lo, hi in ((0, 3), (3, 8), (8, 13)):
            y, state = model.forward_chunk(x[:, lo:hi], state, reset[:, lo:hi])
            parts.append(y)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=1e-4)
    assert state[0].shape == (2, 5) and state[1][0].shape[2] == 5  # the state stays memory-sized


def test_bad_sizes_fail_clearly():
    with pytest.raises(ZooError, match="not divisible by heads"):
        create_model("transformer_policy_small", in_features=3, dim=30, heads=4)
    with pytest.raises(ZooError, match="memory=0"):
        create_model("transformer_policy_small", in_features=3, memory=0)
