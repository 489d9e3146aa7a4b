"""POPGym's card-deck memory tasks, vectorised in torch.

Morad et al. (ICLR 2023), "POPGym: Benchmarking Partially Observable
Reinforcement Learning"; difficulty levels as in the JAX ports used by Lu et
al. (NeurIPS 2023). A deck of `52 * num_decks` cards is shuffled per episode;
the agent sees one card (suit one-hot) per step and is rewarded +-scale per
step, so an episode's return lies in [-1, 1].

- RepeatFirst: name the suit of the first card, at every later step (the
  popjaxrl port also scores step 0, so its best return is 52/51).
- RepeatPrevious: name the suit of the card seen k steps ago.
- Autoencode: watch the deck, then play it back in reverse order. POPGym's
  layout: the observation carries a "play phase" flag; cards are shown while
  watching and hidden while playing (the popjaxrl port inverts this by mistake).
- CountRecall: two cards per step, a value card and a query card; say how many
  value cards of the query's type have been seen before this step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domains.rl.envs.base import FunctionalEnv, State

DECK = 52


class CardEnv(FunctionalEnv):
    """Shared deck shuffling and one-hot observations."""

    num_suits = 4

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_decks: int = 1):
        super().__init__(num_envs, device)
        self.num_cards = DECK * num_decks

    def shuffled(self, n: int, kinds: int) -> torch.Tensor:
        order = torch.argsort(self.uniform(n, self.num_cards), dim=1)
        return order % kinds

    def card_at(self, cards: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        index = time.clamp(max=cards.shape[1] - 1).unsqueeze(1)
        return cards.gather(1, index).squeeze(1)

    def zero_time(self, n: int) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.long, device=self.device)


class RepeatFirst(CardEnv):
    name = "popgym/RepeatFirst"

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_decks: int = 1):
        super().__init__(num_envs, device, num_decks)
        self.obs_dim = self.num_actions = self.num_suits
        self.max_episode_steps = self.num_cards
        self.scale = 1.0 / (self.num_cards - 1)

    def init_state(self, n: int) -> State:
        return {"cards": self.shuffled(n, self.num_suits), "time": self.zero_time(n)}

    def observe(self, state: State) -> torch.Tensor:
        return F.one_hot(self.card_at(state["cards"], state["time"]), self.num_suits).float()

    def transition(self, state: State, action: torch.Tensor):
        reward = torch.where(action == state["cards"][:, 0], self.scale, -self.scale)
        reward = torch.where(state["time"] == 0, 0.0, reward)  # N-1 scored steps, so the best return is 1
        state = {**state, "time": state["time"] + 1}
        terminated = state["time"] == self.num_cards
        return self.observe(state), state, reward, terminated, torch.zeros_like(terminated)


class RepeatPrevious(RepeatFirst):
    name = "popgym/RepeatPrevious"

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_decks: int = 1, k: int = 4):
        super().__init__(num_envs, device, num_decks)
        self.k = k
        self.scale = 1.0 / (self.num_cards - k)

    def transition(self, state: State, action: torch.Tensor):
        time = state["time"]
        target = self.card_at(state["cards"], (time - self.k).clamp(min=0))
        reward = torch.where(action == target, self.scale, -self.scale)
        reward = torch.where(time < self.k, 0.0, reward)
        state = {**state, "time": time + 1}
        terminated = state["time"] == self.num_cards
        return self.observe(state), state, reward, terminated, torch.zeros_like(terminated)


class Autoencode(RepeatFirst):
    name = "popgym/Autoencode"

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_decks: int = 1):
        super().__init__(num_envs, device, num_decks)
        self.obs_dim = self.num_suits + 1
        self.max_episode_steps = 2 * self.num_cards
        self.scale = 1.0 / self.num_cards

    def observe(self, state: State) -> torch.Tensor:
        playing = state["time"] >= self.num_cards
        card = F.one_hot(self.card_at(state["cards"], state["time"]), self.num_suits).float()
        card = card * (~playing).unsqueeze(1)
        return torch.cat((card, playing.float().unsqueeze(1)), dim=1)

    def transition(self, state: State, action: torch.Tensor):
        time = state["time"]
        playing = time >= self.num_cards
        target = self.card_at(state["cards"], (2 * self.num_cards - 1 - time).clamp(min=0))
        reward = torch.where(action == target, self.scale, -self.scale) * playing
        state = {**state, "time": time + 1}
        terminated = state["time"] == 2 * self.num_cards
        return self.observe(state), state, reward, terminated, torch.zeros_like(terminated)


class CountRecall(CardEnv):
    name = "popgym/CountRecall"

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", num_decks: int = 1, num_types: int = 2):
        super().__init__(num_envs, device, num_decks)
        self.num_types = num_types
        self.obs_dim = 2 * num_types
        # A count ranges over 0..cards_per_type (the popjaxrl port's 2 actions can't express it).
        self.num_actions = self.num_cards // num_types + 1
        self.max_episode_steps = self.num_cards
        self.scale = 1.0 / self.num_cards

    def init_state(self, n: int) -> State:
        return {
            "values": self.shuffled(n, self.num_types),
            "queries": self.shuffled(n, self.num_types),
            "counts": torch.zeros(n, self.num_types, dtype=torch.long, device=self.device),
            "time": self.zero_time(n),
        }

    def observe(self, state: State) -> torch.Tensor:
        value = F.one_hot(self.card_at(state["values"], state["time"]), self.num_types)
        query = F.one_hot(self.card_at(state["queries"], state["time"]), self.num_types)
        return torch.cat((value, query), dim=1).float()

    def transition(self, state: State, action: torch.Tensor):
        time = state["time"]
        value = self.card_at(state["values"], time)
        query = self.card_at(state["queries"], time)
        seen = state["counts"].gather(1, query.unsqueeze(1)).squeeze(1)
        reward = torch.where(action == seen, self.scale, -self.scale)
        counts = state["counts"] + F.one_hot(value, self.num_types)
        state = {**state, "counts": counts, "time": time + 1}
        terminated = state["time"] == self.num_cards
        return self.observe(state), state, reward, terminated, torch.zeros_like(terminated)
