"""Reinforcement learning: PPO with S5 / GRU / LSTM / MLP policies on vectorised torch environments.

Reproduces Lu et al. (NeurIPS 2023), "Structured State Space Models for
In-Context Reinforcement Learning": a policy core whose hidden state is reset
inside the parallel scan at episode boundaries, trained with PPO on batched
environments. Environments (`env=`): CartPole-v1, MemoryChain-bsuite,
popgym/<Task>[-Easy|-Medium|-Hard], gymnax/<any gymnax id>, meta/projected-<env>.
Policies (`model=`): s5, gru, lstm, mlp. See docs/rl.md.
"""

import domains.rl.policy_cores  # noqa: F401  (registers the gru/lstm/mlp policy cores)

EXAMPLES = [
    "zoo rl train experiment=cartpole                      # CartPole-v1 solved in minutes (MLP policy)",
    "zoo rl train env=CartPole-v1 model=s5",
    "zoo rl train experiment=memory env=popgym/RepeatPrevious model=gru",
    "zoo rl train experiment=meta_cartpole                  # in-context meta-RL on projected CartPole",
    "zoo rl eval ckpt_path=last                              # mean/std return, learning curve, episode GIF",
    "zoo rl export ckpt_path=last output=policy/             # hub folder with the policy",
]
