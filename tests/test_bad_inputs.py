"""Every malformed input of `tests/bad_inputs/<domain>/` through the real `zoo` command line.

Each domain folder's README.md holds a table, one row per case: the case (a file of the folder, or a
`{name}` the test makes at runtime), the command's arguments (`{file}` is the case's file, `{dir}`
the folder, `{args}` the words of an `.args` file, other `{name}`s are runtime artefacts), a text the
error line must hold, and notes (`slow`: only with `pytest -m slow`; `bug: ...`: a known defect, run as
a strict xfail until it is fixed). A row whose case is `*` gives arguments added to every command.

Every case must exit with code 2, print exactly one stderr line (`zoo: error: ...`) without
"Traceback", and leave no checkpoint, weights file or predictions in its run folder.

The commands run in a fork server: one interpreter imports the package once, then forks a child per
case that calls `cli.main.main(argv)` with `sys.argv`, cwd, environment and stdout/stderr files of its
own, as `python -m cli.main` would. That saves the ~10 s of imports per case; the child is a fresh
process as far as the command can tell (`test_the_fork_server_answers_as_a_fresh_process` checks one
case both ways). Run as root, the server drops CAP_DAC_OVERRIDE (`setpriv`) so that a mode-000 file
is unreadable, as it is for any user.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from tests.zoo_cli import REPO, one_line_error, zoo

CORPUS = Path(__file__).parent / "bad_inputs"
TABLE_HEADER = "| case | arguments | expected message | notes |"
# the folders whose README holds a table of CLI cases (others, e.g. recsys, are read by their domain's tests)
DOMAINS = tuple(
    sorted(
        d.name
        for d in CORPUS.iterdir()
        if (d / "README.md").is_file() and TABLE_HEADER in (d / "README.md").read_text()
    )
)
# what the server imports before it forks: the heavy, fork-safe part of every command
PRELOAD = ("torch", "pytorch_lightning", "hydra", "cli.main", "zoo.training") + tuple(
    f"domains.{d}.{m}" for d in DOMAINS for m in ("data", "tasks")
)
KEPT_OUTPUTS = (".ckpt", ".safetensors")
CASE_TIMEOUT_S = 180


# ----------------------------------------------------------------------------- the fork server


def serve() -> None:
    """Read one JSON request per line from stdin, run it in a forked child, answer {"rc": code}."""
    import importlib
    import importlib.util

    import torch

    torch.set_num_threads(1)
    for module in PRELOAD:
        if importlib.util.find_spec(module) is not None:  # a domain may keep its data or tasks elsewhere
            importlib.import_module(module)
    answer = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the channel
    probe = Path(tempfile.mkdtemp()) / "probe"
    probe.write_text("x")
    probe.chmod(0)
    denied = not os.access(probe, os.R_OK)
    shutil.rmtree(probe.parent)
    print(json.dumps({"ready": True, "mode_000_denies_reads": denied}), file=answer, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()  # nothing buffered may reach a child's stderr
        pid = os.fork()
        if pid == 0:
            _child(request)  # never returns
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), file=answer, flush=True)


def _child(request: dict) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        for key in request.get("unset", []):
            os.environ.pop(key, None)
        os.environ.update(request["env"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the child's streams until os._exit)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        signal.alarm(request["timeout"])  # SIGALRM ends a stuck case (exit status -14)
        sys.argv = ["zoo", *request["argv"]]
        import cli.main

        try:
            cli.main.main(request["argv"])
            code = 0
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
            if isinstance(err.code, str):
                print(err.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


class ForkServer:
    def __init__(self, log: Path):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("HYDRA_FULL_ERROR", None)
        command = [sys.executable, "-c", "from tests.test_bad_inputs import serve; serve()"]
        self.log = log
        drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        attempts = [drop + command, command] if os.geteuid() == 0 and shutil.which("setpriv") else [command]
        self.log_handle = open(log, "a")  # noqa: SIM115 (the server's stderr while it lives)
        for attempt in attempts:
            pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_handle, text=True)
            self.process = subprocess.Popen(attempt, cwd=REPO, env=env, **pipes)
            ready = self.process.stdout.readline()
            if ready:
                self.mode_000_denies_reads = json.loads(ready)["mode_000_denies_reads"]
                return
            self.process.wait()
        raise RuntimeError(f"the fork server did not start: {log.read_text()[-3000:]}")

    def run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
        out, err = cwd / ".zoo.stdout", cwd / ".zoo.stderr"
        request = {
            "argv": argv,
            "cwd": str(cwd),
            "env": env,
            "unset": ["ZOO_RUN_ID", "HYDRA_FULL_ERROR"],
            "stdout": str(out),
            "stderr": str(err),
            "timeout": CASE_TIMEOUT_S,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server died: {self.log.read_text()[-3000:]}")
        rc = json.loads(answer)["rc"]
        return subprocess.CompletedProcess(["zoo", *argv], rc, out.read_text(), err.read_text())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.log_handle.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = ForkServer(tmp_path_factory.mktemp("server") / "server.log")
    yield started
    started.close()


# ----------------------------------------------------------------------------- cases from the READMEs


@dataclasses.dataclass(frozen=True)
class Case:
    domain: str
    name: str  # a file of the folder, or `{artefact}` made at runtime
    arguments: str
    expected: str
    notes: str

    @property
    def id(self) -> str:
        return f"{self.domain}/{self.name.strip('{}')}"

    @property
    def file(self) -> Path:
        return CORPUS / self.domain / self.name


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`").strip() for cell in line.strip().strip("|").split("|")]


def read_table(domain: str) -> tuple[list[str], list[Case]]:
    """(arguments added to every command, cases) from `tests/bad_inputs/<domain>/README.md`."""
    common, cases = [], []
    rows = [line for line in (CORPUS / domain / "README.md").read_text().splitlines() if line.startswith("|")]
    for line in rows[2:]:  # the header and the |---| line
        name, arguments, expected, notes = _cells(line)
        if name == "*":
            common = arguments.split()
        else:
            cases.append(Case(domain, name, arguments, expected, notes))
    return common, cases


def all_cases() -> list:
    params = []
    for domain in DOMAINS:
        for case in read_table(domain)[1]:
            marks = [pytest.mark.slow] if "slow" in case.notes else []
            bug = re.search(r"bug: ([^;]+)", case.notes)
            if bug:
                marks.append(pytest.mark.xfail(strict=True, reason=bug.group(1).strip()))
            params.append(pytest.param(case, marks=marks, id=case.id))
    return params


# ----------------------------------------------------------------------------- runtime artefacts


class Artefacts:
    """Damaged checkpoints and weight folders, made on first use (git keeps neither binaries nor modes)."""

    def __init__(self, root: Path, server: ForkServer):
        self.root, self.server, self.made = root, server, {}

    def __getitem__(self, name: str) -> str:
        if name not in self.made:
            self.made[name] = str(getattr(self, f"make_{name}")())
        return self.made[name]

    def _train(self, domain: str, *overrides: str) -> Path:
        folder = self.root / f"{domain}_run"
        folder.mkdir()
        done = self.server.run([domain, "train", *overrides], folder, {"ZOO_RUNS_DIR": str(folder / "runs")})
        assert done.returncode == 0, done.stderr[-3000:]
        (best,) = (folder / "runs").glob(f"{domain}/train/*/checkpoints/best.ckpt")
        return best

    def make_timeseries_ckpt(self) -> Path:
        return self._train("timeseries", "model=repeat_last", "seq_len=24", "label_len=12", "horizon=6")

    def make_rl_ckpt(self) -> Path:
        return self._train("rl", *read_table("rl")[0], "model=mlp")

    def make_missing_ckpt(self) -> Path:
        return self.root / "no_such.ckpt"

    def make_truncated_ckpt(self) -> Path:
        whole = Path(self["timeseries_ckpt"]).read_bytes()
        (cut := self.root / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
        return cut

    def make_unreadable_ckpt(self) -> Path:
        if not self.server.mode_000_denies_reads:
            pytest.skip("this process reads mode-000 files (root without setpriv): nothing to test")
        shutil.copy(self["timeseries_ckpt"], locked := self.root / "unreadable.ckpt")
        locked.chmod(0)
        return locked

    def make_unreadable_fasta(self) -> Path:
        if not self.server.mode_000_denies_reads:
            pytest.skip("this process reads mode-000 files (root without setpriv): nothing to test")
        (locked := self.root / "unreadable.fa").write_text(">a label=0\nACGT\n>b label=1\nTTGA\n")
        locked.chmod(0)
        return locked

    def _weights_folder(self, name: str) -> Path:
        import torch

        from zoo import create_model
        from zoo.hub import save_pretrained

        torch.manual_seed(0)
        return save_pretrained(create_model("test_transformer", num_classes=3), self.root / name)

    def make_damaged_weights(self) -> Path:
        folder = self._weights_folder("damaged_weights")
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-9] ^= 0xFF  # inside the last tensor: the header still parses, the SHA-256 does not match
        (folder / "model.safetensors").write_bytes(bytes(data))
        return folder

    def make_truncated_weights(self) -> Path:
        folder = self._weights_folder("truncated_weights")
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        config = json.loads((folder / "config.json").read_text())
        config.pop("sha256", None)  # as from an older export: the safetensors reader must find the damage itself
        (folder / "config.json").write_text(json.dumps(config))
        return folder


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory, server):
    made = Artefacts(tmp_path_factory.mktemp("artefacts"), server)
    yield made
    for path in made.made.values():  # let pytest's clean-up delete the mode-000 file
        if Path(path).is_file():
            Path(path).chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A copy of the corpus: readers may write beside their input (a FASTA index), never into the checkout."""
    return Path(shutil.copytree(CORPUS, tmp_path_factory.mktemp("corpus") / "bad_inputs"))


