"""Hub format: round trips, the HF cache offline with sockets blocked, broken files, checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from zoo import ZooError, create_model, from_pretrained, open_weights
from zoo.hub import save_pretrained

pytestmark = pytest.mark.hub


def make_model(**kw):
    torch.manual_seed(0)
    return create_model("test_transformer", **{"num_classes": 3, **kw}).eval()


def test_folder_is_a_model_repo(tmp_path):
    model = make_model()
    folder = save_pretrained(
        model, tmp_path / "m", card={"data": "unit test", "metrics": {"acc": 1.0}, "command": "zoo x train"}
    )
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "longzoo" and config["name"] == "test_transformer"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: longzoo") and "zoo x train" in card and '"acc": 1.0' in card


def test_round_trip_exact(tmp_path):
    model = make_model()
    x = torch.randint(0, 16, (2, 10))
    save_pretrained(model, tmp_path / "m")
    again = from_pretrained(tmp_path / "m").eval()
    assert torch.equal(again(x), model(x))
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), again.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_a_registered_tag_is_a_weights_source(tmp_path, monkeypatch):
    from zoo import registry
    from zoo.registry import PretrainedTag, register_pretrained

    model = make_model()
    save_pretrained(model, tmp_path / "m")
    monkeypatch.setattr(registry, "_pretrained", dict(registry._pretrained))  # the tag lives only in this test
    register_pretrained("test_transformer.unit", PretrainedTag(source=str(tmp_path / "m")))
    x = torch.randint(0, 16, (2, 10))
    assert torch.equal(
        create_model("test_transformer", weights="test_transformer.unit", num_classes=3).eval()(x), model(x)
    )
    assert torch.equal(from_pretrained("test_transformer.unit").eval()(x), model(x))


def test_overwrite_is_atomic_and_leaves_no_temp(tmp_path):
    save_pretrained(make_model(), tmp_path / "m")
    save_pretrained(make_model(num_classes=4), tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["kwargs"]["num_classes"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_head_reinitialised_when_sizes_differ(tmp_path, caplog):
    save_pretrained(make_model(num_classes=3), tmp_path / "m")
    with caplog.at_level(logging.WARNING):
        model = from_pretrained(tmp_path / "m", num_classes=5)
    assert model.head.out_features == 5
    assert "re-initialised" in caplog.text
    source = make_model(num_classes=3)
    assert torch.equal(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_body_mismatch_is_a_clear_error(tmp_path):
    save_pretrained(make_model(), tmp_path / "m")
    with pytest.raises(ZooError, match="do not fit .*wrong shape"):
        create_model("test_transformer", weights=tmp_path / "m", dim=48, num_classes=3)


@pytest.mark.parametrize("damage", ["truncate", "garble_header"])
def test_corrupted_weights_give_a_clear_error(tmp_path, damage):
    folder = save_pretrained(make_model(), tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:8] + b"{not json" + data[17:])
    with pytest.raises(ZooError, match="does not match the SHA-256"):
        from_pretrained(folder)
    os.environ["ZOO_SKIP_HASH"] = "1"  # without the checksum, the parser still names the damage
    try:
        with pytest.raises(ZooError, match="corrupted or truncated weights file"):
            from_pretrained(folder)
    finally:
        del os.environ["ZOO_SKIP_HASH"]


def test_a_flipped_byte_fails_the_checksum(tmp_path, monkeypatch):
    folder = save_pretrained(make_model(), tmp_path / "m")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor: the file still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="SHA-256.*ZOO_SKIP_HASH=1"):
        from_pretrained(folder)
    monkeypatch.setenv("ZOO_SKIP_HASH", "1")  # huge files: the user may skip the check
    assert from_pretrained(folder) is not None


def test_saved_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        folder = save_pretrained(make_model(), tmp_path / "m")
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())


def test_open_weights_reads_a_source_once_into_one_object(tmp_path):
    model = make_model()
    folder = save_pretrained(model, tmp_path / "m", extra_files={"classes.json": "[1]"}, data_contract={"k": 1})
    weights = open_weights(folder)
    assert weights.architecture == {"name": "test_transformer", "kwargs": model.zoo_config["kwargs"]}
    assert weights.data_contract == {"k": 1} and weights.json("classes.json") == [1]
    assert open_weights(weights) is weights  # an opened source passes through untouched
    assert torch.equal(weights.state_dict["head.weight"], model.head.weight)


def test_from_pretrained_returns_eval_mode(tmp_path):
    save_pretrained(make_model(), tmp_path / "m")
    assert not from_pretrained(tmp_path / "m").training


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(ZooError, match="weights not found"):
        from_pretrained(tmp_path / "nope")


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_hf_cache(cache: Path, repo_id: str, folder: Path, commit: str) -> None:
    """Write `folder` into an HF cache exactly as huggingface_hub lays one out:
    blobs named by content hash, a snapshot of symlinks per commit, refs/main -> commit."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        data = file.read_bytes()
        blob = hashlib.sha256(data).hexdigest() if file.suffix == ".safetensors" else _git_blob_sha(data)
        (repo_dir / "blobs" / blob).write_bytes(data)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob)
    (repo_dir / "refs" / "main").write_text(commit)


def test_hf_cache_offline_without_network(tmp_path):
    """In a fresh interpreter: HF_HUB_OFFLINE=1, every socket connect raises, and the model loads from the cache."""
    model = make_model()
    folder = save_pretrained(model, tmp_path / "export")
    commit = "0123456789abcdef0123456789abcdef01234567"
    lay_out_hf_cache(tmp_path / "hub", "longzoo-test/tiny", folder, commit)
    x = torch.randint(0, 16, (2, 10))
    torch.save({"x": x, "y": model(x)}, tmp_path / "io.pt")
    script = textwrap.dedent(f"""
        import socket, torch
        def refuse(*a, **k):
            raise RuntimeError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from zoo import from_pretrained
        io = torch.load({str(tmp_path / "io.pt")!r})
        for src in ("hf://longzoo-test/tiny", "hf://longzoo-test/tiny@{commit}"):
            m = from_pretrained(src).eval()
            assert torch.equal(m(io["x"]), io["y"]), src
        try:
            from_pretrained("hf://longzoo-test/absent")
        except Exception as err:
            assert "HF_HUB_OFFLINE=1" in str(err) and "zoo download" in str(err), err
        else:
            raise AssertionError("absent repo loaded")
        print("ok")
    """)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HOME": str(tmp_path / "hfhome"),
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_download_to_folder_for_air_gapped_use(tmp_path, monkeypatch):
    folder = save_pretrained(make_model(), tmp_path / "export")
    lay_out_hf_cache(tmp_path / "hub", "longzoo-test/tiny", folder, "f" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("network")))
    from zoo import download

    out = download("hf://longzoo-test/tiny", tmp_path / "airgap")
    x = torch.randint(0, 16, (1, 6))
    assert torch.equal(from_pretrained(out).eval()(x), make_model()(x))
