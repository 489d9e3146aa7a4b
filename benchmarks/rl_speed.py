"""Environment steps per second of the RL loop, measured side by side in one process.

    python benchmarks/rl_speed.py [--envs 256 1024] [--threads 1] [--compile] [--cores] [--gymnax] [--device cuda]

Rows:
- env: the vectorised torch CartPole alone (random actions);
- rollout: env + MLP policy acting (the issue's "whole loop" of the JAX/torch comparison);
- ppo: a full PPO iteration (rollout of 128 steps + 4 epochs x 4 minibatches of updates);
- gymnax-adapter: gymnax's jitted CartPole crossing to torch every step (numpy on CPU);
- cores: full PPO iterations on popgym/RepeatPrevious for S5 vs GRU vs LSTM vs MLP vs Transformer, each at
  its `model=` config (core sizes matched at ~19-20k parameters).

--compile: the rollout compiles one whole step (`RolloutCollector(compile=True)`: act, sampling and,
on CartPole, the env step with its branch-free reset), and "env only" times the compiled dense step.

Reports wall-clock steps/s and steps per CPU-second of this process (the latter is
what a busy shared machine still measures fairly). Writes no files; never asserts.
Torch threads are pinned (--threads): on a 2-core machine two intra-op threads made
an iteration 30x slower under load.
"""

from __future__ import annotations

import argparse
import time

import torch

from domains.rl.agent import ActorCriticHeads, Agent
from domains.rl.envs import make_env
from domains.rl.policy_cores import core_config
from domains.rl.ppo import PPOConfig, ppo_update
from domains.rl.rollout import RolloutCollector
from zoo import create_model

CORES = ("s5", "gru", "lstm", "mlp", "transformer")


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up (and compilation)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def build(env_name: str, core: str, num_envs: int, device: str, width: int | None = None, head: int = 64):
    """An env and an agent with the `model=<core>` config (`width` overrides its dim, for the MLP rows)."""
    env = make_env(env_name, num_envs, device)
    name, kwargs = core_config(core)
    if width:
        kwargs = {"dim": width, "depth": 2}
    backbone = create_model(name, in_features=env.obs_dim, **kwargs).to(device)
    heads = ActorCriticHeads(backbone.num_features, env.num_actions, width or head).to(device)
    return env, Agent(backbone, heads)


def row(label: str, steps: int, wall: float, cpu: float) -> str:
    return f"| {label} | {steps / wall:,.0f} | {steps / max(cpu, 1e-9):,.0f} |"


def core_timings(core: str, envs: int, steps: int, device: str, repeats: int) -> dict[str, float]:
    """One policy core on popgym/RepeatPrevious: parameters (core + heads), a PPO iteration's wall and CPU
    seconds (rollout + update) and a rollout's wall seconds."""
    torch.manual_seed(0)
    env, agent = build("popgym/RepeatPrevious", core, envs, device)
    parameters = [*agent.backbone.parameters(), *agent.heads.parameters()]
    collector = RolloutCollector(env, agent, seed=0)  # eager: the S5 state is complex, which inductor skips
    optimizer = torch.optim.Adam(parameters, lr=2.5e-4, eps=1e-5)
    wall, cpu = timed(lambda: ppo_update(agent, collector.collect(steps), optimizer, PPOConfig()), repeats)
    rollout_wall, _ = timed(lambda: collector.collect(steps), repeats)
    return {
        "params": sum(p.numel() for p in parameters),
        "iteration_wall": wall,
        "iteration_cpu": cpu,
        "rollout_wall": rollout_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=64, help="MLP policy width (core and heads) for the CartPole rows")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile one rollout step (env + policy + sampling)"
    )
    parser.add_argument("--cores", action="store_true", help="also compare S5/GRU/LSTM/MLP on a memory task")
    parser.add_argument("--core-envs", type=int, default=64)
    parser.add_argument("--gymnax", action="store_true", help="also time the gymnax adapter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, compile {args.compile}\n"
    )
    print(
        f"| loop (CartPole-v1, MLP policy of width {args.width}) | steps/s (wall) | steps per CPU-second "
        "|\n|---|---|---|"
    )
    for n in args.envs:
        env, agent = build("CartPole-v1", "mlp", n, args.device, args.width)
        obs, state = env.reset(seed=0)
        actions = torch.randint(0, 2, (args.steps, n), device=args.device)
        dense = torch.compile(env.step_dense, dynamic=False) if args.compile else None

        def env_only():
            nonlocal state
            noise = env.uniform(args.steps, n, *env.reset_noise) if dense else None
            for t in range(args.steps):
                _, state, _, _, _ = dense(state, actions[t], noise[t]) if dense else env.step(state, actions[t])

        print(row(f"env only, {n} envs", n * args.steps, *timed(env_only, args.repeats)))
        collector = RolloutCollector(env, agent, seed=0, compile=args.compile)
        print(
            row(
                f"rollout (env + policy), {n} envs",
                n * args.steps,
                *timed(lambda: collector.collect(args.steps), args.repeats),
            )
        )
        optimizer = torch.optim.Adam([*agent.backbone.parameters(), *agent.heads.parameters()], lr=2.5e-4, eps=1e-5)
        iteration = lambda: ppo_update(agent, collector.collect(args.steps), optimizer, PPOConfig())
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
        print(
            f"\n| core (popgym/RepeatPrevious, {n} envs x {args.steps} steps, `model=` configs) | params (core "
            "+ heads) | PPO steps/s (wall) | steps per CPU-second | rollout steps/s (wall) |"
        )
        print("|---|---|---|---|---|")
        for core in CORES:
            t = core_timings(core, n, args.steps, args.device, args.repeats)
            print(
                f"| {core} | {t['params']:,} | {n * args.steps / t['iteration_wall']:,.0f} | "
                f"{n * args.steps / t['iteration_cpu']:,.0f} | {n * args.steps / t['rollout_wall']:,.0f} |"
            )


if __name__ == "__main__":
    main()
