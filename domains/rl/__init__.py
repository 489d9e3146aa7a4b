"""Reinforcement learning: PPO with S5 / GRU / LSTM / MLP / Transformer policies on vectorised torch environments.

Reproduces Lu et al. (NeurIPS 2023), "Structured State Space Models for
In-Context Reinforcement Learning": a policy core whose hidden state is reset
inside the parallel scan at episode boundaries, trained with PPO on batched
environments. Environments (`env=`): CartPole-v1, MemoryChain-bsuite,
popgym/<Task>[-Easy|-Medium|-Hard], gymnax/<any gymnax id>, meta/projected-<env>.
Policies (`model=`): s5, gru, lstm, mlp, transformer. See docs/rl.md.
"""

# The policy cores (gru/lstm/mlp/transformer/s5 policies) are declared in pyproject.toml's
# `longzoo.models` entry points: zoo.registry imports them on first lookup, not this package.

EXAMPLES = [
    "zoo rl train experiment=memory_chain                  # S5 recalls a bit 10 steps back (make demo)",
    "zoo rl train experiment=cartpole                      # CartPole-v1 solved in minutes (MLP policy)",
    "zoo rl train env=CartPole-v1 model=s5",
    "zoo rl train experiment=memory env=popgym/RepeatPrevious model=gru   # or s5, lstm, mlp, transformer",
    "zoo rl train experiment=meta_association model=gru     # in-context meta-RL over held-out projections",
    "zoo rl train experiment=meta_bandit model=s5           # in-context meta-RL on a permuted two-armed bandit",
    "zoo rl train experiment=meta_cartpole                  # in-context meta-RL on projected CartPole",
    "zoo rl eval ckpt_path=last                              # mean/std return, learning curve, episode GIF",
    "zoo rl export ckpt_path=last output=policy/             # hub folder with the policy",
]

# `make demo`: the S5 policy (resets inside the scan) on MemoryChain, memory 10 (experiment=memory_chain: 3 x 10 PPO
# iterations of 32 envs x 64 steps, 61k steps), then `eval` of the checkpoint on the same fixed seeds. Greedy test
# return 1.00 +- 0.00 (seeds 42 and 1; validation -0.09 after the first epoch, chance is 0); the memoryless MLP on
# the same budget: -0.03 +- 1.00. Train ~33 s and eval ~10 s at load 6-9 on 2 cores (CartPole's MLP row: 40 + 26 s).
_DEMO_RUN = ["experiment=memory_chain", "trainer.enable_progress_bar=false"]
DEMO = {"train": _DEMO_RUN, "eval": _DEMO_RUN, "metric": "test/return_mean"}
