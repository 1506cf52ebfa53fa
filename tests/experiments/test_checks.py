"""The checks of a planned study that need the dataset and the model (experiments/checks.py): facts
for the time estimate, the registry standing in for data that is not here yet, model options, flips
for characters, class weights, unknown names; each error names its cell. Nothing here trains."""

from __future__ import annotations

import re

import pytest
from study_helpers import SMALL_BASE, small_plan

from cnnlab.data import DATASETS
from cnnlab.errors import CnnlabError, ConfigError, DataError, UnknownNameError
from cnnlab.experiments.checks import check_plan
from cnnlab.experiments.plan import parse_study, plan_study
from cnnlab.models import create_model


def absent(name: str) -> str:
    """A registered dataset whose files are not in this test's (empty) data home."""
    if DATASETS.get(name).source.present():
        pytest.skip(f"{name} is on this machine; the no-data path needs it absent")
    return name


def test_check_plan_facts_for_digits():
    p = small_plan(ablate={"train.optimizer": ["sgd"]}, seeds=2)
    facts = check_plan(p)
    assert set(facts) == {c.key for c in p.cells}
    module = create_model("lenet5", 10, 1, (8, 8)).module
    params = sum(t.numel() for t in module.parameters())
    for fact in facts.values():
        assert fact["present"] is True
        assert fact["train_images"] == round(1437 * 0.9)  # digits' 1437 training images less a 10 % val split
        assert fact["eval_images"] == round(fact["train_images"] * 0.2)
        assert fact["params"] == params == 21386
        assert fact["macs"] > 0


def test_check_plan_counts_train_images_after_subset_and_val():
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "data": {"name": "digits", "subset": 500, "val": 100}},
                        "seeds": 1})
    (fact,) = check_plan(plan_study(spec, 1)).values()
    assert fact["train_images"] == 400


def test_check_plan_without_data_uses_the_registry():
    name = absent("kmnist")
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "data": name}, "seeds": 1})
    p = plan_study(spec, 1)
    (fact,) = check_plan(p, need_data=False).values()
    assert fact["present"] is False
    assert fact["train_images"] == 60000 - 6000
    assert fact["eval_images"] == 10800
    # LeNet-5 on 28x28: the classic 61,706 parameters; MACs of C1, C3, C5, F6 and the output layer
    assert fact["params"] == 61706
    assert fact["macs"] == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 25 * 6 + 400 * 120 + 120 * 84 + 84 * 10
    with pytest.raises(DataError) as info:  # the real run needs the files
        check_plan(p, need_data=True)
    assert str(info.value).startswith("study 's', cell base/seed=0-")


def test_check_plan_without_data_for_colour_images():
    name = absent("cifar10")
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "data": name}, "ablate": {"augment.flip": [True]},
                        "seeds": 1})
    facts = check_plan(plan_study(spec, 1), need_data=False)  # flips are fine for photographs
    assert len(facts) == 2
    module = create_model("lenet5", 10, 3, (32, 32)).module
    assert {f["params"] for f in facts.values()} == {sum(t.numel() for t in module.parameters())}


def test_check_plan_names_the_cell_of_an_unknown_model_option():
    p = small_plan(ablate={"model.widths": [[8, 16]]}, seeds=1)
    with pytest.raises(ConfigError) as info:
        check_plan(p)
    message = str(info.value)
    assert re.match(r"study 's', cell widths=8-16/seed=0-[0-9a-f]{8}: ", message), message
    assert "unknown option for model 'lenet5': 'widths'" in message


def test_check_plan_names_the_cell_of_a_bad_model_option_value():
    p = small_plan(ablate={"model.activation": ["relu", "nosuch"]}, seeds=1)
    with pytest.raises(CnnlabError) as info:
        check_plan(p)
    message = str(info.value)
    assert re.match(r"study 's', cell activation=nosuch/seed=0-[0-9a-f]{8}: ", message), message
    assert "nosuch" in message.split(": ", 1)[1]


def test_an_unknown_model_name_is_an_error_naming_the_cell():
    with pytest.raises(UnknownNameError) as info:
        p = small_plan(ablate={"model.name": ["lenet5", "nosuchnet"]}, seeds=1)
        check_plan(p)
    message = str(info.value)
    assert message.startswith("study 's', cell ")
    assert "nosuchnet" in message and "unknown model 'nosuchnet'" in message


@pytest.mark.parametrize("dataset", ["digits", "emnist-letters", "emnist-balanced", "kmnist"])
def test_flips_are_refused_for_characters(dataset):
    need_data = dataset == "digits"
    if not need_data:
        absent(dataset)
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "data": dataset}, "ablate": {"augment.flip": [False, True]},
                        "seeds": 1})
    with pytest.raises(ConfigError) as info:
        check_plan(plan_study(spec, 1), need_data=need_data)
    message = str(info.value)
    assert re.match(r"study 's', cell flip=True/seed=0-[0-9a-f]{8}: ", message), message
    assert f"augment.flip is refused for {dataset}" in message


def test_class_weights_of_the_wrong_length_name_the_cell():
    good = small_plan(ablate={"train.class_weights": [[1.0] * 10, "balanced"]}, seeds=1)
    assert len(check_plan(good)) == 3
    bad = small_plan(ablate={"train.class_weights": [[1.0] * 10, [1.0, 2.0]]}, seeds=1)
    with pytest.raises(ConfigError) as info:
        check_plan(bad)
    message = str(info.value)
    assert re.match(r"study 's', cell class_weights=1.0-2.0/seed=0-[0-9a-f]{8}: ", message), message
    assert "train.class_weights has 2 values but digits has 10 classes" in message


def test_an_unknown_dataset_names_the_cell():
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "data": "digitz"}, "seeds": 1})
    with pytest.raises(UnknownNameError) as info:
        check_plan(plan_study(spec, 1), need_data=False)
    assert str(info.value).startswith("study 's', cell base/seed=0-")
    assert "unknown dataset 'digitz'" in str(info.value)
