import pytest
from pydantic import ValidationError

from cnnlab.config import build_config, load_config, to_dict
from cnnlab.errors import ConfigError


def test_defaults_match_the_documented_recipe():
    config = build_config()
    assert (config.train.optimizer, config.train.lr, config.train.batch_size) == ("adam", 1e-3, 128)
    assert config.data.val == 0.1


def test_dotted_overrides_are_typed_like_yaml():
    config = build_config(overrides=["train.lr=3e-4", "train.epochs=5", "augment.flip=true",
                                     "train.class_weights=[1, 2.5]", "model.blocks=2"])
    assert config.train.lr == pytest.approx(3e-4) and isinstance(config.train.lr, float)
    assert config.train.epochs == 5 and config.augment.flip is True
    assert config.train.class_weights == [1.0, 2.5]
    assert to_dict(config)["model"] == {"name": "rescnn", "blocks": 2}


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {name: emnist-balanced}\ntrain: {lr: 1.0e-2, optimizer: sgd}\n")
    config = load_config(path, ["train.lr=0.05"])
    assert config.data.name == "emnist-balanced" and config.train.optimizer == "sgd" and config.train.lr == 0.05


def test_config_is_frozen():
    config = build_config()
    with pytest.raises(ValidationError, match="frozen"):
        config.train.lr = 1.0


@pytest.mark.parametrize("override, fragment", [
    ("train.lrr=1", "did you mean train.lr"),
    ("train.lr=-1", "'train.lr' setting must be greater than 0. Got -1"),
    ("train.optimizer=adm", "'sgd', 'sgd_nesterov'"),
    ("trian.lr=1", "unknown config key 'trian'"),
    ("train.lr", "must look like section.key=value"),
])
def test_bad_keys_and_values_name_the_fix(override, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        build_config(overrides=[override])
    assert fragment in str(info.value)


def test_bad_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
