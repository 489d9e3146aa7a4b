"""`make demo`: a tiny train + predict in every domain, on its embedded data, then a summary table.

Each domain declares what its demo runs in `DEMO` (in `domains/<name>/__init__.py`):

    DEMO = {"train": [overrides...], "predict": [overrides...], "metric": "test/acc"}

The second step is `predict`, or `eval` where a domain has nothing to predict (RL);
it gets the trained run's checkpoint as `ckpt_path`.

Genomics, the flagship, runs first. Each step is the real `zoo` command in a
subprocess, so the demo exercises exactly what a user types.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from cli.main import domains

FIRST = ("genomics", "timeseries", "chem", "rl")


def zoo(domain: str, verb: str, overrides: list[str], runs: Path, run_id: str) -> dict:
    env = {**os.environ, "ZOO_RUNS_DIR": str(runs), "ZOO_RUN_ID": run_id}
    cmd = [sys.executable, "-m", "cli.main", domain, verb, *overrides]
    print(f"$ zoo {domain} {verb} {shlex.join(overrides)}", flush=True)  # a line the user can paste
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"demo step failed: zoo {domain} {verb} (exit {done.returncode})")
    return json.loads((runs / domain / verb / run_id / "metrics.json").read_text())


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    runs = Path(os.environ.get("ZOO_RUNS_DIR", "runs")).resolve()
    stamp = time.strftime("demo-%Y%m%d-%H%M%S")
    order = sorted(domains(), key=lambda d: (FIRST.index(d) if d in FIRST else len(FIRST), d))
    table = Table("domain", "model", "metric", "value", "seconds", "output", title="longzoo demo")
    for domain in order:
        spec = getattr(importlib.import_module(f"domains.{domain}"), "DEMO", None)
        if not spec:
            continue
        start = time.time()
        trained = zoo(domain, "train", spec["train"], runs, stamp)
        output = trained["output_dir"]
        then = next((verb for verb in ("predict", "eval") if verb in spec), None)
        if then:
            ckpt = trained["best_checkpoint"] or trained["last_checkpoint"]
            second = zoo(domain, then, [*spec[then], f"ckpt_path={ckpt}"], runs, stamp)
            output = second.get("predictions", second["output_dir"])
        metric = spec.get("metric", "test/loss")
        value = trained.get("metrics", {}).get(metric, float("nan"))
        table.add_row(
            domain,
            trained.get("model", "?"),
            metric,
            f"{value:.4g}" if isinstance(value, float) else str(value),
            f"{time.time() - start:.0f}",
            output,
        )
    Console(width=200).print(table)
    print(f"All runs are under {runs}/<domain>/<verb>/{stamp}/")


if __name__ == "__main__":
    main()
