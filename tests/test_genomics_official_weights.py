"""The official HyenaDNA checkpoints from a Hugging Face cache, offline: the registry and `zoo genomics finetune`.

The cache is laid out as huggingface_hub lays it (`models--LongSafari--<repo>/blobs`,
`snapshots/<commit>/<file>` symlinks, `refs/main`), holding folders in each official layout at
the released sizes (tests/reference/hyenadna_release.py): the Lightning `-seqlen` release with
the positional table as a buffer (tiny-1k) and with gradient-checkpointing `.mixer.layer.` /
`.mlp.layer.` keys (small-32k, whose config turns `checkpoint_mixer` on), and the `-hf` port
with the table as a parameter. Outputs must equal the official architecture's within 1e-5 (fp32).
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
from hydra import compose, initialize_config_module

from tests.reference.hyenadna_release import (
    SMALL_32K,
    TINY_1K,
    hf_config,
    lightning_config,
    reference_model,
    write_hf,
    write_lightning,
)
from tests.test_hub import lay_out_hf_cache
from tests.zoo_cli import one_line_error
from zoo import create_model, from_pretrained
from zoo.training import run

REPO = Path(__file__).parent.parent
TOKENS = torch.randint(7, 12, (2, 50), generator=torch.Generator().manual_seed(1))
SMALL_DATA = [
    "data.embedded.length=60",
    "data.embedded.n_train=64",
    "data.embedded.n_val=16",
    "data.embedded.n_test=16",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "task.freeze_backbone=true",
]
# repo -> (reference model, how its files are written)
RELEASES = {
    "hyenadna-tiny-1k-seqlen": (
        dict(kind="lightning", size=TINY_1K, seed=0),
        lambda f, ref: write_lightning(f, ref, lightning_config(TINY_1K, model_type=True)),
    ),
    "hyenadna-small-32k-seqlen": (
        dict(kind="lightning", size=SMALL_32K, seed=1, checkpointed=True),
        lambda f, ref: write_lightning(f, ref, lightning_config(SMALL_32K, checkpointed=True)),
    ),
    "hyenadna-tiny-1k-seqlen-hf": (
        dict(kind="hf", size=TINY_1K, seed=2, z_as_parameter=True),
        lambda f, ref: write_hf(f, ref, hf_config(TINY_1K)),
    ),
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(cache folder, {repo: (hidden states, LM logits) of the official architecture on TOKENS})."""
    root = tmp_path_factory.mktemp("hf")
    expected = {}
    for i, (repo, (spec, write)) in enumerate(RELEASES.items()):
        ref = reference_model(**spec)
        folder = write(root / "files" / repo, ref)
        lay_out_hf_cache(root / "hub", f"LongSafari/{repo}", folder, f"{i + 1:040x}")
        with torch.no_grad():
            expected[repo] = ref(TOKENS)
    assert (root / "hub" / "models--LongSafari--hyenadna-tiny-1k-seqlen" / "refs" / "main").is_file()
    return root / "hub", expected


@pytest.fixture
def offline(hub, monkeypatch):
    """HF_HUB_OFFLINE=1, the fake cache as huggingface_hub's cache, and every socket connect refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub[0]))
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("network access")))
    return hub[1]


def assert_official_outputs(model: torch.nn.Module, expected: tuple[torch.Tensor, torch.Tensor]) -> None:
    with torch.no_grad():
        hidden = model.eval().forward_features(TOKENS)
        logits = model.lm_logits(hidden)
    torch.testing.assert_close(hidden, expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, expected[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "tag,repo",
    [("hyenadna_tiny_1k.hg38", "hyenadna-tiny-1k-seqlen"), ("hyenadna_small_32k.hg38", "hyenadna-small-32k-seqlen")],
)
def test_registry_tag_loads_from_the_cache(offline, tag, repo):
    assert_official_outputs(create_model(tag, pretrained=True), offline[repo])


def test_hf_port_and_pinned_revision_load_from_the_cache(offline):
    assert_official_outputs(
        from_pretrained("hf://LongSafari/hyenadna-tiny-1k-seqlen-hf"), offline["hyenadna-tiny-1k-seqlen-hf"]
    )
    pinned = from_pretrained(f"hf://LongSafari/hyenadna-tiny-1k-seqlen@{1:040x}")
    assert_official_outputs(pinned, offline["hyenadna-tiny-1k-seqlen"])


@pytest.mark.parametrize("weights", ["hf://LongSafari/hyenadna-tiny-1k-seqlen", "hyenadna_tiny_1k.hg38"])
def test_finetune_takes_the_architecture_from_the_official_weights(offline, tmp_path, weights):
    """With the default model=hyenadna (width 64), the weights' own architecture (tiny-1k, width 128) is built."""
    with initialize_config_module("domains.genomics.configs", version_base="1.3"):
        cfg = compose(
            "finetune",
            overrides=[
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.log_dir={tmp_path}",
                f"weights={weights}",
                *SMALL_DATA,
            ],
        )
    result = run(cfg)
    tuned = from_pretrained(result["best_checkpoint"])
    assert tuned.zoo_config["name"] == "hyenadna_tiny_1k" and tuned.zoo_config["kwargs"]["d_model"] == 128
    assert tuned.head.out_features == 4 and "test/acc" in result["metrics"]
    assert_official_outputs(
        tuned, offline["hyenadna-tiny-1k-seqlen"]
    )  # frozen backbone: the official weights, unchanged


def test_absent_repo_offline_is_one_clear_error(offline):
    from zoo.errors import ZooError

    with pytest.raises(
        ZooError,
        match=r"hf://LongSafari/hyenadna-medium-160k-seqlen is not in the Hugging Face cache and "
        r"HF_HUB_OFFLINE=1 forbids the network; run `zoo download",
    ):
        create_model("hyenadna_medium_160k.hg38", pretrained=True)


@pytest.mark.slow
def test_cli_finetune_from_the_cache_with_the_network_blocked(hub, tmp_path):
    """`zoo genomics finetune weights=hf://LongSafari/hyenadna-tiny-1k-seqlen` as a user types it, in a fresh process
    whose sockets refuse to connect; the fine-tuned checkpoint's frozen backbone equals the official outputs."""
    blocked = textwrap.dedent("""
        import runpy, socket
        def refuse(*args, **kwargs):
            raise RuntimeError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        runpy.run_module("cli.main", run_name="__main__", alter_sys=True)
    """)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub[0]),
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": str(REPO),
        "ZOO_RUNS_DIR": str(tmp_path / "runs"),
        "ZOO_RUN_ID": "official",
    }

    def finetune(weights: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", blocked, "genomics", "finetune", f"weights={weights}", *SMALL_DATA],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )

    done = finetune("hf://LongSafari/hyenadna-tiny-1k-seqlen")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "runs" / "genomics" / "finetune" / "official" / "metrics.json").read_text())
    assert_official_outputs(from_pretrained(result["best_checkpoint"]), hub[1]["hyenadna-tiny-1k-seqlen"])
    line = one_line_error(finetune("hf://LongSafari/hyenadna-medium-160k-seqlen"))  # not in the cache
    assert "is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids the network" in line, line
