"""Environment wrappers: previous action in the observation, and projected meta-RL trials.

`PrevAction` appends the one-hot previous action and a first-step flag to each
observation, as Lu et al. (NeurIPS 2023, "Structured State Space Models for
In-Context Reinforcement Learning") do for POPGym; at the first step of an
episode the action part is zero and the flag is 1.

`ProjectedTrials` is their in-context meta-RL setting: a *trial* is
`episodes_per_trial` consecutive episodes of one environment seen through one
random linear projection of the observations (a Gaussian matrix to
`proj_dim` features) and one random permutation of the actions (a linear map
of the one-hot action), both drawn afresh per trial. `done` marks only trial
ends, so a recurrent policy keeps its hidden state across the episodes of a
trial and can adapt in context; episode ends are visible in the observation
(previous action, previous reward, episode-start flag) and in
`info["episode_done"]`. A `projection_seed` fixes a separate generator for
projections, so training and held-out evaluation can use disjoint draws.

`feedback` chooses what the agent sees beside the projected observation:
`"action_reward"` (default, RL^2's inputs: previous action one-hot and reward)
or `"answer"`: the right action the inner environment reveals
(`env.revealed_action(state)`, -1 for none) as a one-hot in the agent's own,
permuted action coordinates. With `"answer"` nothing the agent sees depends on
its own past actions, which is what makes the memoryless baseline of
`meta/projected-Association` provably chance (domains/rl/envs/association.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domains.rl.envs.base import State, TorchEnv

#: `projection_seed` of held-out meta-RL evaluation (training draws from seed 0's stream).
HELD_OUT_PROJECTIONS = 10_007


class PrevAction(TorchEnv):
    def __init__(self, env: TorchEnv):
        super().__init__(env.num_envs, env.device)
        self.env, self.generator = env, env.generator
        self.name = env.name
        self.obs_dim = env.obs_dim + env.num_actions + 1
        self.num_actions = env.num_actions
        self.max_episode_steps = env.max_episode_steps

    def seed(self, seed: int) -> None:
        self.env.seed(seed)

    def reset(self, seed: int | None = None):
        obs, state = self.env.reset(seed)
        extra = torch.zeros(obs.shape[0], self.num_actions + 1, device=obs.device)
        extra[:, -1] = 1.0
        return torch.cat((obs, extra), dim=1), state

    def step(self, state: State, action: torch.Tensor):
        obs, state, reward, done, info = self.env.step(state, action)
        taken = F.one_hot(action, self.num_actions).float()
        if info.get("final_observation") is not None:  # the cut episode's next obs: its action, not a first step
            info = {
                **info,
                "final_observation": torch.cat((info["final_observation"], taken, torch.zeros_like(taken[:, :1])), 1),
            }
        previous = taken * (~done).unsqueeze(1)
        return torch.cat((obs, previous, done.float().unsqueeze(1)), dim=1), state, reward, done, info


class ProjectedTrials(TorchEnv):
    def __init__(
        self,
        env: TorchEnv,
        episodes_per_trial: int = 4,
        proj_dim: int = 8,
        projection_seed: int | None = None,
        feedback: str = "action_reward",
    ):
        super().__init__(env.num_envs, env.device)
        if feedback not in ("action_reward", "answer"):
            raise ValueError(f"feedback={feedback!r}; choose 'action_reward' or 'answer'")
        if feedback == "answer" and not hasattr(env, "revealed_action"):
            raise ValueError(f"feedback='answer' needs an environment that reveals its answers; {env.name} does not")
        self.env, self.generator = env, env.generator
        self.name = f"meta/projected-{env.name}"
        self.episodes_per_trial, self.proj_dim, self.feedback = episodes_per_trial, proj_dim, feedback
        self.num_actions = env.num_actions
        self.obs_dim = proj_dim + self.num_actions + (2 if feedback == "action_reward" else 1)
        steps = env.max_episode_steps
        self.max_episode_steps = steps * episodes_per_trial if steps else None
        self.projection_generator = torch.Generator(device=self.device)
        self.projection_generator.manual_seed(0 if projection_seed is None else projection_seed)

    def seed(self, seed: int) -> None:
        self.env.seed(seed)

    def draw_projections(self, n: int) -> State:
        g = self.projection_generator
        matrix = (
            torch.randn(n, self.env.obs_dim, self.proj_dim, generator=g, device=self.device) / self.env.obs_dim**0.5
        )
        perm = torch.argsort(torch.rand(n, self.num_actions, generator=g, device=self.device), dim=1)
        return {"matrix": matrix, "perm": perm}

    def project(self, obs: torch.Tensor, state: State) -> torch.Tensor:
        return torch.bmm(obs.unsqueeze(1), state["matrix"]).squeeze(1)

    def reset(self, seed: int | None = None):
        obs, inner = self.env.reset(seed)
        n = obs.shape[0]
        state = {
            "inner": inner,
            **self.draw_projections(n),
            "episode": torch.zeros(n, dtype=torch.long, device=self.device),
        }
        extra = torch.zeros(n, self.obs_dim - self.proj_dim, device=self.device)
        extra[:, -1] = 1.0
        if self.feedback == "answer":
            extra[:, :-1] = self.revealed(inner, state["perm"])
        return torch.cat((self.project(obs, state), extra), dim=1), state

    def revealed(self, inner: State, perm: torch.Tensor) -> torch.Tensor:
        """The inner env's revealed action as a one-hot over agent actions (zeros where nothing is revealed)."""
        return (perm == self.env.revealed_action(inner).unsqueeze(1)).float()

    def step(self, state: State, action: torch.Tensor):
        env_action = state["perm"].gather(1, action.unsqueeze(1)).squeeze(1)
        obs, inner, reward, episode_done, info = self.env.step(state["inner"], env_action)
        episode = state["episode"] + episode_done.long()
        done = episode >= self.episodes_per_trial
        projections = {"matrix": state["matrix"], "perm": state["perm"]}
        rows = done.nonzero().squeeze(1)
        if rows.numel():
            fresh = self.draw_projections(rows.numel())
            projections = {k: v.index_put((rows,), fresh[k]) for k, v in projections.items()}
            episode = episode.masked_fill(done, 0)
        state = {"inner": inner, **projections, "episode": episode}
        if self.feedback == "answer":
            extra = torch.cat((self.revealed(inner, state["perm"]), episode_done.float().unsqueeze(1)), dim=1)
        else:
            previous = F.one_hot(action, self.num_actions).float() * (~done).unsqueeze(1)
            extra = torch.cat((previous, (reward * ~done).unsqueeze(1), episode_done.float().unsqueeze(1)), dim=1)
        # A trial ends after its last episode, a true terminal: nothing to bootstrap across trials.
        info = {"episode_done": episode_done, "terminated": done, "truncated": torch.zeros_like(done)}
        return torch.cat((self.project(obs, state), extra), dim=1), state, reward, done, info
