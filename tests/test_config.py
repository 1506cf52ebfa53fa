from pathlib import Path

import pytest
from pydantic import ValidationError

from cnnlab.config import FLAGS, RunConfig, build_config, key_table, load_config, markdown_key_table, replace, to_dict
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


# ---- the key table, flags, shorthands, replace(), split_seed ------------------------------------------


def _all_keys() -> list[str]:
    """Every config key, walked from the pydantic models (independently of key_table)."""
    return [f"{section}.{name}" for section, field in RunConfig.model_fields.items()
            for name in field.annotation.model_fields]


def test_the_markdown_key_table_covers_every_key_once():
    lines = markdown_key_table().splitlines()
    assert lines[:2] == ["| key | default | flag | meaning |", "|---|---|---|---|"]
    rows = [line.strip("|").split(" | ") for line in lines[2:]]
    assert all(len(row) == 4 for row in rows), "a '|' inside a cell breaks the table"
    keys = [row[0].strip(" `") for row in rows]
    assert keys == _all_keys() and len(keys) == len(set(keys)) > 30
    by_key = {row[0].strip(" `"): row for row in rows}
    assert by_key["train.lr"][1:3] == ["`0.001`", "`--lr`"]
    assert by_key["train.grad_clip"][1:3] == ["`none`", ""]
    assert all(row[3].strip() for row in rows), "every key has a meaning"
    assert [r["key"] for r in key_table()] == keys


def test_the_readme_holds_the_current_key_table():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("no README.md")
    assert markdown_key_table() in readme.read_text(), "regenerate it with `python -m cnnlab.config`"


def test_flags_name_real_keys_and_real_options_of_train():
    import typer.main

    from cnnlab.cli import app

    assert set(FLAGS) <= set(_all_keys())
    train = typer.main.get_command(app).commands["train"]
    options = {opt for param in train.params for opt in param.opts + param.secondary_opts}
    assert set(FLAGS.values()) <= options
    assert len(set(FLAGS.values())) == len(FLAGS)


def test_data_and_model_shorthands(tmp_path):
    config = build_config({"data": "digits", "model": "lenet5"})
    assert config.data.name == "digits" and config.data.val == 0.1  # the rest of the section defaults
    assert to_dict(config)["model"] == {"name": "lenet5"}
    config = build_config({"model": "rescnn"}, ["model.widths=[8, 16]", "data.split_seed=3"])
    assert to_dict(config)["model"] == {"name": "rescnn", "widths": [8, 16]} and config.data.split_seed == 3
    path = tmp_path / "run.yaml"
    path.write_text("data: emnist-balanced\nmodel: lenet5\n")
    assert load_config(path, {"data.val": 500}).data.name == "emnist-balanced"
    assert load_config(path, {"data.val": 500}).data.val == 500


def test_replace_returns_a_validated_copy():
    config = build_config({"data": "digits"})
    other = replace(config, **{"train.threads": 2, "train.lr": "3e-4", "model.widths": [8]})
    assert (other.train.threads, other.train.lr, other.data.name) == (2, 3e-4, "digits")
    assert to_dict(other)["model"] == {"name": "rescnn", "widths": [8]}
    assert config.train.threads is None and config.train.lr == 1e-3  # the original is untouched
    with pytest.raises(ConfigError, match="'train.threads' setting must be greater than or equal to 1"):
        replace(config, **{"train.threads": 0})
    with pytest.raises(ConfigError, match="unknown config key 'train.thread'"):
        replace(config, **{"train.thread": 1})


def test_split_seed_draws_the_validation_split_apart_from_the_training_seed():
    import numpy as np

    from cnnlab.data import load_dataset, prepare_splits

    digits = load_dataset("digits")
    a, b = prepare_splits(digits, val=0.1, seed=0), prepare_splits(digits, val=0.1, seed=0)
    other = prepare_splits(digits, val=0.1, seed=1)
    np.testing.assert_array_equal(a["val"].items, b["val"].items)
    assert not np.array_equal(a["val"].items, other["val"].items)
    for dataset in (a, other):
        assert len(dataset["val"]) == 144 and len(dataset["train"]) == 1293
        assert not set(dataset["val"].items) & set(dataset["train"].items)  # disjoint, positions in train
        assert np.bincount(dataset["val"].labels, minlength=10).min() >= 13  # stratified
        np.testing.assert_array_equal(dataset["test"].items, digits["test"].items)  # test is never redrawn
    subset = prepare_splits(digits, val=0.1, subset=200, seed=0)
    np.testing.assert_array_equal(subset["val"].items, a["val"].items)
    assert len(subset["train"]) == 200 and set(subset["train"].items) <= set(a["train"].items)


