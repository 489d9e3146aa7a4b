"""meta/projected-Association.

The projection is per trial and held out at test; the answer is in the observation;
memoryless play is chance.
"""

from __future__ import annotations

import pytest
import torch

from domains.rl.envs import make_env
from domains.rl.envs.association import best_accuracy
from domains.rl.envs.wrappers import HELD_OUT_PROJECTIONS as HELD_OUT


def projected(n: int, **kwargs):
    return make_env(
        "meta/projected-Association", n, **{"num_cues": 4, "episodes_per_trial": 3, "proj_dim": 6, **kwargs}
    )


def right_action(state) -> torch.Tensor:
    """The agent action the permutation maps onto the cue."""
    return (state["perm"] == state["inner"]["cue"].unsqueeze(1)).float().argmax(1)


def test_projection_is_constant_within_a_trial_and_redrawn_after():
    env = projected(5, projection_seed=1)
    obs, state = env.reset(seed=0)
    assert obs.shape == (5, env.obs_dim) and env.obs_dim == 6 + 4 + 1
    first = {k: state[k].clone() for k in ("matrix", "perm")}
    trial_ends, episode_ends = [], 0
    for t in range(2 * 3 * 2):  # two trials of three two-step episodes
        obs, state, _, done, info = env.step(state, torch.zeros(5, dtype=torch.long))
        episode_ends += int(info["episode_done"][0])
        if done[0]:
            trial_ends.append(t)
        if t < 5:
            assert all(torch.equal(state[k], first[k]) for k in first)  # one projection for the whole trial
        # What the agent sees is the inner one-hot cue times this trial's matrix.
        cue = torch.nn.functional.one_hot(state["inner"]["cue"], 4).float()
        torch.testing.assert_close(obs[:, :6], torch.bmm(cue.unsqueeze(1), state["matrix"]).squeeze(1))
    assert trial_ends == [5, 11] and episode_ends == 6  # done only at trial ends
    assert not torch.allclose(state["matrix"], first["matrix"])  # the next trial draws a new projection


def test_answer_is_revealed_in_agent_coordinates_at_feedback_steps_only():
    env = projected(64, projection_seed=2)
    obs, state = env.reset(seed=0)
    total = torch.zeros(64)
    for _ in range(3):
        assert obs[:, 6:10].eq(0).all() and obs[:, -1].eq(1).all()  # answer step: nothing revealed, episode-start flag
        answer = right_action(state)
        obs, state, reward, _, info = env.step(state, (answer + 1) % 4)  # a wrong answer scores 0...
        assert reward.eq(0).all() and not info["episode_done"].any()
        assert (
            torch.equal(obs[:, 6:10].argmax(1), answer) and obs[:, 6:10].sum(1).eq(1).all()
        )  # ...and the right one is shown
        obs, state, reward, _, info = env.step(state, answer)  # feedback step: unscored
        assert reward.eq(0).all() and info["episode_done"].all()
    obs, state = env.reset(seed=0)
    for _ in range(3):
        obs, state, reward, _, _ = env.step(state, right_action(state))
        total += reward
        obs, state, *_ = env.step(state, right_action(state))
    torch.testing.assert_close(total, torch.full((64,), 3.0))  # answering through the permutation always scores


def test_held_out_projections_come_from_their_own_generator():
    from domains.rl.tasks import HELD_OUT_PROJECTIONS  # the seed PPOTask tests with

    assert HELD_OUT_PROJECTIONS == HELD_OUT
    train, held_out = projected(256), projected(256, projection_seed=HELD_OUT)
    train_matrix = train.reset(seed=0)[1]["matrix"]
    _, state = held_out.reset(seed=0)
    # The draw is the held-out generator's, not the environment seed's: reseeding the cues changes nothing.
    g = torch.Generator().manual_seed(HELD_OUT)
    torch.testing.assert_close(state["matrix"], torch.randn(256, 4, 6, generator=g) / 2.0)
    torch.testing.assert_close(projected(256, projection_seed=HELD_OUT).reset(seed=99)[1]["matrix"], state["matrix"])
    # And the held-out cue vectors are new: none lies near any cue vector of the training stream.
    gap = torch.cdist(state["matrix"].reshape(-1, 6), train_matrix.reshape(-1, 6)).min()
    assert gap > 0.01


def play_trials(env, policy, trials: int) -> torch.Tensor:
    """Per-episode returns (trials, episodes) of `policy(obs, memory) -> action`, acting on observations only."""
    obs, state = env.reset(seed=3)
    n, k = env.num_envs, env.episodes_per_trial
    table, memory = torch.zeros(trials // n, n, k), [{} for _ in range(n)]
    for trial in range(trials // n):
        for episode in range(k):
            obs, state, reward, _, _ = env.step(state, policy(obs, memory))
            table[trial, :, episode] = reward
            obs, state, _, done, _ = env.step(state, policy(obs, memory))
        assert done.all()
        memory = [{} for _ in range(n)]
    return table.flatten(0, 1)


def in_context_learner(obs: torch.Tensor, memory: list[dict]) -> torch.Tensor:
    """The best in-context learner from observations alone: remember revealed (cue vector -> action), else exclude."""
    actions = []
    for row, seen in zip(obs, memory):
        cue, revealed = tuple(row[:6].tolist()), row[6:10]
        if revealed.any():  # feedback step: store the binding
            seen[cue] = int(revealed.argmax())
            actions.append(0)
        elif cue in seen:
            actions.append(seen[cue])
        else:
            free = sorted(set(range(4)) - set(seen.values()))
            actions.append(free[len(seen) * 7 % len(free)])
    return torch.tensor(actions)


def test_in_context_learner_reaches_the_best_accuracy_and_memoryless_play_is_chance():
    env = projected(200, episodes_per_trial=5, projection_seed=HELD_OUT)
    best = play_trials(env, in_context_learner, 2000).mean(0)
    torch.testing.assert_close(best, torch.tensor(best_accuracy(4, 5)), atol=0.04, rtol=0)
    assert (
        best[0] < 0.3 and best[-1] > 0.85
    )  # the observations hold what a learner needs: return rises across the trial

    # Memoryless policies, even ones that hash the projected cue, are right 1/4 of the time in every episode.
    torch.manual_seed(0)
    weights = torch.randn(env.obs_dim, 4)
    for policy in (
        lambda obs, _: (obs @ weights).argmax(1),
        lambda obs, _: (obs[:, :6] > 0).long().sum(1) % 4,
        lambda obs, _: torch.zeros(obs.shape[0], dtype=torch.long),
    ):
        returns = play_trials(env, policy, 2000).mean(0)
        assert (returns - 0.25).abs().max() < 0.04


def test_best_accuracy_matches_the_occupancy_formula():
    assert best_accuracy(2, 3) == [0.5, 1.0, 1.0]
    acc = best_accuracy(4, 3)
    assert acc[0] == 0.25 and acc[1] == 0.5 and abs(acc[2] - 0.6875) < 1e-12  # (1/4 * 2 + 3/4 * 3) / 4


def test_feedback_modes_are_checked():
    assert projected(2).feedback == "answer"
    assert make_env("meta/projected-TwoArmedBandit", 2).feedback == "action_reward"  # unchanged for the other envs
    assert projected(2, feedback="action_reward").obs_dim == 6 + 4 + 2
    with pytest.raises(ValueError, match="reveals its answers"):
        make_env("meta/projected-TwoArmedBandit", 2, feedback="answer")
    with pytest.raises(ValueError, match="feedback="):
        projected(2, feedback="label")
