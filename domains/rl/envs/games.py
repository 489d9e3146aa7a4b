"""POPGym's Concentration and MultiarmedBandit, vectorised in torch.

Morad et al. (ICLR 2023), "POPGym"; rewards and episode lengths as in the JAX
ports used by Lu et al. (NeurIPS 2023).

- Concentration: a face-down deck; flip two cards per turn, matching pairs stay
  face up. The observation shows every card (one-hot of its type, or "hidden").
- MultiarmedBandit: arms with hidden payout probabilities drawn per episode;
  the observation is the last pull's outcome, so good play needs memory.

`TwoArmedBandit` is not POPGym's: the base task of the classic meta-RL bandit
(Wang et al., 2016, "Learning to reinforcement learn"; Duan et al., 2016, "RL^2").
Alone it is trivial (arm 0 is the good one); under `meta/projected-` the arms
are permuted per trial, so the agent must find the good arm in context.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from domains.rl.envs.base import FunctionalEnv, State
from domains.rl.envs.cards import DECK


def first_two_true(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the first and second True per row (0 where absent, like jnp.nonzero(size=2))."""
    rank = mask.long().cumsum(1) * mask
    first = (rank == 1).float().argmax(1)
    second = (rank == 2).float().argmax(1)
    return first, second


class Concentration(FunctionalEnv):
    name = "popgym/Concentration"

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_decks: int = 1, num_types: int = 2):
        super().__init__(num_envs, device)
        self.num_cards, self.num_types = DECK * num_decks, num_types
        self.obs_dim = self.num_cards * (num_types + 1)
        self.num_actions = self.num_cards
        self.max_episode_steps = math.ceil(2 * self.num_cards - self.num_cards / (2.0 * self.num_cards - 1))
        self.success = 1.0 / (self.num_cards // 2)
        self.failure = -1.0 / self.max_episode_steps

    def init_state(self, n: int) -> State:
        cards = torch.argsort(self.uniform(n, self.num_cards), dim=1) % self.num_types
        blank = torch.zeros(n, self.num_cards, dtype=torch.bool, device=self.device)
        return {
            "cards": cards,
            "face_up": blank,
            "in_play": blank.clone(),
            "time": torch.zeros(n, dtype=torch.long, device=self.device),
        }

    def observe(self, state: State) -> torch.Tensor:
        visible = state["face_up"] | state["in_play"]
        shown = torch.where(visible, state["cards"], self.num_types)
        return F.one_hot(shown, self.num_types + 1).flatten(1).float()

    def transition(self, state: State, action: torch.Tensor):
        chosen = F.one_hot(action, self.num_cards).bool()
        same_card = (state["in_play"] & chosen).any(1)
        in_play = state["in_play"] | chosen
        obs = self.observe({**state, "in_play": in_play})
        already_up = (state["face_up"] & in_play).any(1)
        flipped = in_play.sum(1)
        valid = ~already_up & (same_card | (flipped == 2))
        reward = torch.where(already_up, flipped * self.failure, 0.0)
        in_play = in_play & ~already_up.unsqueeze(1)

        first, second = first_two_true(in_play)
        cards = state["cards"]
        match = (cards.gather(1, first[:, None]) == cards.gather(1, second[:, None])).squeeze(1) & ~same_card
        scored = match & valid
        reward = torch.where(scored, self.success, reward)
        pair = F.one_hot(first, self.num_cards).bool() | F.one_hot(second, self.num_cards).bool()
        face_up = state["face_up"] | (pair & scored.unsqueeze(1))
        reward = torch.where(~match & valid, 2 * self.failure, reward)
        in_play = in_play & ~valid.unsqueeze(1)
        time = state["time"] + 1
        terminated = face_up.all(1) | (time == self.max_episode_steps)
        state = {"cards": cards, "face_up": face_up, "in_play": in_play, "time": time}
        return obs, state, reward, terminated, torch.zeros_like(terminated)


class MultiarmedBandit(FunctionalEnv):
    name = "popgym/MultiarmedBandit"
    obs_dim = 1

    def __init__(
        self, num_envs: int = 1, device: str | torch.device = "cpu", num_bandits: int = 10, episode_length: int = 200
    ):
        super().__init__(num_envs, device)
        self.num_actions = num_bandits
        self.max_episode_steps = episode_length
        self.scale = 1.0 / episode_length

    def init_state(self, n: int) -> State:
        return {
            "payouts": self.uniform(n, self.num_actions),
            "time": torch.zeros(n, dtype=torch.long, device=self.device),
            "last": torch.zeros(n, 1, device=self.device),
        }

    def observe(self, state: State) -> torch.Tensor:
        return state["last"]

    def transition(self, state: State, action: torch.Tensor):
        payout = state["payouts"].gather(1, action.unsqueeze(1))
        win = (self.uniform(*payout.shape) < payout).float()
        reward = (2 * win - 1).squeeze(1) * self.scale
        time = state["time"] + 1
        terminated = time >= self.max_episode_steps
        state = {"payouts": state["payouts"], "time": time, "last": win}
        return win, state, reward, terminated, torch.zeros_like(terminated)


class TwoArmedBandit(FunctionalEnv):
    """Arm 0 pays +1 with probability `p` (else -1), arm 1 with probability 1 - p; `pulls` per episode."""

    name = "TwoArmedBandit"
    obs_dim = 1
    num_actions = 2

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", p: float = 0.9, pulls: int = 1):
        super().__init__(num_envs, device)
        self.p, self.max_episode_steps = p, pulls

    def init_state(self, n: int) -> State:
        return {"time": torch.zeros(n, dtype=torch.long, device=self.device)}

    def observe(self, state: State) -> torch.Tensor:
        return torch.ones(state["time"].shape[0], 1, device=self.device)

    def transition(self, state: State, action: torch.Tensor):
        win = self.uniform(action.shape[0]) < torch.where(action == 0, self.p, 1.0 - self.p)
        time = state["time"] + 1
        terminated = time >= self.max_episode_steps
        state = {"time": time}
        return self.observe(state), state, 2.0 * win.float() - 1.0, terminated, torch.zeros_like(terminated)
