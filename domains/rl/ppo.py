"""Proximal Policy Optimization: advantage estimation and the clipped loss.

Schulman et al. (2017), "Proximal Policy Optimization Algorithms"; advantages
by GAE, Schulman et al. (ICLR 2016), "High-Dimensional Continuous Control Using
Generalized Advantage Estimation"; optional value clipping as in OpenAI
baselines' ppo2. Arrays are time-major `(T, B)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PPOConfig:
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    clip_value: bool = False
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    update_epochs: int = 4
    num_minibatches: int = 4
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True

    def __post_init__(self) -> None:
        """The ranges `zoo rl` checks before a run (zoo/training/validation.py), for Python callers too."""
        from zoo.training.validation import RULES, check_value

        for name, value in vars(self).items():
            rule = RULES.get(f"task.ppo.{name}")
            if rule is not None:
                check_value(f"task.ppo.{name}", value, rule)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    bootstrap: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets; `dones[t]` means the episode ended after step t.

    A = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma (V_{t+1} (1 - d_t) + b_t) - V_t, where
    `bootstrap` b_t is the value of the final observation of an episode cut by a time limit at t
    (0 at true terminals and elsewhere; Pardo et al., ICML 2018, "Time Limits in Reinforcement Learning").
    """
    not_done = 1.0 - dones.float()
    next_values = torch.cat((values[1:], last_value.unsqueeze(0)), dim=0)
    deltas = rewards + gamma * next_values * not_done - values
    if bootstrap is not None:
        deltas = deltas + gamma * bootstrap
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(last_value)
    # A backward recursion over T steps on (B,) tensors: cheap next to the policy's forward.
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values


def ppo_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
) -> tuple[torch.Tensor, dict]:
    """The PPO objective (to minimise) and its parts, averaged over every element."""
    log_probs = F.log_softmax(logits, dim=-1)
    logp = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    if cfg.normalize_advantages and advantages.numel() > 1:  # one sample has no spread (std would be NaN)
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = torch.exp(logp - old_logp)
    policy_loss = -torch.min(ratio * advantages, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantages).mean()
    value_loss = (values - returns).pow(2)
    if cfg.clip_value:
        clipped = old_values + (values - old_values).clamp(-cfg.clip_eps, cfg.clip_eps)
        value_loss = torch.max(value_loss, (clipped - returns).pow(2))
    value_loss = 0.5 * value_loss.mean()
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": ((ratio - 1) - (logp - old_logp)).mean(),
            "clip_frac": ((ratio - 1).abs() > cfg.clip_eps).float().mean(),
        }
    return loss, stats


def ppo_update(
    agent,
    batch,
    optimizer: torch.optim.Optimizer,
    cfg: PPOConfig,
    backward=None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """`update_epochs` passes over the rollout in minibatches of whole env sequences.

    Each minibatch replays its envs' full rollout from the stored core state with
    the episode-start flags, so recurrent cores train on sequences that cross
    episode boundaries. `backward` defaults to `loss.backward()` (Lightning passes
    `manual_backward`).
    """
    from domains.rl.agent import index_state

    backward = backward or (lambda loss: loss.backward())
    advantages, returns = gae(
        batch.rewards,
        batch.values,
        batch.dones,
        batch.last_value,
        cfg.gamma,
        cfg.gae_lambda,
        getattr(batch, "bootstrap", None),
    )
    # Batch-major (B, T) for the sequence forward.
    obs, starts = batch.obs.transpose(0, 1), batch.starts.transpose(0, 1)
    actions, old_logp, old_values = batch.actions.T, batch.logp.T, batch.values.T
    advantages, returns = advantages.T, returns.T
    num_envs = obs.shape[0]
    size = max(1, num_envs // cfg.num_minibatches)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, float] = {}
    count = 0
    for _ in range(cfg.update_epochs):
        order = torch.randperm(num_envs, generator=generator, device="cpu").to(obs.device)
        for index in order.split(size):
            logits, values = agent.evaluate(obs[index], starts[index], index_state(batch.init_state, index))
            loss, stats = ppo_loss(
                logits,
                actions[index],
                old_logp[index],
                advantages[index],
                values,
                old_values[index],
                returns[index],
                cfg,
            )
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            for key, value in {"loss": loss.detach(), **stats}.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach())
            count += 1
    return {key: value / count for key, value in totals.items()}
