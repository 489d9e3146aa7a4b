"""PPO pieces against hand-computed values; resets inside the policy core; sampling."""

from __future__ import annotations

import math

import pytest
import torch

import domains.rl.policy_cores  # noqa: F401
from domains.rl.agent import ActorCriticHeads, Agent, index_state, sample_actions
from domains.rl.ppo import PPOConfig, gae, ppo_loss
from zoo import create_model


def test_gae_hand_computed():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.4], [0.3]])
    dones = torch.tensor([[False], [True], [False]])
    adv, ret = gae(rewards, values, dones, torch.tensor([0.2]), gamma=0.9, lam=0.8)
    # delta_2 = 1 + .9*.2 - .3 = .88; delta_1 = 1 - .4 = .6 (episode ends: no bootstrap); delta_0 = 1 + .9*.4 - .5 = .86
    # A_2 = .88; A_1 = .6 (the done cuts the trace); A_0 = .86 + .72*.6 = 1.292
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.292, 0.6, 0.88]))
    torch.testing.assert_close(ret[:, 0], torch.tensor([1.792, 1.0, 1.18]))


def test_gae_bootstraps_truncated_episodes():
    rewards, values = torch.tensor([[1.0], [1.0]]), torch.tensor([[0.5], [0.4]])
    dones = torch.tensor([[True], [False]])
    bootstrap = torch.tensor([[2.0], [0.0]])  # step 0 was cut by a time limit; its final obs is worth 2
    adv, _ = gae(rewards, values, dones, torch.tensor([0.2]), gamma=0.9, lam=0.8, bootstrap=bootstrap)
    # delta_1 = 1 + .9*.2 - .4 = .78; delta_0 = 1 + .9*2 - .5 = 2.3 and the done still cuts the trace
    torch.testing.assert_close(adv[:, 0], torch.tensor([2.3, 0.78]))


def test_rollout_bootstraps_from_the_final_observation_of_truncated_episodes():
    """CartPole cut at 5 steps: bootstrap = V(final obs) exactly at the cuts, 0 elsewhere (replayed by hand)."""
    from domains.rl.envs import make_env
    from domains.rl.rollout import RolloutCollector

    agent = make_agent("mlp", obs_dim=4, actions=2)
    batch = RolloutCollector(make_env("CartPole-v1", 3, max_steps=5), agent, seed=4).collect(12)
    env = make_env("CartPole-v1", 3, max_steps=5)
    _, state = env.reset(seed=4)
    expected = torch.zeros(12, 3)
    for t in range(12):
        _, state, _, _, info = env.step(state, batch.actions[t])
        cut = info["truncated"] & ~info["terminated"]
        with torch.no_grad():
            expected[t] = (
                agent.heads(agent.backbone.forward_features(info["final_observation"][:, None]))[1][:, 0] * cut
            )
    assert expected[4].abs().min() > 0 and (expected[[0, 1, 2, 3, 5, 6, 7, 8]] == 0).all()
    torch.testing.assert_close(batch.bootstrap, expected)


def test_finished_episodes_equal_a_step_by_step_tally():
    from domains.rl.rollout import finished_episodes

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        rewards = torch.randint(0, 5, (7, 5), generator=g).float()
        dones = torch.rand(7, 5, generator=g) < 0.3
        carry_r, carry_l = torch.randint(0, 5, (5,), generator=g).float(), torch.randint(0, 5, (5,), generator=g)
        run_r, run_l, returns, lengths = carry_r.clone(), carry_l.clone(), [], []
        for t in range(7):
            run_r, run_l = run_r + rewards[t], run_l + 1
            returns, lengths = returns + run_r[dones[t]].tolist(), lengths + run_l[dones[t]].tolist()
            run_r, run_l = run_r.masked_fill(dones[t], 0), run_l.masked_fill(dones[t], 0)
        got = finished_episodes(rewards, dones, carry_r, carry_l)
        assert [got[0].tolist(), got[1].tolist(), got[2].tolist(), got[3].tolist()] == [
            returns,
            lengths,
            run_r.tolist(),
            run_l.tolist(),
        ]


def test_ppo_loss_hand_computed():
    logits = torch.zeros(2, 2)  # pi(a) = 1/2
    actions = torch.tensor([0, 1])
    ratios = torch.tensor([1.5, 0.5])
    old_logp = math.log(0.5) - ratios.log()
    advantages = torch.tensor([1.0, -1.0])
    values, returns, old_values = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0]), torch.tensor([0.8, 2.5])
    cfg = PPOConfig(clip_eps=0.2, vf_coef=0.5, ent_coef=0.01, normalize_advantages=False)
    loss, stats = ppo_loss(logits, actions, old_logp, advantages, values, old_values, returns, cfg)
    # min(1.5*1, 1.2*1) = 1.2; min(.5*-1, .8*-1) = -.8  -> policy loss -(1.2 - .8)/2 = -.2
    torch.testing.assert_close(stats["policy_loss"], torch.tensor(-0.2))
    torch.testing.assert_close(stats["value_loss"], torch.tensor(0.5 * (0.25 + 1.0) / 2))
    torch.testing.assert_close(stats["entropy"], torch.tensor(math.log(2)))
    torch.testing.assert_close(stats["clip_frac"], torch.tensor(1.0))
    torch.testing.assert_close(loss, torch.tensor(-0.2 + 0.5 * 0.3125 - 0.01 * math.log(2)))
    # Value clipping: old + clamp(v - old, +-.2) = [1.0, 2.3] -> max((.25, 1), (.25, 1.69)) -> .5 * .97
    _, clipped = ppo_loss(
        logits,
        actions,
        old_logp,
        advantages,
        values,
        old_values,
        returns,
        PPOConfig(clip_value=True, normalize_advantages=False),
    )
    torch.testing.assert_close(clipped["value_loss"], torch.tensor(0.485))


