"""Offline use (issue 26 point 7): with HF_HUB_OFFLINE=1 no hub path touches the network.

Every socket entry point (`socket.socket.connect`/`connect_ex`, `socket.create_connection`,
`socket.getaddrinfo`) is replaced by a counter that refuses. Each hub path then loads from a Hugging
Face cache laid out as huggingface_hub lays one out (`tests/test_hub.py::lay_out_hf_cache`): an
official HyenaDNA release (converted on load) under its registered tag, and a longzoo folder. Every
path must make zero attempts, and a model absent from the cache must be refused in one line that
says to run `zoo download`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import cli.main
from tests.reference.hyenadna_release import TINY_1K, lightning_config, reference_model, write_lightning
from tests.test_hub import lay_out_hf_cache
from tests.zoo_cli import REPO
from zoo import ZooError, create_model, download, from_pretrained, open_weights
from zoo.hub import save_pretrained

pytestmark = pytest.mark.hub

OFFICIAL = "hf://LongSafari/hyenadna-tiny-1k-seqlen"  # what the tag hyenadna_tiny_1k.hg38 names
TAG = "hyenadna_tiny_1k.hg38"
ABSENT_TAG = "hyenadna_medium_160k.hg38"  # registered, never put in the cache
OURS = "hf://longzoo-test/tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKENS = torch.randint(7, 11, (1, 24), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("offline")
    official = write_lightning(
        root / "files" / "official", reference_model("lightning", TINY_1K), lightning_config(TINY_1K, model_type=True)
    )
    lay_out_hf_cache(root / "hub", "LongSafari/hyenadna-tiny-1k-seqlen", official, "1" * 40)
    torch.manual_seed(0)
    ours = save_pretrained(create_model("test_transformer", num_classes=3), root / "files" / "ours")
    lay_out_hf_cache(root / "hub", "longzoo-test/tiny", ours, COMMIT)
    return root / "hub"


@pytest.fixture
def attempts(cache, monkeypatch) -> list[str]:
    """HF_HUB_OFFLINE=1 (the variable and huggingface_hub's constant read at import), the fake cache,
    and every way to open a connection counted and refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    seen: list[str] = []

    def refuse(name):
        def attempt(*args, **kwargs):
            seen.append(name)
            raise OSError(f"network access attempted: {name}")

        return attempt

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    return seen


def outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval().forward_features(TOKENS)


def test_every_hub_path_loads_from_the_cache_without_a_connection(attempts, tmp_path, capsys):
    tagged = create_model(TAG, pretrained=True)
    expected = outputs(tagged)
    for source in (TAG, OFFICIAL):
        opened = open_weights(source)
        assert opened.architecture["name"] == "hyenadna_tiny_1k" and len(opened.state_dict) > 10, source
    assert torch.equal(outputs(from_pretrained(OFFICIAL)), expected)
    ours = [from_pretrained(source) for source in (OURS, f"{OURS}@{COMMIT}")]
    assert torch.equal(ours[0](TOKENS), ours[1](TOKENS))
    # `zoo download` prepares a folder for an air-gapped machine: from the cache, too, with no network
    cli.main.main(["download", TAG, "--to", str(tmp_path / "airgap")])
    assert "wrote" in capsys.readouterr().out
    assert torch.equal(outputs(from_pretrained(tmp_path / "airgap")), expected)
    assert download(OURS, tmp_path / "ours").is_dir()
    assert attempts == []


@pytest.mark.parametrize(
    "load",
    [
        lambda: open_weights("hf://LongSafari/hyenadna-absent"),
        lambda: from_pretrained("hf://longzoo-test/absent"),
        lambda: from_pretrained(f"{OURS}@{'f' * 40}"),  # a revision the cache lacks
        lambda: create_model(ABSENT_TAG, pretrained=True),
        lambda: download(ABSENT_TAG, "unused"),
    ],
    ids=["open_weights", "from_pretrained", "revision", "create_model_tag", "download"],
)
def test_a_model_missing_from_the_cache_is_one_line_naming_zoo_download(attempts, load):
    with pytest.raises(ZooError) as caught:
        load()
    message = str(caught.value)
    assert "\n" not in message and "HF_HUB_OFFLINE=1" in message and "`zoo download " in message, message
    assert attempts == []


def test_cli_download_of_a_missing_model_is_one_line_and_exit_2(attempts, tmp_path, capsys):
    with pytest.raises(SystemExit) as ended:
        cli.main.main(["download", ABSENT_TAG, "--to", str(tmp_path / "x")])
    assert ended.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: ") and "`zoo download " in lines[0], lines
    assert attempts == [] and not (tmp_path / "x").exists()


COUNTING_CLI = textwrap.dedent("""
    import json, runpy, socket
    seen = []
    def refuse(name):
        def attempt(*args, **kwargs):
            seen.append(name)
            raise OSError("network access attempted: " + name)
        return attempt
    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.create_connection = refuse("socket.create_connection")
    socket.getaddrinfo = refuse("socket.getaddrinfo")
    try:
        runpy.run_module("cli.main", run_name="__main__", alter_sys=True)
    finally:
        with open(COUNT, "w") as out:
            out.write(json.dumps(seen))
""")


def test_zoo_download_in_a_fresh_offline_process_makes_no_connection(cache, tmp_path):
    """As a user runs it: HF_HUB_OFFLINE=1 set before the interpreter starts, the real `zoo download`."""
    count = tmp_path / "attempts.json"
    script = COUNTING_CLI.replace("COUNT", repr(str(count)))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, "download", TAG, "--to", str(tmp_path / "airgap")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(count.read_text()) == []
    assert json.loads((tmp_path / "airgap" / "config.json").read_text())["name"] == "hyenadna_tiny_1k"


def test_the_counter_sees_the_attempt_a_connected_machine_makes(attempts, monkeypatch):
    """Without HF_HUB_OFFLINE the same missing model goes to the network: the counter is not blind, and the
    failure still names `zoo download` for an air-gapped machine."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with pytest.raises(ZooError, match="`zoo download hf://longzoo-test/absent --to DIR`") as caught:
        from_pretrained("hf://longzoo-test/absent")
    assert attempts and "\n" not in str(caught.value)
