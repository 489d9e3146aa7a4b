"""Run `zoo` the way a user does: in a subprocess, from the checkout, with its own runs folder.

In-process calls of the CLI are avoided on purpose: Hydra's job logging reconfigures
`logging`, which closes handlers that other libraries (absl, imported by JAX) made
at import time around pytest's capture streams.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent


def zoo(
    *args: str, runs: Path, root: Path | None = None, timeout: int = 600, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """`zoo *args` with ZOO_RUNS_DIR=runs; `root` (a folder holding extra `domains/`) goes first on the path;
    `stdin`: text piped in (as `cat x.py | zoo code predict ...`)."""
    path = [str(root)] if root is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO)]), "ZOO_RUNS_DIR": str(runs)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=root if root is not None else Path(runs).parent,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single `zoo: error: ...` line of a run that failed with exit code 2 and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]
