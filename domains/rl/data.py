"""The RL "datamodule": the environment spec, and iteration indices as batches.

In on-policy RL the data is produced by the policy itself, so the rollout
buffer lives in the task (`domains.rl.tasks.PPOTask`); each training batch is
just the index of one PPO iteration (collect a rollout, update on it).
Validation and test batches are one item each: the task plays evaluation
episodes from fixed seeds. The datamodule tells the model the observation
size and the task the environment.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from domains.rl.envs import make_env
from zoo.errors import ZooError
from zoo.training import BaseDataModule


class Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class RolloutDataModule(BaseDataModule):
    """env: a name from `domains.rl.envs.list_envs()`; env_kwargs: passed to it.

    num_envs, rollout_steps: one PPO iteration collects num_envs x rollout_steps
    transitions; iterations_per_epoch: iterations between evaluations/checkpoints.
    """

    def __init__(
        self,
        env: str = "CartPole-v1",
        env_kwargs: dict | None = None,
        num_envs: int = 16,
        rollout_steps: int = 128,
        iterations_per_epoch: int = 20,
        seed: int = 0,
    ):
        super().__init__(batch_size=1, seed=seed)
        self.env, self.env_kwargs = env, dict(env_kwargs or {})
        self.num_envs, self.rollout_steps, self.iterations_per_epoch = num_envs, rollout_steps, iterations_per_epoch
        self.probe = make_env(env, 1, **self.env_kwargs)  # fails early, with close matches, on a bad name

    def setup(self, stage: str | None = None) -> None:
        self.train_set = Indices(self.iterations_per_epoch)
        self.val_set = Indices(1)
        self.test_set = Indices(1)
        self.predict_set = Indices(1)  # `zoo rl predict`: one batch; the task plays the test's episodes

    def accept_contract(self, contract: dict[str, Any]) -> None:
        trained_on = contract.get("env")
        if trained_on is not None and trained_on != self.env:
            raise ZooError(
                f"this policy was trained on env {trained_on!r}, not {self.env!r}; "
                f"evaluate it with env={trained_on} or train a new policy"
            )

    def model_kwargs(self) -> dict[str, Any]:
        return {"in_features": self.probe.obs_dim}

    def task_kwargs(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "env_kwargs": self.env_kwargs,
            "num_envs": self.num_envs,
            "rollout_steps": self.rollout_steps,
            "num_actions": self.probe.num_actions,
        }