# ---- the dump a cell's hash is made of ------------------------------------------------------------------

# to_dict(RunConfig()) as it was before train.callbacks and the callback mappings existed: every study
# cell's folder name ends in the hash of such a dump, so a key added with a default must leave it alone
DEFAULT_DUMP = (
    '{"data": {"name": "fashion-mnist", "val": 0.1, "carve_from": null, "test": 0.1, "subset": null, '
    '"split_seed": 0}, "model": {"name": "rescnn"}, "augment": {"rotation": 0.0, "shift": 0.0, "scale": 0.0, '
    '"shear": 0.0, "erasing": 0.0, "flip": false}, "train": {"epochs": 10, "batch_size": 128, "optimizer": "adam", '
    '"lr": 0.001, "momentum": 0.9, "weight_decay": 0.0, "schedule": "none", "warmup_epochs": 0.0, "step_size": 10, '
    '"step_gamma": 0.1, "grad_clip": null, "loss": "cross_entropy", "label_smoothing": 0.0, "focal_gamma": 2.0, '
    '"focal_alpha": null, "class_weights": "none", "early_stopping": null, "reduce_lr_on_plateau": null, '
    '"seed": 0, "threads": null, "device": "auto", "compile": "auto", "channels_last": true, "amp": "auto"}}')


def test_the_default_dump_is_pinned_byte_for_byte():
    import json

    assert json.dumps(to_dict(RunConfig())) == DEFAULT_DUMP
    assert json.dumps(RunConfig().model_dump(mode="json")) == DEFAULT_DUMP


def test_a_patience_dumps_as_the_number_it_was_written_as():
    for value in (3, {"patience": 3}, {"patience": 3, "factor": 0.1, "monitor": "val_loss"}):
        config = build_config(overrides={"train.reduce_lr_on_plateau": value, "train.early_stopping": 8})
        train = to_dict(config)["train"]
        assert (train["reduce_lr_on_plateau"], train["early_stopping"]) == (3, 8)
        assert "callbacks" not in train
        assert config == build_config(overrides={"train.reduce_lr_on_plateau": 3, "train.early_stopping": 8})


# ---- callbacks from the config -------------------------------------------------------------------------


def test_a_callback_mapping_sets_its_options_and_dumps_them_all():
    config = build_config(overrides=["train.reduce_lr_on_plateau={patience: 3, factor: 0.5, min_lr: 1e-5}"])
    options = config.train.reduce_lr_on_plateau
    assert (options.patience, options.factor, options.min_lr, options.monitor) == (3, 0.5, 1e-5, "val_loss")
    assert to_dict(config)["train"]["reduce_lr_on_plateau"] == {
        "monitor": "val_loss", "mode": "auto", "factor": 0.5, "patience": 3, "min_delta": 1e-4, "cooldown": 0,
        "min_lr": 1e-5}
    assert build_config(to_dict(config)) == config  # what config.yaml holds reads back the same


def test_a_dotted_option_extends_a_patience():
    config = build_config({"train": {"reduce_lr_on_plateau": 4}}, ["train.reduce_lr_on_plateau.factor=0.5"])
    assert (config.train.reduce_lr_on_plateau.patience, config.train.reduce_lr_on_plateau.factor) == (4, 0.5)
    alone = build_config(overrides=["train.early_stopping.monitor=val_loss"])
    assert (alone.train.early_stopping.monitor, alone.train.early_stopping.patience) == ("val_loss", 5)


