"""RL environments: step-by-step parity with gymnax, the reset/step contract, oracle returns, wrappers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domains.rl.envs import TORCH_ENVS, make_env
from domains.rl.envs.games import first_two_true
from zoo.errors import ZooError

jax = pytest.importorskip("jax")
gymnax = pytest.importorskip("gymnax")


def gymnax_batched(env_id: str, **kwargs):
    env, params = gymnax.make(env_id, **kwargs)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    return env, params, reset, step


def cartpole_state(g) -> dict:
    cols = [np.asarray(getattr(g, k), dtype=np.float32) for k in ("x", "x_dot", "theta", "theta_dot", "time")]
    return {"s": torch.from_numpy(np.stack(cols, 1))}


def memory_chain_state(g) -> dict:
    return {k: torch.from_numpy(np.array(getattr(g, k))).long() for k in ("context", "query", "time")}


@pytest.mark.parametrize(
    "env_id,to_torch,kwargs",
    [
        ("CartPole-v1", cartpole_state, {}),
        ("MemoryChain-bsuite", memory_chain_state, {}),
    ],
)
def test_parity_with_gymnax(env_id, to_torch, kwargs):
    """Same start state and actions -> same observations, rewards and dones, across auto-resets."""
    n, steps = 16, 150
    _, params, reset, step = gymnax_batched(env_id, **kwargs)
    ours = make_env(env_id, n, **kwargs)
    key = jax.random.PRNGKey(3)
    g_obs, g_state = reset(jax.random.split(key, n), params)
    state = to_torch(g_state)
    rng = np.random.default_rng(0)
    resets = 0
    for t in range(steps):
        actions = rng.integers(0, ours.num_actions, n)
        key, sub = jax.random.split(key)
        g_obs, g_state, g_reward, g_term, g_trunc, g_info = step(
            jax.random.split(sub, n), g_state, jax.numpy.asarray(actions), params
        )
        obs, state, reward, done, info = ours.step(state, torch.from_numpy(actions))
        g_done = np.asarray(g_term) | np.asarray(g_trunc)
        np.testing.assert_array_equal(done.numpy(), g_done, err_msg=f"done differs at step {t}")
        np.testing.assert_allclose(reward.numpy(), np.asarray(g_reward), atol=1e-6)
        np.testing.assert_allclose(
            info["final_observation"].numpy(), np.asarray(g_info["final_observation"]), rtol=1e-4, atol=1e-5
        )
        live = ~g_done
        np.testing.assert_allclose(obs.numpy()[live], np.asarray(g_obs)[live], rtol=1e-4, atol=1e-5)
        if g_done.any():
            # Fresh episodes come from different random streams: continue both from gymnax's draw.
            resets += int(g_done.sum())
            state = to_torch(g_state)
    assert resets > n  # the auto-reset path was exercised many times


def test_dense_reset_step_equals_step_with_fresh_rows_from_the_noise():
    """`step_dense` (branch-free, for torch.compile) moves like `step`; done rows restart at `fresh_state(noise)`."""
    env, n = make_env("CartPole-v1", 64), 64
    _, state = env.reset(seed=0)
    g = torch.Generator().manual_seed(1)
    resets = 0
    for _ in range(60):
        action = torch.randint(0, 2, (n,), generator=g)
        noise = torch.rand(n, *env.reset_noise, generator=g)
        obs, dense_state, reward, done, info = env.step_dense(state, action, noise)
        ref_obs, ref_state, ref_reward, ref_done, ref_info = env.step(state, action)
        assert torch.equal(done, ref_done) and torch.equal(reward, ref_reward)
        assert torch.equal(info["final_observation"], ref_info["final_observation"])
        assert torch.equal(obs[~done], ref_obs[~done]) and torch.equal(dense_state["s"][~done], ref_state["s"][~done])
        fresh = env.fresh_state(noise)
        assert torch.equal(dense_state["s"][done], fresh["s"][done]) and torch.equal(
            obs[done], env.observe(fresh)[done]
        )
        resets += int(done.sum())
        state = dense_state
    assert resets > n


TORCH_NAMES = sorted(name for name in TORCH_ENVS if not name.endswith(("-Medium", "-Hard")))


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_reset_step_contract(name):
    n = 4
    env = make_env(name, n)
    obs_a, _ = env.reset(seed=7)
    obs_b, state = make_env(name, n).reset(seed=7)
    torch.testing.assert_close(obs_a, obs_b)  # a seed fixes the episode
    assert obs_a.shape == (n, env.obs_dim) and obs_a.dtype == torch.float32
    rng = torch.Generator().manual_seed(0)
    limit = env.max_episode_steps
    returns, running, lengths, length = [], torch.zeros(n), [], torch.zeros(n, dtype=torch.long)
    for _ in range(2 * limit + 2):
        action = torch.randint(0, env.num_actions, (n,), generator=rng)
        obs, state, reward, done, info = env.step(state, action)
        assert obs.shape == (n, env.obs_dim) and reward.shape == (n,) and done.dtype == torch.bool
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
        running += reward
        length += 1
        returns += running[done].tolist()
        lengths += length[done].tolist()
        running[done], length[done] = 0.0, 0
    assert len(returns) >= n  # every copy finished an episode (the step limit holds)...
    assert max(lengths) <= limit  # ...within the declared limit
    if name.startswith("popgym/") and "CartPole" not in name:
        assert all(-1 - 1e-5 <= r <= 1 + 1e-5 for r in returns)  # POPGym returns lie in [-1, 1]


def play(env, policy, steps: int) -> list[float]:
    obs, state = env.reset(seed=1)
    running, returns = torch.zeros(env.num_envs), []
    inner = env.env if hasattr(env, "env") else env
    for _ in range(steps):
        obs, state, reward, done, _ = env.step(state, policy(state, inner))
        running += reward
        returns += running[done].tolist()
        running[done] = 0.0
    return returns


def concentration_oracle(state, env):
    hidden = ~state["face_up"] & ~state["in_play"]
    open_card = state["in_play"].float().argmax(1)
    has_open = state["in_play"].any(1)
    same = state["cards"] == state["cards"].gather(1, open_card[:, None])
    partner = (hidden & same).float().argmax(1)
    return torch.where(has_open, partner, hidden.float().argmax(1))


ORACLES = {
    "Association": lambda s, e: s["cue"],  # alone, the cue is the answer (meta/: tests/test_rl_meta_association.py)
    "popgym/RepeatFirst": lambda s, e: s["cards"][:, 0],
    "popgym/RepeatPrevious": lambda s, e: e.card_at(s["cards"], (s["time"] - e.k).clamp(min=0)),
    "popgym/Autoencode": lambda s, e: e.card_at(s["cards"], (2 * e.num_cards - 1 - s["time"]).clamp(min=0)),
    "popgym/CountRecall": lambda s, e: s["counts"].gather(1, e.card_at(s["queries"], s["time"])[:, None]).squeeze(1),
    "popgym/Concentration": concentration_oracle,
    # A hand-tuned linear controller on the full state the agent doesn't see.
    "popgym/StatelessCartPole": lambda s, e: (
        (s["s"][:, 2] * 10 + s["s"][:, 3] * 2 + s["s"][:, 0] * 0.3 + s["s"][:, 1]) > 0
    ).long(),
}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_oracle_reaches_maximum_return(name):
    """An agent that knows the hidden state earns the task's maximum return of 1: the rewards mean what they claim."""
    env = make_env(name, 4, prev_action=False)
    returns = play(env, ORACLES[name], env.max_episode_steps + 1)
    assert len(returns) >= 4
    np.testing.assert_allclose(returns, 1.0, atol=1e-4)