def test_ppo_loss_gradient_vanishes_outside_clip():
    logits = torch.zeros(1, 2, requires_grad=True)
    old_logp = torch.tensor([math.log(0.5) - math.log(1.5)])  # ratio 1.5 > 1 + eps with a positive advantage
    loss, _ = ppo_loss(
        logits,
        torch.tensor([0]),
        old_logp,
        torch.tensor([1.0]),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        PPOConfig(ent_coef=0.0, normalize_advantages=False),
    )
    loss.backward()
    assert logits.grad.abs().max() == 0


CORES = {
    "s5": ("s5_policy_small", {"dim": 16, "state_dim": 8, "depth": 2}),
    "s5_linear_stem": ("s5_rl", {"dim": 16, "state_dim": 8, "depth": 2}),
    "gru": ("gru_policy_small", {"dim": 16}),
    "lstm": ("lstm_policy_small", {"dim": 16}),
    "mlp": ("mlp_policy_small", {"dim": 16}),
    "transformer": ("transformer_policy_small", {"dim": 16, "heads": 2, "memory": 6}),
}


def make_agent(core: str, obs_dim: int = 3, actions: int = 4) -> Agent:
    torch.manual_seed(0)
    name, kwargs = CORES[core]
    backbone = create_model(name, in_features=obs_dim, **kwargs)
    return Agent(backbone, ActorCriticHeads(backbone.num_features, actions, 8))


@pytest.mark.parametrize("core", sorted(CORES))
def test_sequence_evaluate_equals_acting_step_by_step(core):
    """Training replays a rollout crossing episode boundaries exactly as it was acted."""
    agent = make_agent(core)
    B, T = 3, 12
    x = torch.randn(B, T, 3)
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[0, 4] = reset[1, 7] = reset[2, 0] = reset[2, 9] = True
    start = index_state(agent.initial_state(B), torch.arange(B))
    with torch.no_grad():
        state, acted = start, []
        # Carry a nonzero state into the rollout, as from a previous one.
        _, _, state = agent.act(torch.randn(B, 3), state, torch.zeros(B, dtype=torch.bool))
        stored = state
        for t in range(T):
            logits, value, state = agent.act(x[:, t], state, reset[:, t])
            acted.append(torch.cat((logits, value[:, None]), -1))
        logits, values = agent.evaluate(x, reset, stored)
    torch.testing.assert_close(torch.cat((logits, values[..., None]), -1), torch.stack(acted, 1), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("core", sorted(CORES))
def test_reset_makes_output_equal_a_fresh_start(core):
    agent = make_agent(core)
    x = torch.randn(2, 10, 3)
    reset = torch.zeros(2, 10, dtype=torch.bool)
    reset[:, 6] = True
    with torch.no_grad():
        warm = agent.initial_state(2)
        _, _, warm = agent.act(torch.randn(2, 3) * 3, warm, torch.zeros(2, dtype=torch.bool))
        logits, values = agent.evaluate(x, reset, warm)
        fresh_logits, fresh_values = agent.evaluate(
            x[:, 6:], torch.zeros(2, 4, dtype=torch.bool), agent.initial_state(2)
        )
        other_logits, _ = agent.evaluate(torch.randn(2, 10, 3), reset, warm)
    torch.testing.assert_close(logits[:, 6:], fresh_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(values[:, 6:], fresh_values, atol=1e-5, rtol=1e-4)
    if core != "mlp":  # before the reset, memory matters: different history, different output
        assert not torch.allclose(logits[:, 5], other_logits[:, 5])


def test_gumbel_max_samples_follow_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0]]).expand(20000, 3)
    counts = torch.bincount(sample_actions(logits, torch.Generator().manual_seed(0)), minlength=3).float() / 20000
    torch.testing.assert_close(counts, torch.softmax(logits[0], -1), atol=0.01, rtol=0)


def test_baseline_cores_keep_the_backbone_contract():
    """step() equals forward(); right padding leaves the real positions unchanged."""
    for name, kwargs in CORES.values():
        if name.startswith("s5"):
            continue
        model = create_model(name, in_features=3, num_classes=2, **kwargs).eval()
        x = torch.randn(2, 6, 3)
        full = model(x)
        state, steps = model.init_state(2), []
        for t in range(6):
            y, state = model.step(x[:, t], state)
            steps.append(y)
        torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-4)
        mask = torch.ones(2, 6, dtype=torch.bool)
        mask[1, 4:] = False
        torch.testing.assert_close(model(x, mask)[1, :4], model(x[1:, :4])[0], atol=1e-5, rtol=1e-4)
