"""The generic name registry: registering, looking up, refusing duplicates, did-you-mean suggestions."""

from __future__ import annotations

import pytest

from cnnlab.data import DATASETS
from cnnlab.errors import CnnlabError, UnknownNameError
from cnnlab.registry import Registry


@pytest.fixture
def models() -> Registry:
    registry: Registry[object] = Registry("model")
    registry.register("resnet18", "R18")
    registry.register("resnet50", "R50")
    registry.register("vgg11", "V11")
    return registry


def test_register_get_and_names(models):
    assert models.get("resnet50") == "R50"
    assert models.names() == ["resnet18", "resnet50", "vgg11"]
    assert list(models) == models.names()
    assert len(models) == 3
    assert "vgg11" in models and "vgg16" not in models
    assert models.items() == [("resnet18", "R18"), ("resnet50", "R50"), ("vgg11", "V11")]


def test_names_are_sorted_whatever_the_order_of_registration():
    registry: Registry[int] = Registry("thing")
    for i, name in enumerate(["zeta", "alpha", "mid"]):
        registry.register(name, i)
    assert registry.names() == ["alpha", "mid", "zeta"]
    assert registry.get("zeta") == 0


def test_register_as_decorator_returns_the_object():
    registry: Registry = Registry("optimizer")

    @registry.register("sgd")
    def make_sgd():
        return "sgd!"

    assert registry.get("sgd") is make_sgd
    assert make_sgd() == "sgd!"  # the decorator hands the function back unchanged


def test_falsy_objects_can_be_registered():
    registry: Registry[int] = Registry("constant")
    registry.register("zero", 0)
    assert registry.get("zero") == 0


def test_duplicate_registration_is_refused_and_keeps_the_first(models):
    with pytest.raises(ValueError, match="'resnet18' is already registered"):
        models.register("resnet18", "other")
    assert models.get("resnet18") == "R18"


def test_duplicate_registration_by_decorator_is_refused(models):
    with pytest.raises(ValueError, match="already registered"):
        models.register("vgg11")(lambda: None)


def test_overwrite_replaces(models):
    models.register("resnet18", "new", overwrite=True)
    assert models.get("resnet18") == "new"
    assert len(models) == 3


def test_unknown_name_is_a_cnnlab_error_and_a_key_error(models):
    with pytest.raises(UnknownNameError) as info:
        models.get("resnet19")
    assert isinstance(info.value, CnnlabError)
    assert isinstance(info.value, KeyError)
    assert info.value.exit_code == 2
    message = str(info.value)
    # KeyError would wrap the message in quotes; ours prints it as written
    assert message.startswith("unknown model 'resnet19': did you mean 'resnet18'")
    assert message.endswith("known: resnet18, resnet50, vgg11")


def test_unknown_name_without_close_match_lists_the_known_names(models):
    with pytest.raises(UnknownNameError) as info:
        models.get("transformer")
    message = str(info.value)
    assert "did you mean" not in message
    assert message == "unknown model 'transformer': known: resnet18, resnet50, vgg11"


@pytest.mark.parametrize(
    ("typo", "best"),
    [
        ("emnist-balanc", "emnist-balanced"),
        ("fashon-mnist", "fashion-mnist"),
        ("mnst", "mnist"),
        ("EMNIST-Letters", "emnist-letters"),
        ("cifar-10", "cifar10"),
    ],
)
def test_dataset_typos_suggest_the_closest_name_first(typo, best):
    assert DATASETS.suggest(typo)[0] == best
    with pytest.raises(UnknownNameError) as info:
        DATASETS.get(typo)
    assert f"did you mean '{best}'" in str(info.value)
    assert str(info.value).startswith(f"unknown dataset '{typo}'")


def test_suggestions_are_at_most_n_and_known_names(models):
    for typo in ("res", "resnet", "vg", "resnet5"):
        close = models.suggest(typo, n=2)
        assert len(close) <= 2
        assert all(c in models for c in close)


def test_prefix_suggestions_fill_up_to_n():
    registry: Registry[int] = Registry("dataset")
    for i, name in enumerate(["cifar10", "cifar100", "cifar100-coarse", "kmnist"]):
        registry.register(name, i)
    assert registry.suggest("cifar") == ["cifar10", "cifar100", "cifar100-coarse"]


def test_mixed_case_names_are_suggested_once():
    """Regression: a name matched both fuzzily and by prefix used to be suggested twice
    ('did you mean 'ResNet50', 'ResNet18', 'ResNet18'?')."""
    registry: Registry[int] = Registry("model")
    for i, name in enumerate(["ResNet18", "ResNet50", "VGG11"]):
        registry.register(name, i)
    for typo in ("Res", "res", "resnet", "ResNet1", "vgg"):
        close = registry.suggest(typo)
        assert len(close) == len(set(close)), (typo, close)
        assert all(c in registry for c in close)
    assert registry.suggest("vgg") == ["VGG11"]
    assert set(registry.suggest("Res")) == {"ResNet18", "ResNet50"}


def test_unregister_removes_and_returns(models):
    assert models.unregister("vgg11") == "V11"
    assert "vgg11" not in models and len(models) == 2
    with pytest.raises(UnknownNameError, match="unknown model 'vgg11'"):
        models.unregister("vgg11")


def test_one_of_ends_a_must_be_sentence(models):
    assert models.one_of() == "one of 'resnet18', 'resnet50', 'vgg11'"
    assert models.one_of("resnet5", quote=False).startswith("one of resnet18, resnet50, vgg11 (did you mean 'resnet5")
    assert models.one_of("transformer") == "one of 'resnet18', 'resnet50', 'vgg11'"  # nothing close: no hint