def test_bandit_best_arm_beats_random():
    env = make_env("popgym/MultiarmedBandit", 64, prev_action=False)
    best = play(env, lambda s, e: s["payouts"].argmax(1), 200)
    rng = torch.Generator().manual_seed(0)
    rand = play(env, lambda s, e: torch.randint(0, e.num_actions, (e.num_envs,), generator=rng), 200)
    assert np.mean(best) > np.mean(rand) + 0.5  # E[best] ~ 0.82, E[random] ~ 0


def test_first_two_true_matches_nonzero():
    mask = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    first, second = first_two_true(mask)
    assert first.tolist() == [1, 0, 0] and second.tolist() == [3, 0, 0]


def test_prev_action_wrapper():
    env = make_env("popgym/RepeatFirst", 3)
    obs, state = env.reset(seed=0)
    assert env.obs_dim == 4 + 4 + 1
    assert obs[:, -1].eq(1).all() and obs[:, 4:8].eq(0).all()
    obs, state, _, _, _ = env.step(state, torch.tensor([0, 2, 3]))
    assert obs[:, 4:8].argmax(1).tolist() == [0, 2, 3] and obs[:, -1].eq(0).all()


def test_projected_trials_keep_projection_within_trial():
    env = make_env("meta/projected-MemoryChain-bsuite", 5, episodes_per_trial=3, proj_dim=6, projection_seed=1)
    obs, state = env.reset(seed=0)
    assert obs.shape == (5, 6 + 2 + 2)
    first_matrix = state["matrix"].clone()
    episode_len = 6  # MemoryChain with memory_length 5
    trial_done_at, episode_done = [], 0
    for t in range(2 * 3 * episode_len):
        obs, state, reward, done, info = env.step(state, torch.zeros(5, dtype=torch.long))
        episode_done += int(info["episode_done"][0])
        if done[0]:
            trial_done_at.append(t)
        if t < 3 * episode_len - 1:
            torch.testing.assert_close(state["matrix"], first_matrix)  # one projection for the whole trial
    assert trial_done_at == [3 * episode_len - 1, 6 * episode_len - 1]  # done only at trial ends
    assert episode_done == 6
    assert not torch.allclose(state["matrix"], first_matrix)  # a new trial draws new projections


