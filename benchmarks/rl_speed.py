"""Environment steps per second of the RL loop, measured side by side in one process.

    python benchmarks/rl_speed.py [--envs 256 1024] [--threads 1] [--compile] [--cores] [--gymnax] [--device cuda]

Rows:
- env: the vectorised torch CartPole alone (random actions);
- rollout: env + MLP policy acting (the issue's "whole loop" of the JAX/torch comparison);
- ppo: a full PPO iteration (rollout of 128 steps + 4 epochs x 4 minibatches of updates);
- gymnax-adapter: gymnax's jitted CartPole crossing to torch every step (numpy on CPU);
- cores: full PPO iterations on popgym/RepeatPrevious for S5 vs GRU vs LSTM vs MLP at equal width.

Reports wall-clock steps/s and steps per CPU-second of this process (the latter is
what a busy shared machine still measures fairly). Writes no files; never asserts.
Torch threads are pinned (--threads): on a 2-core machine two intra-op threads made
an iteration 30x slower under load.
"""

from __future__ import annotations

import argparse
import time

import torch

import domains.rl.policy_cores  # noqa: F401
from domains.rl.agent import ActorCriticHeads, Agent
from domains.rl.envs import make_env
from domains.rl.ppo import PPOConfig, ppo_update
from domains.rl.rollout import RolloutCollector
from zoo.registry import create_model

CORES = {"s5": ("s5_rl", {"dim": 64, "state_dim": 64, "depth": 2}), "gru": ("gru_policy_small", {"dim": 64}),
         "lstm": ("lstm_policy_small", {"dim": 64}), "mlp": ("mlp_policy_small", {"dim": 64})}


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up (and compilation)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def build(env_name: str, core: str, num_envs: int, device: str, compile_loop: bool, width: int = 64):
    env = make_env(env_name, num_envs, device)
    name, kwargs = CORES[core]
    backbone = create_model(name, in_features=env.obs_dim, **{**kwargs, "dim": width}).to(device)
    heads = ActorCriticHeads(backbone.num_features, env.num_actions, width).to(device)
    agent = Agent(backbone, heads)
    if compile_loop:
        env.transition = torch.compile(env.transition, dynamic=False)
        agent.act = torch.compile(agent.act, dynamic=False)
    return env, agent


def row(label: str, steps: int, wall: float, cpu: float) -> str:
    return f"| {label} | {steps / wall:,.0f} | {steps / max(cpu, 1e-9):,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=64, help="MLP policy width (core and heads) for the CartPole rows")
    parser.add_argument("--compile", action="store_true", help="torch.compile the env transition and the policy step")
    parser.add_argument("--cores", action="store_true", help="also compare S5/GRU/LSTM/MLP on a memory task")
    parser.add_argument("--core-envs", type=int, default=64)
    parser.add_argument("--gymnax", action="store_true", help="also time the gymnax adapter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, compile {args.compile}\n")
    print(f"| loop (CartPole-v1, MLP policy of width {args.width}) | steps/s (wall) | steps per CPU-second |\n|---|---|---|")
    for n in args.envs:
        env, agent = build("CartPole-v1", "mlp", n, args.device, args.compile, args.width)
        obs, state = env.reset(seed=0)
        actions = torch.randint(0, 2, (args.steps, n), device=args.device)

        def env_only():
            nonlocal state
            for t in range(args.steps):
                _, state, _, _, _ = env.step(state, actions[t])

        print(row(f"env only, {n} envs", n * args.steps, *timed(env_only, args.repeats)))
        collector = RolloutCollector(env, agent, seed=0)
        print(row(f"rollout (env + policy), {n} envs", n * args.steps, *timed(lambda: collector.collect(args.steps), args.repeats)))
        optimizer = torch.optim.Adam([*agent.backbone.parameters(), *agent.heads.parameters()], lr=2.5e-4, eps=1e-5)
        iteration = lambda: ppo_update(agent, collector.collect(args.steps), optimizer, PPOConfig())  # noqa: E731
        print(row(f"PPO iteration (rollout + update), {n} envs", n * args.steps, *timed(iteration, args.repeats)))
        if args.gymnax:
            adapter = make_env("gymnax/CartPole-v1", n)
            _, g_state = adapter.reset(seed=0)

            def gymnax_only():
                nonlocal g_state
                for t in range(args.steps):
                    _, g_state, _, _, _ = adapter.step(g_state, actions[t].cpu())

            print(row(f"gymnax adapter env only, {n} envs", n * args.steps, *timed(gymnax_only, args.repeats)))
    if args.cores:
        n = args.core_envs
        print(f"\n| core (popgym/RepeatPrevious, {n} envs x {args.steps} steps, width 64) | params | PPO steps/s (wall) | steps per CPU-second | rollout steps/s (wall) |")
        print("|---|---|---|---|---|")
        for core in CORES:
            env, agent = build("popgym/RepeatPrevious", core, n, args.device, args.compile)
            params = sum(p.numel() for m in (agent.backbone, agent.heads) for p in m.parameters())
            collector = RolloutCollector(env, agent, seed=0)
            optimizer = torch.optim.Adam([*agent.backbone.parameters(), *agent.heads.parameters()], lr=2.5e-4, eps=1e-5)
            wall, cpu = timed(lambda: ppo_update(agent, collector.collect(args.steps), optimizer, PPOConfig()), args.repeats)
            roll_wall, _ = timed(lambda: collector.collect(args.steps), args.repeats)
            print(f"| {core} | {params:,} | {n * args.steps / wall:,.0f} | {n * args.steps / cpu:,.0f} | {n * args.steps / roll_wall:,.0f} |")


if __name__ == "__main__":
    main()