@pytest.mark.parametrize("override, message", [
    ("train.reduce_lr_on_plateau={patience: 3, factor: 1.5}",
     "The 'train.reduce_lr_on_plateau.factor' setting must be in (0, 1). Got 1.5 instead."),
    ("train.reduce_lr_on_plateau={factr: 0.5}",
     "unknown config key 'train.reduce_lr_on_plateau.factr'; did you mean train.reduce_lr_on_plateau.factor?"),
    ("train.early_stopping={mode: up}",
     "The 'train.early_stopping.mode' setting must be 'min', 'max' or 'auto'. Got 'up' instead."),
    ("train.early_stopping={speed: 1}", "unknown config key 'train.early_stopping.speed'; the options of "
                                        "EarlyStopping are monitor, mode, patience, min_delta, restore_best_weights"),
    ("train.early_stopping=0", "The 'train.early_stopping' setting must be greater than or equal to 1. Got 0 instead."),
    ("train.callbacks=[{name: reduce_lr_on_plateu}]", "The 'train.callbacks[0].name' setting must be one of "
                                                      "'early_stopping', 'reduce_lr_on_plateau' (did you mean"),
    ("train.callbacks=[{patience: 2}]", "The 'train.callbacks[0].name' setting is missing; it must be one of"),
    ("train.callbacks=[{name: early_stopping}, {name: early_stopping, patiense: 2}]",
     "unknown config key 'train.callbacks[1].patiense'; did you mean train.callbacks[1].patience?"),
    ("train.callbacks=[5]", "The 'train.callbacks[0]' setting must be a mapping of a callback's name and options"),
])
def test_bad_callback_settings_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        build_config(overrides=[override])
    assert message in str(info.value)


def test_the_callbacks_list_runs_after_the_two_shorthands_in_order():
    config = build_config(overrides=["train.early_stopping=4", "train.reduce_lr_on_plateau=2",
                                     "train.callbacks=[{name: reduce_lr_on_plateau, monitor: val_acc, factor: 0.5}]"])
    settings = config.train.configured_callbacks()
    assert [(s.name, s.options.patience) for s in settings] == [
        ("early_stopping", 4), ("reduce_lr_on_plateau", 2), ("reduce_lr_on_plateau", 3)]
    assert to_dict(config)["train"]["callbacks"] == [
        {"name": "reduce_lr_on_plateau", "monitor": "val_acc", "mode": "auto", "factor": 0.5, "patience": 3,
         "min_delta": 1e-4, "cooldown": 0, "min_lr": 0.0}]
    assert build_config(to_dict(config)) == config
    assert hash(config) == hash(build_config(to_dict(config)))  # still hashable, like every frozen config
    assert build_config().train.configured_callbacks() == []


def test_the_key_table_shows_the_callbacks_list_and_the_registered_names():
    rows = {row["key"]: row for row in key_table()}
    assert rows["train.callbacks"]["default"] == []
    assert "NAME: early_stopping, reduce_lr_on_plateau or another registered" in rows["train.callbacks"]["meaning"]
    assert rows["train.loss"]["meaning"] == "cross_entropy or focal"
    assert "| `train.callbacks` | `[]` |" in markdown_key_table()


# ---- key=value ------------------------------------------------------------------------------------------


def test_parse_assignment_reads_the_value_as_yaml():
    from cnnlab.config import parse_assignment, parse_assignments

    assert parse_assignment("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_assignment(" model.widths = [8, 16] ") == ("model.widths", [8, 16])
    assert parse_assignment("data.name=csv:a.csv,b.csv") == ("data.name", "csv:a.csv,b.csv")
    assert parse_assignment("a=b=c") == ("a", "b=c")
    assert parse_assignments(["augment.flip=true", "train.seed=3"]) == [("augment.flip", True), ("train.seed", 3)]
    assert parse_assignments(None) == []
    with pytest.raises(ConfigError) as info:
        parse_assignment("train.lr")
    assert str(info.value) == ("override 'train.lr' is not key=value; it must look like section.key=value "
                               "(e.g. train.lr=3e-4)")
    with pytest.raises(ConfigError) as info:
        parse_assignment("=frozen", "--set", "KEY=VALUE (e.g. --set finetune=frozen)")
    assert str(info.value) == ("--set '=frozen' is not key=value; it must look like KEY=VALUE "
                               "(e.g. --set finetune=frozen)")