def test_projected_observation_is_linear_projection_and_actions_permuted():
    env = make_env("meta/projected-MemoryChain-bsuite", 4, projection_seed=2)
    obs, state = env.reset(seed=0)
    raw = env.env.observe(state["inner"])
    torch.testing.assert_close(obs[:, : env.proj_dim], torch.bmm(raw.unsqueeze(1), state["matrix"]).squeeze(1))
    # Answer the memory query through the inverse permutation: always +1.
    context = state["inner"]["context"][:, 0]
    inverse = state["perm"].argsort(1)
    total = torch.zeros(4)
    for _ in range(6):
        obs, state, reward, done, info = env.step(state, inverse.gather(1, context[:, None]).squeeze(1))
        total += reward
    torch.testing.assert_close(total, torch.ones(4))
    other = make_env("meta/projected-MemoryChain-bsuite", 4, projection_seed=3)
    assert not torch.allclose(other.reset(seed=0)[1]["matrix"], env.reset(seed=0)[1]["matrix"])


def test_meta_bandit_hides_the_good_arm_behind_the_permutation():
    """Pulling arm 0 always earns ~0 under per-trial permutations; an agent that knows the permutation earns 2p - 1."""
    env = make_env("meta/projected-TwoArmedBandit", 4000, p=0.9, episodes_per_trial=3)
    _, state = env.reset(seed=0)
    fixed, informed = 0.0, 0.0
    for _ in range(6):  # two trials: the permutation is redrawn in between
        good = state["perm"].argsort(1)[:, 0]  # the agent action that pulls env arm 0
        _, _, reward, _, _ = env.step(state, torch.zeros_like(good))
        fixed += float(reward.mean()) / 6
        _, state, reward, _, _ = env.step(state, good)
        informed += float(reward.mean()) / 6
    assert abs(fixed) < 0.05 and abs(informed - 0.8) < 0.05


def test_gymnax_adapter_matches_torch_cartpole_dynamics():
    adapter = make_env("gymnax/CartPole-v1", 3)
    obs, state = adapter.reset(seed=0)
    ours = make_env("CartPole-v1", 3)
    torch_state = cartpole_state(state)
    for _ in range(5):
        action = torch.tensor([0, 1, 1])
        obs, state, reward, done, _ = adapter.step(state, action)
        mine, torch_state, _, _, _ = ours.step(torch_state, action)
        assert obs.shape == (3, 4) and obs.dtype == torch.float32
        torch.testing.assert_close(obs, mine, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_gymnax_adapter_flattens_grids():
    env = make_env("gymnax/Catch-bsuite", 2)
    obs, state = env.reset(seed=0)
    assert obs.shape == (2, env.obs_dim) and env.obs_dim == 10 * 5
    obs, state, reward, done, _ = env.step(state, torch.tensor([0, 1]))
    assert reward.shape == (2,)


def test_gymnax_adapter_rejects_continuous_actions():
    with pytest.raises(ZooError, match="continuous action space"):
        make_env("gymnax/Pendulum-v1", 2)


def test_unknown_env_lists_close_matches():
    with pytest.raises(ZooError, match="popgym/RepeatPrevious"):
        make_env("popgym/RepeatPrevius")
