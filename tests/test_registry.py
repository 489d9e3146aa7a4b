import pytest

from zoo import ZooError, create_model, list_models, list_pretrained, register_model
from zoo.registry import PretrainedTag, describe, model_family, split_name


def test_names_and_patterns():
    names = list_models()
    assert names == sorted(names)
    assert "transformer_tiny" in names and "test_transformer" in names
    assert list_models("transformer_*") == [n for n in names if n.startswith("transformer_")]
    assert split_name("hyenadna_tiny_1k.hg38") == ("hyenadna_tiny_1k", "hg38")
    assert model_family("transformer_small") == "transformer"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ZooError, match="transformer_tiny"):
        create_model("transformer_tine")


def test_kwargs_recorded_for_the_hub():
    model = create_model("test_transformer", num_classes=3, vocab_size=11)
    assert model.zoo_config == {"name": "test_transformer", "kwargs": {"num_classes": 3, "vocab_size": 11}}


def test_pretrained_without_weights_is_a_clear_error():
    with pytest.raises(ZooError, match="no pretrained weights"):
        create_model("test_transformer", pretrained=True)


def test_register_twice_is_refused_and_tags_are_listed():
    @register_model(pretrained={"unit": PretrainedTag(source="hf://org/unit-test-model")})
    def test_registry_dummy(**kw):
        return create_model("test_transformer", **kw)

    assert "test_registry_dummy.unit" in list_pretrained()
    assert describe("test_registry_dummy")["tags"] == ["unit"]

    def again(**kw):
        return None

    again.__name__ = "test_registry_dummy"
    with pytest.raises(ValueError, match="registered twice"):
        register_model(again)
    from zoo import registry

    registry._entrypoints.pop("test_registry_dummy")
    registry._families.pop("test_registry_dummy")
    registry._pretrained.pop("test_registry_dummy.unit")
