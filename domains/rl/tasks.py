"""PPO as a LightningModule with manual optimisation.

Each training batch is one PPO iteration: collect `num_envs x rollout_steps`
transitions with the current policy, then `update_epochs` passes of minibatch
updates (Schulman et al., 2017) on whole env sequences with episode resets
inside the policy core (Lu et al., NeurIPS 2023). Validation plays greedy
episodes from a fixed seed (`val/return`, the checkpoint metric); test reports
mean/std return over `eval_episodes` episodes from fixed seeds and, in the run
folder, draws the learning curve and (CartPole-like envs) an episode GIF.

Checkpoints hold the backbone, heads, optimiser and iteration count; the
environments restart on resume (nothing but the current rollout is lost).

`zoo rl predict` (and `predict()` on `zoo.load_pipeline(source)`, row for row) plays the test's
greedy episodes from its fixed seed (`eval_seed + 1`) and writes one row per episode:
(episode, env, return, length, seed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from domains.rl.agent import ActorCriticHeads, Agent
from domains.rl.envs import make_env
from domains.rl.envs.wrappers import HELD_OUT_PROJECTIONS
from domains.rl.ppo import PPOConfig, ppo_update
from domains.rl.rollout import RolloutCollector, evaluate_policy, play_episodes, trial_returns
from zoo.errors import ZooError
from zoo.training import BaseTask

log = logging.getLogger(__name__)


class PPOTask(BaseTask):
    def __init__(
        self,
        env: str = "CartPole-v1",
        env_kwargs: dict | None = None,
        num_envs: int = 16,
        rollout_steps: int = 128,
        num_actions: int = 2,
        head_hidden: int = 64,
        ppo: dict | None = None,
        anneal_lr: bool = True,
        val_episodes: int = 20,
        eval_episodes: int = 100,
        eval_seed: int = 1000,
        compile_rollout: bool = False,
        train_dir: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.ppo_config = PPOConfig(**dict(ppo or {}))
        self.heads = ActorCriticHeads(self.backbone.num_features, num_actions, head_hidden)
        heads = {
            k[len("heads.") :]: v
            for k, v in (self.weights.task_state if self.weights else {}).items()
            if k.startswith("heads.")
        }
        if heads:  # a policy exported by `zoo rl export` or a .ckpt: fine-tune its heads too
            self.heads.load_state_dict(heads)
            log.info("loaded the actor-critic heads from %s", self.weights.source)
        self.agent = Agent(self.backbone, self.heads)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.collector: RolloutCollector | None = None
        self.recent_returns: list[float] = []

    # ------------------------------------------------------------------ setup

    def env(self, num_envs: int, **overrides: Any):
        kwargs = {**dict(self.hparams.env_kwargs or {}), **overrides}
        return make_env(self.hparams.env, num_envs, self.device, **kwargs)

    def data_contract(self) -> dict[str, Any]:
        return {"env": self.hparams.env, "env_kwargs": dict(self.hparams.env_kwargs or {})}

    def setup(self, stage: str) -> None:
        probe = self.env(1)
        if probe.obs_dim != self.backbone.stem.in_features or probe.num_actions != self.hparams.num_actions:
            raise ZooError(
                f"policy expects obs_dim={self.backbone.stem.in_features}, actions={self.hparams.num_actions} "
                f"but {self.hparams.env} has {probe.obs_dim}, {probe.num_actions}; check env_kwargs match training"
            )

    def on_fit_start(self) -> None:
        # Saved with the hyper-parameters, so `zoo rl eval` finds this run's learning curve.
        self.hparams["train_dir"] = str(self.trainer.default_root_dir)

    def on_train_start(self) -> None:
        seed = int(self.trainer.datamodule.seed if self.trainer.datamodule else 0) + int(self.iteration)
        self.collector = RolloutCollector(
            self.env(self.hparams.num_envs),
            self.agent,
            seed=seed,
            compile=bool(self.hparams.get("compile_rollout", False)),
        )
        self.total_iterations = max(1, self.trainer.max_epochs * self.trainer.num_training_batches)
        self.base_lrs = [group["lr"] for group in self.optimizers().optimizer.param_groups]

    # ------------------------------------------------------------------ training

    def training_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()
        if self.hparams.anneal_lr:
            frac = 1.0 - float(self.iteration) / self.total_iterations
            for group, base in zip(optimizer.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * max(frac, 0.0)
        rollout = self.collector.collect(self.hparams.rollout_steps)
        stats = ppo_update(self.agent, rollout, optimizer, self.ppo_config, backward=self.manual_backward)
        self.iteration += 1
        self.recent_returns = (self.recent_returns + rollout.episode_returns)[-100:]
        steps = float(self.iteration) * self.hparams.num_envs * self.hparams.rollout_steps
        metrics = {f"train/{k}": v for k, v in stats.items()}
        metrics["train/env_steps"] = steps
        if self.recent_returns:
            metrics["train/return"] = sum(self.recent_returns) / len(self.recent_returns)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

    def configure_optimizers(self):
        if self.optimizer_spec is None:
            # Adam with eps 1e-5: a PPO detail from Huang et al. (2022), "The 37 implementation details of PPO".
            return torch.optim.Adam(self.parameters(), lr=2.5e-4, eps=1e-5)
        return super().configure_optimizers()

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, episodes: int, seed: int) -> list[float]:
        env = self.env(min(episodes, 50))
        with torch.no_grad():
            return evaluate_policy(self.agent, env, seed=seed, episodes=episodes)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        returns = self._evaluate(self.hparams.val_episodes, self.hparams.eval_seed)
        self.log("val/return", sum(returns) / len(returns), prog_bar=True, batch_size=1)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        returns = torch.tensor(self._evaluate(self.hparams.eval_episodes, self.hparams.eval_seed + 1))
        metrics = {
            "test/return_mean": returns.mean(),
            "test/return_std": returns.std(unbiased=False),
            "test/episodes": float(len(returns)),
        }
        if self.hparams.env.startswith("meta/"):
            # In-context adaptation on projections from a generator never used in training.
            env = self.env(min(self.hparams.eval_episodes, 50), projection_seed=HELD_OUT_PROJECTIONS)
            with torch.no_grad():
                table = trial_returns(self.agent, env, self.hparams.eval_seed + 2, self.hparams.eval_episodes)
            for k, value in enumerate(table.mean(0)):
                metrics[f"test/heldout_episode{k + 1}_return"] = value
        self.log_dict(metrics, batch_size=1)

    # ------------------------------------------------------------------ predictions

    @torch.no_grad()
    def predict(self, episodes: int | None = None, seed: int | None = None, greedy: bool = True) -> list[dict]:
        """Rows (episode, env, return, length, seed) of `episodes` episodes (default: the recorded
        `eval_episodes`) played from `seed` (default: the test's, `eval_seed + 1`) by min(episodes, 50)
        parallel copies of the recorded environment: what `zoo rl predict` writes."""
        episodes = int(self.hparams.eval_episodes if episodes is None else episodes)
        seed = int(self.hparams.eval_seed + 1 if seed is None else seed)
        if episodes < 1:
            raise ZooError(f"episodes={episodes}: give how many episodes to play, at least 1")
        rows = play_episodes(self.agent, self.env(min(episodes, 50)), seed=seed, episodes=episodes, greedy=greedy)
        return [{**row, "seed": seed} for row in rows]

    def predict_step(self, batch: Any, batch_idx: int) -> list[dict]:
        return self.predict()

    def on_test_end(self) -> None:
        from domains.rl.plots import draw_outputs

        folder = Path(self.trainer.default_root_dir)
        try:
            draw_outputs(self, folder)
        except Exception as err:  # plots are a convenience: never lose a finished evaluation to them
            log.warning("could not draw RL plots in %s: %s", folder, err)
