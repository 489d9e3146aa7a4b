"""The `zoo` command in subprocesses: verbs, Hydra features, and one-line errors with exit code 2.

A toy domain lives outside the package (tests/fixtures) and is put on the path
as `domains/toy`, the way a lab would add its own domain.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.zoo_cli import REPO, one_line_error, zoo

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    toy = root / "domains" / "toy"
    shutil.copytree(FIXTURES / "configs", toy / "configs")
    shutil.copy(REPO / "domains" / "__init__.py", root / "domains" / "__init__.py")
    (toy / "configs" / "__init__.py").write_text("")
    (toy / "__init__.py").write_text(
        '"""A toy counting task (test fixture)."""\nEXAMPLES = ["zoo toy train trainer.max_epochs=1"]\n'
    )
    return root


def test_version_list_and_help(plugin_root, tmp_path):
    assert zoo("--version", root=plugin_root, runs=tmp_path).stdout.startswith("longzoo ")
    listing = zoo("list", "transformer", root=plugin_root, runs=tmp_path)
    assert listing.returncode == 0 and "transformer_tiny" in listing.stdout and "family" in listing.stdout
    help_text = zoo("toy", "--help", root=plugin_root, runs=tmp_path).stdout
    assert "verbs: eval, export, finetune, predict, train" in help_text
    assert "trainer: cpu, ddp, ddp_cpu" in help_text and "zoo toy train trainer.max_epochs=1" in help_text


def test_train_then_predict_with_last(plugin_root, tmp_path):
    trained = zoo("toy", "train", "trainer.max_epochs=1", root=plugin_root, runs=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (tmp_path / "toy" / "train").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["test/acc"] >= 0
    predicted = zoo("toy", "predict", "ckpt_path=last", root=plugin_root, runs=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (pred_dir,) = (tmp_path / "toy" / "predict").iterdir()
    assert (pred_dir / "predictions.csv").read_text().startswith("id,label,p1")


def test_cfg_job_prints_without_running(plugin_root, tmp_path):
    result = zoo("toy", "train", "--cfg", "job", "seed=7", "+model.kwargs.dim=48", root=plugin_root, runs=tmp_path)
    assert result.returncode == 0 and "dim: 48" in result.stdout and "seed: 7" in result.stdout
    assert not (tmp_path / "toy").exists()


def test_multirun_sweeps(plugin_root, tmp_path):
    result = zoo(
        "toy",
        "train",
        "-m",
        "seed=1,2",
        "trainer.max_epochs=1",
        "callbacks=none",
        "trainer.enable_checkpointing=false",
        root=plugin_root,
        runs=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "toy" / "train").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert all((sweep / n / "metrics.json").is_file() for n in ("0", "1"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["model.name=test_transformr"], "unknown model name 'test_transformr'. Did you mean: test_transformer"),
        (["trainer.max_epoch=1"], "Could not override 'trainer.max_epoch'"),
        (["model=nope"], "Could not find 'model/nope'"),
        (["data.path=/no/such/file.txt"], "data.path='/no/such/file.txt' does not exist"),
        (["ckpt_path=/no/such.ckpt"], "ckpt_path='/no/such.ckpt' does not exist"),
    ],
)
def test_user_errors_are_one_line_exit_2(plugin_root, tmp_path, args, expected):
    assert expected in one_line_error(zoo("toy", "train", *args, root=plugin_root, runs=tmp_path))


def test_unknown_domain_and_verb(plugin_root, tmp_path):
    assert "did you mean toy" in one_line_error(zoo("tyo", "train", root=plugin_root, runs=tmp_path))
    assert "not a verb of domain 'toy'" in one_line_error(zoo("toy", "trian", root=plugin_root, runs=tmp_path))
    assert "needs trained weights" in one_line_error(zoo("toy", "predict", root=plugin_root, runs=tmp_path))


def test_verbose_shows_the_traceback(plugin_root, tmp_path):
    result = zoo("toy", "train", "data.path=/no/such/file.txt", "--verbose", root=plugin_root, runs=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr and "DataError" in result.stderr  # same exit code


def test_a_failed_run_keeps_its_reason_in_the_run_log(plugin_root, tmp_path):
    result = zoo("toy", "train", "data.path=/no/such/file.txt", root=plugin_root, runs=tmp_path)
    assert result.returncode == 2
    logs = list(tmp_path.glob("**/main.log"))
    assert logs and any("/no/such/file.txt" in p.read_text() for p in logs)
    assert not list(tmp_path.glob("**/checkpoints/*.ckpt"))


@pytest.mark.parametrize(
    "value",
    ["Toy Story (1995); Heat (1995)", "it's (a)", "C:\\dir\\ (x)", "end\\", "a\\'b;", ",", "x; y"],
)
def test_plain_text_values_hydra_cannot_parse_are_passed_as_text(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cli.main import quote_plain_values

    (quoted,) = quote_plain_values([f"history={value}"])
    assert OverridesParser.create().parse_overrides([quoted])[0].value() == value


def test_values_hydra_reads_and_broken_structures_are_left_alone():
    from cli.main import quote_plain_values

    args = ["a=1,2", "b=x y", "--cfg", "job", "c=[1,", "d={k: 1", "e='quoted'", "-m"]
    assert quote_plain_values(args) == args