def command(case: Case, artefacts: Artefacts, corpus: Path = CORPUS) -> list[str]:
    common = read_table(case.domain)[0]
    file = corpus / case.domain / case.name
    words = []
    for word in case.arguments.split():
        if word == "{args}":
            words += case.file.read_text().split()
            continue
        for name in re.findall(r"\{(\w+)\}", word):
            value = {"file": str(file), "dir": str(file.parent)}.get(name) or artefacts[name]
            word = word.replace(f"{{{name}}}", value)
        words.append(word)
    verb, rest = words[0], words[1:]
    return [case.domain, verb, *common, *rest]  # the case's own settings last: they win


# ----------------------------------------------------------------------------- tests


def test_every_file_is_a_listed_case():
    assert {"genomics", "chem", "timeseries", "rl"} <= set(DOMAINS)
    for domain in DOMAINS:
        folder = CORPUS / domain
        files = {p.name for p in folder.iterdir() if p.is_file() and p.name != "README.md" and p.name[0] != "_"}
        listed = {case.name for case in read_table(domain)[1]}
        assert files <= listed, (domain, sorted(files - listed))
        runtime = {n for n in listed - files if not re.fullmatch(r"\{\w+\}", n)}
        assert not runtime, (domain, "listed but absent", sorted(runtime))
        assert len(files) >= 12, (domain, len(files))
        assert {"{truncated_ckpt}", "{unreadable_ckpt}", "{damaged_weights}", "not_a_checkpoint.ckpt"} <= listed
        assert any(n.endswith("_ckpt}") and n[1:-6] in DOMAINS and n[1:-6] != domain for n in listed), domain


@pytest.mark.parametrize("case", all_cases())
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, server, artefacts, corpus, tmp_path):
    runs = tmp_path / "runs"
    result = server.run(command(case, artefacts, corpus), tmp_path, {"ZOO_RUNS_DIR": str(runs)})
    line = one_line_error(result)
    assert case.expected in line, line
    kept = [p for p in runs.rglob("*") if p.suffix in KEPT_OUTPUTS or p.name.startswith("predictions")]
    assert not kept, kept


@pytest.mark.slow
def test_the_fork_server_answers_as_a_fresh_process(server, artefacts, corpus, tmp_path):
    (case,) = [c for c in read_table("genomics")[1] if c.name == "illegal_character.fa"]
    argv = command(case, artefacts, corpus)
    forked = server.run(argv, tmp_path, {"ZOO_RUNS_DIR": str(tmp_path / "forked")})
    fresh = zoo(*argv, runs=tmp_path / "fresh")
    assert (forked.returncode, forked.stderr) == (fresh.returncode, fresh.stderr)
