"""Can a policy core learn the projected association in context? The meta-RL task as supervised learning.

    python -m benchmarks.studies.rl_meta_probe [--cores s5 gru mlp] [--cues 4] [--episodes 8] [--updates 600]
        [--lr 1e-3] [--head linear|mlp] [--set '{"s5": {"dt_max": 1.0}}']

Inputs are `meta/projected-Association` observations (trials of `--episodes`
two-step episodes; what the agent sees never depends on its actions, so a
trial is data); the target at each answer step is the right agent action.
Each core (the `model=` configs, ~19-20k parameters, plus a linear read-out,
or with `--head mlp` the PPO actor's 64-unit tanh MLP)
trains with Adam on cross-entropy over whole trials drawn with the training
projection stream; every `--every` updates the table reports the accuracy of
each episode of a trial on 1024 trials of *held-out* projections (the
generator `domains.rl.envs.wrappers.HELD_OUT_PROJECTIONS` seeds at test time), beside
the best in-context learner's expectation and chance (1 / cues, the
memoryless bound). This separates "the core cannot learn to decode a new
projection in context" from "PPO's signal is too weak at this budget".
Writes no files; never asserts.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch import nn

from domains.rl.envs import make_env
from domains.rl.envs.association import best_accuracy
from domains.rl.envs.wrappers import HELD_OUT_PROJECTIONS as HELD_OUT
from domains.rl.policy_cores import core_config
from zoo import create_model


def trials(env, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One trial per env copy: observations (B, 2E, D) and the right agent action per step (-1 at feedback steps)."""
    obs, state = env.reset(seed)
    xs, ys = [], []
    for _ in range(2 * env.episodes_per_trial):
        answer = (state["perm"] == state["inner"]["cue"].unsqueeze(1)).float().argmax(1)
        xs.append(obs)
        ys.append(torch.where(state["inner"]["time"] == 0, answer, -1))
        obs, state, *_ = env.step(state, torch.zeros(env.num_envs, dtype=torch.long))
    return torch.stack(xs, 1), torch.stack(ys, 1)


def probe(core: str, args, seed: int) -> tuple[int, list[list[float]]]:
    torch.manual_seed(seed)
    kwargs = {"num_cues": args.cues, "episodes_per_trial": args.episodes}
    train = make_env("meta/projected-Association", args.batch, projection_seed=seed, **kwargs)
    train.seed(seed)
    test_x, test_y = trials(
        make_env("meta/projected-Association", 1024, projection_seed=HELD_OUT, **kwargs), seed=12345
    )
    name, model_kwargs = core_config(core)
    model_kwargs.update(args.set.get(core, {}))
    backbone = create_model(name, in_features=train.obs_dim, **model_kwargs)
    width = backbone.num_features
    readout = (
        nn.Linear(width, args.cues)
        if args.head == "linear"
        else nn.Sequential(nn.Linear(width, 64), nn.Tanh(), nn.Linear(64, args.cues))
    )  # as the PPO actor head
    params = [*backbone.parameters(), *readout.parameters()]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    curve = []
    for update in range(1, args.updates + 1):
        x, y = trials(train)
        logits = readout(backbone.forward_features(x))
        loss = F.cross_entropy(logits.reshape(-1, args.cues), y.reshape(-1), ignore_index=-1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if update % args.every == 0:
            with torch.no_grad():
                right = (readout(backbone.forward_features(test_x)).argmax(-1) == test_y).float()[:, 0::2]
            curve.append([update, *right.mean(0).tolist()])
    return sum(p.numel() for p in backbone.parameters()), curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", nargs="+", default=["s5", "gru", "mlp"])
    parser.add_argument("--cues", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--head", choices=["linear", "mlp"], default="linear", help="read-out: linear, or the actor's tanh MLP"
    )
    parser.add_argument("--set", type=json.loads, default={}, help='per-core kwargs, e.g. \'{"s5": {"dt_max": 1.0}}\'')
    args = parser.parse_args()
    torch.set_num_threads(1)
    best = best_accuracy(args.cues, args.episodes)
    header = " | ".join(f"ep {k + 1}" for k in range(args.episodes))
    print(
        f"projected Association ({args.cues} cues, {args.episodes} episodes a trial) as supervised learning: held-out "
        f"accuracy per episode (batch {args.batch} trials, Adam {args.lr:g}, {args.head} read-out, seed {args.seed})\n"
    )
    print(f"| core | core params | updates | {header} |")
    print("|---|---|---|" + "---|" * args.episodes)
    print("| best in-context learner | | | " + " | ".join(f"{a:.2f}" for a in best) + " |")
    print("| chance (memoryless bound) | | | " + " | ".join(f"{1 / args.cues:.2f}" for _ in best) + " |", flush=True)
    for core in args.cores:
        params, curve = probe(core, args, args.seed)
        for update, *acc in curve:
            print(f"| {core} | {params:,} | {update} | " + " | ".join(f"{a:.2f}" for a in acc) + " |", flush=True)


if __name__ == "__main__":
    main()
