"""PPO training: a short run improves return; the CLI path trains, evaluates, exports; bad input fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import domains.rl.policy_cores  # noqa: F401
from domains.rl.agent import ActorCriticHeads, Agent
from domains.rl.envs import make_env
from domains.rl.ppo import PPOConfig, ppo_update
from domains.rl.rollout import RolloutCollector, evaluate_policy
from zoo import create_model
from zoo.errors import ZooError


def test_short_ppo_run_improves_cartpole_return():
    torch.manual_seed(0)
    env = make_env("CartPole-v1", 8)
    backbone = create_model("mlp_policy_small", in_features=4, dim=32)
    heads = ActorCriticHeads(32, 2, 32)
    agent = Agent(backbone, heads)
    optimizer = torch.optim.Adam([*backbone.parameters(), *heads.parameters()], lr=2.5e-3, eps=1e-5)
    before = evaluate_policy(agent, make_env("CartPole-v1", 16), seed=5, episodes=16, greedy=False)
    collector = RolloutCollector(env, agent, seed=0)
    for _ in range(25):
        ppo_update(
            agent,
            collector.collect(64),
            optimizer,
            PPOConfig(num_minibatches=2),
            generator=torch.Generator().manual_seed(0),
        )
    after = evaluate_policy(agent, make_env("CartPole-v1", 16), seed=5, episodes=16, greedy=False)
    assert sum(after) / 16 > 2 * sum(before) / 16  # random play lasts ~22 steps


def compose_rl(tmp_path: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="domains.rl.configs", version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.log_dir={tmp_path}",
                "paths.output_dir=" + str(tmp_path / "run"),
                "trainer.enable_progress_bar=false",
                "logger=csv",
                "trainer.max_epochs=1",
                "data.iterations_per_epoch=2",
                "data.num_envs=4",
                "data.rollout_steps=16",
                "task.val_episodes=2",
                "task.eval_episodes=4",
                *overrides,
            ],
        )


def test_cli_train_eval_export_roundtrip(tmp_path):
    from domains.rl.hub import load_policy
    from zoo.training import run

    cfg = compose_rl(tmp_path, "model=gru", "model.kwargs.dim=16", "env=CartPole-v1")
    result = run(cfg)
    assert Path(result["last_checkpoint"]).is_file()
    assert "test/return_mean" in result["metrics"] and result["metrics"]["test/episodes"] == 4
    assert (tmp_path / "run" / "learning_curve.png").is_file() and (tmp_path / "run" / "episode.gif").is_file()

    evaluated = run(
        compose_rl(
            tmp_path,
            "model=gru",
            "model.kwargs.dim=16",
            "mode=eval",
            f"ckpt_path={result['last_checkpoint']}",
            "paths.output_dir=" + str(tmp_path / "eval"),
        )
    )
    assert evaluated["metrics"]["test/episodes"] == 4
    assert (tmp_path / "eval" / "learning_curve.png").is_file()  # drawn from the training run's log

    exported = run(
        compose_rl(
            tmp_path,
            "model=gru",
            "model.kwargs.dim=16",
            "mode=export",
            f"ckpt_path={result['last_checkpoint']}",
            f"output={tmp_path / 'policy'}",
        )
    )
    agent, spec = load_policy(exported["model_dir"])
    assert spec["env"] == "CartPole-v1"
    from domains.rl.tasks import PPOTask

    task = PPOTask.load_from_checkpoint(result["last_checkpoint"], weights_only=True)
    obs = torch.randn(5, 4)
    start = torch.ones(5, dtype=torch.bool)
    mine, _, _ = task.agent.act(obs, task.agent.initial_state(5), start)
    theirs, _, _ = agent.act(obs, agent.initial_state(5), start)
    torch.testing.assert_close(mine, theirs)

    # A policy folder as `weights=` brings its heads too: evaluation equals the checkpoint's.
    from_folder = run(
        compose_rl(
            tmp_path,
            "model=gru",
            "model.kwargs.dim=16",
            "mode=eval",
            f"weights={exported['model_dir']}",
            "paths.output_dir=" + str(tmp_path / "eval2"),
        )
    )
    assert from_folder["metrics"]["test/return_mean"] == evaluated["metrics"]["test/return_mean"]

    with pytest.raises(ZooError, match="trained on env 'CartPole-v1'"):
        run(
            compose_rl(
                tmp_path,
                "model=gru",
                "mode=eval",
                "env=popgym/RepeatFirst",
                f"ckpt_path={result['last_checkpoint']}",
                "paths.output_dir=" + str(tmp_path / "bad"),
            )
        )


def test_cli_trains_and_exports_the_transformer_core(tmp_path, model="transformer"):
    """model=transformer from the CLI on a memory task.

    The exported policy acts (from a KV cache) like the trained one.
    """
    from domains.rl.hub import load_policy
    from zoo.training import run

    result = run(compose_rl(tmp_path, f"model={model}", "env=popgym/RepeatFirst", "task.eval_episodes=2"))
    exported = run(
        compose_rl(
            tmp_path,
            f"model={model}",
            "env=popgym/RepeatFirst",
            "mode=export",
            f"ckpt_path={result['last_checkpoint']}",
            f"output={tmp_path / 'policy'}",
        )
    )
    agent, _ = load_policy(exported["model_dir"])
    from domains.rl.tasks import PPOTask

    task = PPOTask.load_from_checkpoint(result["last_checkpoint"], weights_only=True)
    obs, start = torch.randn(3, 9), torch.tensor([True, False, True])
    warm = task.agent.act(torch.randn(3, 9), task.agent.initial_state(3), start)[2]
    torch.testing.assert_close(task.agent.act(obs, warm, start)[0], agent.act(obs, warm, start)[0])


def test_bad_env_name_fails_with_suggestions(tmp_path):
    from cli.main import user_error_in
    from zoo.training import run

    with pytest.raises(Exception) as caught:
        run(compose_rl(tmp_path, "env=CartPole-v2"))
    assert "Did you mean: CartPole-v1" in str(user_error_in(caught.value))


def test_non_recurrent_backbone_is_refused():
    backbone = create_model("test_transformer", in_features=4)
    with pytest.raises(ZooError, match="can't act step by step"):
        Agent(backbone, ActorCriticHeads(backbone.num_features, 2))


def test_trial_returns_table_on_projected_env():
    from domains.rl.rollout import trial_returns

    torch.manual_seed(0)
    env = make_env("meta/projected-MemoryChain-bsuite", 4, episodes_per_trial=3, projection_seed=5)
    backbone = create_model("gru_policy_small", in_features=env.obs_dim, dim=8)
    agent = Agent(backbone, ActorCriticHeads(8, env.num_actions, 8))
    table = trial_returns(agent, env, seed=0, trials=6)
    assert table.shape == (6, 3)
    assert set(table.unique().tolist()) <= {-1.0, 1.0}  # each MemoryChain episode scores exactly one answer


@pytest.mark.slow
def test_compiled_rollout_equals_the_eager_dense_rollout():
    """torch.compile of one rollout step (CartPole: env + MLP policy + sampling fused) changes nothing but speed."""

    def collector(compiled: bool) -> RolloutCollector:
        torch.manual_seed(0)
        backbone = create_model("mlp_policy_small", in_features=4, dim=16)
        made = RolloutCollector(
            make_env("CartPole-v1", 16), Agent(backbone, ActorCriticHeads(16, 2, 16)), seed=3, compile=True
        )
        if not compiled:
            made.transition = made._transition  # the same dense-reset step, run eagerly
        return made

    fast, slow = collector(True).collect(40), collector(False).collect(40)
    assert fast.dones.any()  # episodes ended, so the fused reset ran
    assert torch.equal(fast.actions, slow.actions) and torch.equal(fast.dones, slow.dones)
    torch.testing.assert_close(fast.obs, slow.obs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast.values, slow.values, atol=1e-5, rtol=1e-4)


@pytest.mark.slow  # two demo-sized PPO runs: ~45 s of CPU
def test_the_demo_s5_recalls_the_memory_chain_bit_and_the_mlp_cannot(tmp_path):
    """`make demo`'s RL row (DEMO in domains/rl/__init__.py) learns memory: S5 well above the memoryless MLP."""
    from domains.rl import DEMO
    from zoo.training import run

    def demo_return(name: str, *extra: str) -> float:
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="domains.rl.configs", version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[f"paths.log_dir={tmp_path}", f"paths.output_dir={tmp_path / name}", "logger=none"]
                + [*DEMO["train"], "threads=1", *extra],
            )
        return run(cfg)["metrics"][DEMO["metric"]]

    s5, mlp = demo_return("s5"), demo_return("mlp", "model=mlp")
    assert s5 > 0.8, s5  # a recalled bit scores +1, a wrong one -1: chance is 0
    assert mlp < 0.3, mlp
