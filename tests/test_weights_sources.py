"""One way in for weights: a model's tokenizer and task come back whichever way the model is given
(registered tag, `hf://` address in the HF cache offline, exported folder, training `.ckpt`), per domain."""

from __future__ import annotations

import pytest
import torch

from tests.test_hub import lay_out_hf_cache
from zoo import open_weights
from zoo.errors import ZooError
from zoo.registry import PretrainedTag, register_pretrained
from zoo.training.loading import restore_task
from zoo.training.runner import export_task

SOURCES = ("folder", "ckpt", "hf", "tag")


def genomics_task(tokenizer=None):
    from domains.genomics.tasks import SequenceTask
    from domains.genomics.tokenizer import make_tokenizer

    config = tokenizer or make_tokenizer("protein").config()  # not the default DNA one: must be carried
    return SequenceTask(model="test_hyenadna", model_kwargs={"vocab_size": 40}, tokenizer=config)


def chem_task(vocab=None):
    from domains.chem.tasks import SmilesLMTask
    from domains.chem.tokenizer import SmilesTokenizer

    vocab = vocab or list(SmilesTokenizer.from_smiles(["CCO", "c1ccccc1Cl", "C[NH3+]"]).tokens)
    return SmilesLMTask(model="test_lstm", model_kwargs={"vocab_size": len(vocab)}, vocab=vocab)


def write_checkpoint(task, path):
    """What Lightning writes for a task (state, hyper-parameters) and what BaseTask adds (`zoo`)."""
    checkpoint = {"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def source_for(kind, task, tmp_path, monkeypatch):
    folder = export_task(task, tmp_path / "export", command="test")
    if kind == "folder":
        return str(folder)
    if kind == "ckpt":
        return str(write_checkpoint(task, tmp_path / "model.ckpt"))
    if kind == "hf":
        lay_out_hf_cache(tmp_path / "hub", "longzoo-test/model", folder, "a" * 40)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
        return "hf://longzoo-test/model"
    from zoo import registry

    monkeypatch.setattr(registry, "_pretrained", dict(registry._pretrained))
    name = f"{task.hparams.model}.unit"
    register_pretrained(name, PretrainedTag(source=str(folder)))
    return name


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("domain", ["genomics", "chem"])
def test_the_tokenizer_comes_with_the_model(domain, kind, tmp_path, monkeypatch):
    torch.manual_seed(0)
    trained = genomics_task() if domain == "genomics" else chem_task()
    source = source_for(kind, trained, tmp_path, monkeypatch)
    weights = open_weights(source)
    assert weights.data_contract == trained.data_contract()
    # Fine-tuning on data with another vocabulary: the model's own tokenizer wins.
    tuned = genomics_task(tokenizer=None) if domain == "genomics" else chem_task(vocab=["<pad>", "C"])
    tuned = type(tuned)(**{**dict(tuned.hparams), "weights": weights})
    assert tuned.data_contract()["tokenizer"] == trained.data_contract()["tokenizer"]
    assert all(
        torch.equal(a, b) for a, b in zip(tuned.backbone.state_dict().values(), trained.backbone.state_dict().values())
    )


@pytest.mark.parametrize("kind", ["folder", "ckpt", "hf"])
def test_the_whole_task_is_restored(kind, tmp_path, monkeypatch):
    torch.manual_seed(0)
    trained = genomics_task().eval()
    trained.mean.fill_(3.0)  # a non-persistent buffer is rebuilt from hparams; a tensor state must come back
    restored = restore_task(open_weights(source_for(kind, trained, tmp_path, monkeypatch)))
    assert type(restored) is type(trained) and not restored.training
    x = torch.randint(0, 20, (2, 12))
    assert torch.equal(restored.backbone(x), trained.backbone(x))
    assert restored.tokenizer.config() == trained.tokenizer.config()


def test_rl_heads_come_back_from_an_export(tmp_path):
    from domains.rl.hub import load_policy
    from domains.rl.tasks import PPOTask

    torch.manual_seed(0)
    task = PPOTask(model="test_policy_cores", model_kwargs={"in_features": 4}, num_actions=2)
    folder = export_task(task, tmp_path / "policy", command="test")
    agent, spec = load_policy(folder)
    assert spec["env"] == "CartPole-v1" and spec["num_actions"] == 2
    for a, b in zip(agent.heads.state_dict().values(), task.heads.state_dict().values()):
        assert torch.equal(a, b)


def test_a_mistyped_weight_tag_gets_did_you_mean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local file of that name
    with pytest.raises(ZooError, match=r"did you mean hyenadna_tiny_1k\.hg38\b"):
        open_weights("hyenadna_tiny_1k.hg83")
    with pytest.raises(ZooError, match=r"neither an existing file/folder") as err:
        open_weights("runs/missing.ckpt")  # not like any tag: the plain not-found line
    assert "did you mean" not in str(err.value)
