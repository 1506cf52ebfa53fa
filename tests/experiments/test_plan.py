"""Study files and their cells (experiments/plan.py): parsing and its one-line errors, cell names and
hashes, a value equal to the base being the base cell, grids, seeds, threads, each cell's config
validated once, and the study's own modules. Nothing here trains; test_checks.py has the checks that
need the dataset and the model."""

from __future__ import annotations

import itertools
import re
import sys

import pytest
from study_helpers import SMALL_BASE, small_plan

from cnnlab.config import RunConfig, TrainConfig, build_config, to_dict
from cnnlab.errors import ConfigError
from cnnlab.experiments.plan import (
    DEFAULT_SEEDS,
    config_key,
    import_user_modules,
    load_study,
    parse_study,
    plan_study,
    value_label,
)
from cnnlab.experiments.study import run_study

CELL_NAME = re.compile(r"^(?P<folder>[^/]+)/seed=(?P<seed>\d+)-(?P<key>[0-9a-f]{8})$")


def rows_of(p, factor: str) -> list[tuple[str, int, str]]:
    return [(r.value, r.seed, r.cell) for r in p.rows if r.factor == factor]


# ---- the study file ------------------------------------------------------------------------------------


def test_parse_study_defaults():
    spec = parse_study({"name": "only-base"})
    assert spec.base == {} and spec.ablate == {} and spec.grid == {} and spec.imports == []
    assert spec.seeds == DEFAULT_SEEDS
    assert spec.seed_list == list(range(DEFAULT_SEEDS))


@pytest.mark.parametrize(("seeds", "expected"), [(1, [0]), (3, [0, 1, 2]), ([0, 3, 7], [0, 3, 7]), ([5], [5])])
def test_seeds_as_a_count_or_a_list(seeds, expected):
    assert parse_study({"name": "s", "seeds": seeds}).seed_list == expected


@pytest.mark.parametrize(("seeds", "fragment"), [
    (0, "must be at least 1"),
    (-2, "must be at least 1"),
    ([], "non-empty list of distinct integers"),
    ([1, 1], "non-empty list of distinct integers"),
    ("five", "seeds"),
    ([1.5], "seeds"),
])
def test_bad_seeds_are_a_config_error_naming_seeds(seeds, fragment):
    with pytest.raises(ConfigError) as info:
        parse_study({"name": "s", "seeds": seeds}, "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: ")
    assert "seeds" in message and fragment in message
    assert "\n" not in message


def test_unknown_study_key_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        parse_study({"name": "s", "abalte": {"train.lr": [0.1]}})
    message = str(info.value)
    assert "unknown study key 'abalte'" in message
    for key in ("name", "base", "ablate", "grid", "seeds", "imports"):
        assert key in message


@pytest.mark.parametrize("section", ["ablate", "grid"])
def test_a_factor_without_values_is_refused(section):
    with pytest.raises(ConfigError, match=r"train\.lr has no values"):
        parse_study({"name": "s", section: {"train.lr": []}})


def test_a_factor_whose_values_are_not_a_list_is_refused():
    with pytest.raises(ConfigError, match=r"ablate\.train\.lr"):
        parse_study({"name": "s", "ablate": {"train.lr": 0.1}})


def test_a_name_that_is_no_folder_name_is_refused():
    with pytest.raises(ConfigError, match="name"):
        parse_study({"name": "my study/../x"})


def test_load_study_reads_yaml_and_names_the_study_after_the_file(tmp_path):
    path = tmp_path / "lr-sweep.yaml"
    path.write_text("base: {data: digits, model: lenet5}\nablate: {train.lr: [0.1, 0.01]}\nseeds: [1, 2]\n")
    spec, folder = load_study(path)
    assert spec.name == "lr-sweep"
    assert spec.ablate == {"train.lr": [0.1, 0.01]} and spec.seed_list == [1, 2]
    assert folder == tmp_path.resolve()
    path.write_text("name: own-name\n")
    assert load_study(path)[0].name == "own-name"


@pytest.mark.parametrize(("text", "fragment"), [
    ("name: [unclosed\n", "not valid YAML"),
    ("a:\n\t- b\n", "not valid YAML"),
    ("", "a study file is a mapping"),
    ("- base\n- ablate\n", "a study file is a mapping"),
    ("just a sentence\n", "a study file is a mapping"),
    ("abalte: {train.lr: [0.1]}\n", "unknown study key 'abalte'"),
    ("seeds: 0\n", "seeds: must be at least 1"),
])
def test_load_study_errors_are_one_line_config_errors_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "\n" not in message


def test_load_study_of_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the study file"):
        load_study(tmp_path / "nope.yaml")


# ---- labels and keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "label"), [
    ("sgd", "sgd"),
    (0.001, "0.001"),
    (1e-5, "1e-05"),
    (1.0, "1.0"),
    (3, "3"),
    (True, "True"),
    (None, "None"),
    ([32, 64], "32-64"),
    ((1, 2), "1-2"),
    ({"name": "lenet5", "activation": "relu"}, "lenet5-activation_relu"),
    ({"name": "rescnn", "widths": [8, 16]}, "rescnn-widths_8-16"),
    ({"train.loss": "focal", "train.focal_gamma": 2}, "loss_focal-focal_gamma_2"),
    ("a/b c", "a_b_c"),
    ("", "_"),
])
def test_value_label(value, label):
    assert value_label(value) == label


def test_value_labels_are_file_name_safe_and_short():
    for value in ("../../etc", "x" * 200, {"name": "a b", "k": "c:d"}, ["α", "β"]):
        label = value_label(value)
        assert re.fullmatch(r"[A-Za-z0-9_.+-]{1,80}", label), label


def test_config_key_is_stable_and_changes_with_the_seed_and_the_threads():
    tree = {"data": "digits", "model": "lenet5", "train": {"seed": 0, "threads": 1}}
    key = config_key(build_config(tree))
    assert re.fullmatch(r"[0-9a-f]{8}", key)
    assert config_key(build_config(tree)) == key
    # the same config written differently (short form, a default spelled out) is the same key
    assert config_key(build_config({"data": {"name": "digits"}, "model": {"name": "lenet5"},
                                    "train": {"threads": 1, "seed": 0, "lr": 1e-3}})) == key
    assert config_key(build_config({**tree, "train": {"seed": 1, "threads": 1}})) != key
    assert config_key(build_config({**tree, "train": {"seed": 0, "threads": 2}})) != key
    assert config_key(build_config({**tree, "train": {"seed": 0, "threads": 1, "lr": 0.01}})) != key


def test_cell_keys_are_the_same_in_two_plannings():
    first = small_plan(ablate={"train.lr": [0.1, 0.01]}, seeds=2)
    second = small_plan(ablate={"train.lr": [0.1, 0.01]}, seeds=2)
    assert [(c.name, c.key) for c in first.cells] == [(c.name, c.key) for c in second.cells]


# ---- cells -----------------------------------------------------------------------------------------------


def test_cells_are_named_factor_value_seed_and_hash():
    p = small_plan(ablate={"train.optimizer": ["sgd"], "model.activation": ["relu"]}, seeds=2)
    names = [c.name for c in p.cells]
    assert len(names) == len(set(names)) == 6  # base, sgd, relu x 2 seeds
    for cell in p.cells:
        match = CELL_NAME.match(cell.name)
        assert match, cell.name
        assert int(match["seed"]) == cell.seed == cell.config["train"]["seed"]
        assert match["key"] == cell.key == config_key(build_config(cell.config))
    folders = [CELL_NAME.match(n)["folder"] for n in names]
    assert folders == ["base", "optimizer=sgd", "activation=relu"] * 2
    sgd = next(c for c in p.cells if c.name.startswith("optimizer=sgd/seed=1-"))
    assert sgd.config["train"]["optimizer"] == "sgd"
    relu = next(c for c in p.cells if c.name.startswith("activation=relu/seed=0-"))
    assert relu.config["model"]["activation"] == "relu"


def test_rows_list_factor_value_seed_in_order():
    p = small_plan(ablate={"train.optimizer": ["sgd", "rmsprop"]}, seeds=[4, 9])
    assert [(r.factor, r.value, r.seed) for r in p.rows] == [
        ("base", "base", 4), ("train.optimizer", "sgd", 4), ("train.optimizer", "rmsprop", 4),
        ("base", "base", 9), ("train.optimizer", "sgd", 9), ("train.optimizer", "rmsprop", 9)]
    names = {c.name for c in p.cells}
    assert all(r.cell in names for r in p.rows)


def test_an_ablation_value_equal_to_the_base_is_the_base_cell():
    # adam is the default optimizer, tanh lenet5's default activation: both are the base
    p = small_plan(ablate={"train.optimizer": ["adam", "sgd"], "model.activation": ["tanh", "relu"]}, seeds=2)
    assert len(p.cells) == 3 * 2
    for seed in (0, 1):
        base = next(c for c in p.cells if c.name.startswith(f"base/seed={seed}-"))
        values = {r.value: r.cell for r in p.rows if r.seed == seed and r.factor != "base"}
        assert values["adam"] == values["tanh"] == base.name  # same folder name, so same key
        assert values["sgd"] != base.name and values["relu"] != base.name
    # the rows still list the base-equal values under their own factor
    assert [v for v, _, _ in rows_of(p, "train.optimizer")] == ["adam", "sgd", "adam", "sgd"]
    assert [v for v, _, _ in rows_of(p, "model.activation")] == ["tanh", "relu", "tanh", "relu"]


def test_a_model_option_spelled_as_its_default_is_the_base_cell():
    p = small_plan(ablate={"model.pool": ["avg", "max"]}, seeds=1)
    (base, maxpool) = p.cells
    assert base.name.startswith("base/")
    assert base.config["model"] == {"name": "lenet5", "activation": "tanh", "pool": "avg"}
    assert maxpool.name.startswith("pool=max/") and maxpool.config["model"]["pool"] == "max"
    assert rows_of(p, "model.pool")[0][2] == base.name


def test_each_cell_keeps_the_config_it_was_validated_into():
    """The plan holds each cell's frozen RunConfig, made once while planning (model defaults written
    out); the cell record holds the same config as a dict, for the manifest."""
    p = small_plan(threads=2, ablate={"model.pool": ["max"]}, seeds=2)
    assert set(p.configs) == {c.key for c in p.cells}
    for cell in p.cells:
        config = p.config(cell)
        assert isinstance(config, RunConfig)
        assert to_dict(config) == cell.config and config == build_config(cell.config)
        assert config_key(config) == cell.key
        assert config.train.threads == 2 and config.train.seed == cell.seed
        assert config.model.model_dump()["activation"] == "tanh"  # lenet5's default, filled in


def test_grid_is_the_cartesian_product_with_readable_labels():
    grid = {"train.lr": [0.1, 0.01], "train.batch_size": [32, 64], "model.pool": ["avg", "max"]}
    p = small_plan(grid=grid, seeds=1)
    grid_rows = rows_of(p, "grid")
    labels = [value for value, _, _ in grid_rows]
    assert labels == [f"lr={value_label(a)},batch_size={b},pool={c}"
                      for a, b, c in itertools.product(*grid.values())]
    assert labels[0] == "lr=0.1,batch_size=32,pool=avg"
    assert len(p.cells) == 1 + 8  # base + every combination (none equals the base)
    for (label, _, cell_name), combo in zip(grid_rows, itertools.product(*grid.values())):
        cell = next(c for c in p.cells if c.name == cell_name)
        assert cell.name.startswith(label + "/seed=0-")
        assert (cell.config["train"]["lr"], cell.config["train"]["batch_size"], cell.config["model"]["pool"]) == combo


def test_a_grid_combination_equal_to_the_base_is_the_base_cell():
    p = small_plan(grid={"train.optimizer": ["adam", "sgd"], "model.pool": ["avg"]}, seeds=1)
    grid_rows = dict((v, c) for v, _, c in rows_of(p, "grid"))
    assert grid_rows["optimizer=adam,pool=avg"].startswith("base/seed=0-")
    assert grid_rows["optimizer=sgd,pool=avg"].startswith("optimizer=sgd,pool=avg/seed=0-")
    assert len(p.cells) == 2


def test_ablate_and_grid_together():
    p = small_plan(ablate={"train.optimizer": ["sgd"]}, grid={"train.lr": [0.1], "model.pool": ["max"]}, seeds=2)
    assert [r.factor for r in p.rows] == ["base", "train.optimizer", "grid"] * 2
    assert len(p.cells) == 6


@pytest.mark.parametrize(("seeds", "expected"), [(3, [0, 1, 2]), ([2, 7], [2, 7])])
def test_seeds_as_count_or_list_give_those_seeds(seeds, expected):
    p = small_plan(ablate={"train.optimizer": ["sgd"]}, seeds=seeds)
    assert sorted({c.seed for c in p.cells}) == expected
    assert sorted({r.seed for r in p.rows}) == expected
    assert len(p.cells) == 2 * len(expected)


def test_the_study_seed_overrides_a_seed_in_the_base():
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "train": {"seed": 99}}, "seeds": [3, 4]})
    assert [c.config["train"]["seed"] for c in plan_study(spec, 1).cells] == [3, 4]


def test_threads_go_into_every_cell_and_change_its_key():
    two = small_plan(threads=2, ablate={"train.lr": [0.1]}, grid={"model.pool": ["max"]}, seeds=2)
    assert two.threads == 2
    assert {c.config["train"]["threads"] for c in two.cells} == {2}
    three = small_plan(threads=3, ablate={"train.lr": [0.1]}, grid={"model.pool": ["max"]}, seeds=2)
    assert {c.config["train"]["threads"] for c in three.cells} == {3}
    assert not {c.key for c in two.cells} & {c.key for c in three.cells}


def test_threads_given_in_the_base_win():
    spec = parse_study({"name": "s", "base": {**SMALL_BASE, "train": {"threads": 4}}, "ablate": {"train.lr": [0.1]}})
    assert {c.config["train"]["threads"] for c in plan_study(spec, 1).cells} == {4}


@pytest.mark.parametrize(("ablate", "cell", "fragment"), [
    ({"train.lr": [0.1, -1]}, "cell train.lr=-1", "'train.lr' setting must be greater than 0"),
    ({"train.optimizer": ["sgd", "adamm"]}, "cell train.optimizer=adamm", "Got 'adamm' instead"),
    ({"train.lrr": [0.1]}, "cell train.lrr=0.1", "unknown config key 'train.lrr'; did you mean train.lr"),
    ({"augment.rotation": [400]}, "cell augment.rotation=400", "'augment.rotation'"),
])
def test_a_typo_in_one_cell_is_a_config_error_naming_the_cell(ablate, cell, fragment):
    with pytest.raises(ConfigError) as info:
        small_plan(ablate=ablate, seeds=2)
    message = str(info.value)
    assert message.startswith(f"study 's', {cell}: ")
    assert fragment in message


def test_a_typo_stops_the_study_before_anything_runs(tmp_path):
    out = tmp_path / "study"
    with pytest.raises(ConfigError, match=r"cell train\.optimizer=adamm"):
        run_study({"name": "s", "base": SMALL_BASE, "ablate": {"train.optimizer": ["sgd", "adamm"]}, "seeds": 2}, out,
                  progress=False)
    assert not out.exists()


def test_a_factor_that_is_no_config_key_is_refused():
    with pytest.raises(ConfigError, match="factor 'lr' must be a dotted config key"):
        small_plan(ablate={"lr": [0.1]})


def test_short_factor_names_that_collide_use_the_full_dotted_key():
    p = small_plan(ablate={"data.name": ["digits"], "model.name": ["rescnn"]}, grid={"train.lr": [0.1]}, seeds=1)
    names = [c.name for c in p.cells]
    assert names[0].startswith("base/")  # data.name=digits is the base
    assert names[1].startswith("model.name=rescnn/seed=0-")
    assert names[2].startswith("lr=0.1/seed=0-")  # lr collides with nothing
    # a collision between an ablation and a grid key counts too
    p = small_plan(ablate={"data.name": ["digits"]}, grid={"model.name": ["rescnn"], "train.lr": [0.1]}, seeds=1)
    assert [v for v, _, _ in rows_of(p, "grid")] == ["model.name=rescnn,lr=0.1"]


def test_a_whole_model_section_as_a_factor():
    p = small_plan(ablate={"model": ["lenet5", {"name": "rescnn", "widths": [8, 16]}, "rescnn"]}, seeds=1)
    rows = rows_of(p, "model")
    assert [v for v, _, _ in rows] == ["lenet5", "rescnn-widths_8-16", "rescnn"]
    cells = {c.name: c for c in p.cells}
    assert rows[0][2].startswith("base/")  # model: lenet5 is the base's model
    small = cells[rows[1][2]]
    assert small.name.startswith("model=rescnn-widths_8-16/seed=0-")
    assert small.config["model"]["name"] == "rescnn" and small.config["model"]["widths"] == [8, 16]
    default = cells[rows[2][2]]
    assert default.name.startswith("model=rescnn/seed=0-") and default.key != small.key
    assert default.config["model"]["widths"] != [8, 16]  # rescnn's own default widths, written out


def test_a_named_factor_whose_values_are_sets_of_changes():
    p = small_plan(ablate={"loss": [{"train.loss": "focal", "train.focal_gamma": 3}, {"train.label_smoothing": 0.1}]},
             seeds=1)
    (_, focal, smooth) = p.cells
    assert focal.name.startswith("loss=loss_focal-focal_gamma_3/")
    assert focal.config["train"]["loss"] == "focal" and focal.config["train"]["focal_gamma"] == 3
    assert smooth.config["train"]["label_smoothing"] == 0.1 and smooth.config["train"]["loss"] == "cross_entropy"


def test_distinct_values_of_one_factor_get_distinct_row_labels():
    """Two different models whose labels agree in their first 80 characters must still be two table
    rows: the tables group a factor's rows by their value label."""
    long = {"name": "rescnn", "widths": [32, 64, 128], "blocks": 2, "dropout": 0.1, "activation": "gelu",
            "batch_norm": True, "pool": "max"}
    p = small_plan(ablate={"model": [{**long, "stem": 32}, {**long, "stem": 16}]}, seeds=1)
    rows = rows_of(p, "model")
    assert rows[0][2] != rows[1][2]  # two different cells...
    assert rows[0][0] != rows[1][0], rows  # ...must not share one label (one table row)


def test_an_empty_train_section_means_the_defaults_and_a_scalar_one_is_a_config_error(tmp_path):
    """`train:` with nothing under it reads as None: the defaults, not a TypeError; `train: 5` is refused."""
    path = tmp_path / "empty-train.yaml"
    path.write_text("base:\n  data: digits\n  model: lenet5\n  train:\nseeds: 1\n")
    spec, _ = load_study(path)
    [cell] = plan_study(spec, 1).cells
    assert cell.config["train"]["epochs"] == TrainConfig().epochs and cell.config["train"]["threads"] == 1
    path.write_text("base:\n  data: digits\n  model: lenet5\n  train: 5\nseeds: 1\n")
    spec, _ = load_study(path)
    with pytest.raises(ConfigError, match="cell base.*'train' setting"):
        plan_study(spec, 1)


def test_train_seed_is_not_a_factor_and_seeds_are_not_booleans():
    with pytest.raises(ConfigError, match="train.seed cannot be a factor"):
        plan_study(parse_study({"name": "s", "base": {"data": "digits"}, "ablate": {"train.seed": [1, 2]}}), 1)
    with pytest.raises(ConfigError, match="seeds.*not true/false"):
        parse_study({"name": "s", "seeds": True})


# ---- the study's own modules -------------------------------------------------------------------------------


def test_import_user_modules_imports_from_the_search_path(tmp_path, forget_imports):
    (tmp_path / "cnnlab_test_flag.py").write_text("IMPORTED = True\n")
    import_user_modules(["cnnlab_test_flag"], [str(tmp_path)])
    assert sys.modules["cnnlab_test_flag"].IMPORTED is True
    assert str(tmp_path) not in sys.path  # loaded by its file path: the folder's other files stay unimportable


def test_a_missing_module_is_a_config_error(tmp_path, forget_imports):
    with pytest.raises(ConfigError) as info:
        import_user_modules(["cnnlab_test_nowhere"], [str(tmp_path)])
    message = str(info.value)
    assert "imports: cannot import 'cnnlab_test_nowhere'" in message
    assert "ModuleNotFoundError" in message and "beside the study file" in message


def test_a_module_that_raises_is_a_config_error_with_its_error(tmp_path, forget_imports):
    (tmp_path / "cnnlab_test_broken.py").write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(ConfigError, match=r"cannot import 'cnnlab_test_broken' \(RuntimeError: no GPU here\)"):
        import_user_modules(["cnnlab_test_broken"], [str(tmp_path)])


def test_a_study_file_imports_modules_beside_it(tmp_path, forget_imports):
    from cnnlab.experiments.study import open_study

    (tmp_path / "cnnlab_test_beside.py").write_text("import os\nLOADED_FROM = os.path.dirname(__file__)\n")
    path = tmp_path / "with-imports.yaml"
    path.write_text("base: {data: digits, model: lenet5}\nimports: [cnnlab_test_beside]\nseeds: 1\n")
    run = open_study(path, tmp_path / "out")
    assert run.search_path == [str(tmp_path.resolve())]
    assert sys.modules["cnnlab_test_beside"].LOADED_FROM == str(tmp_path.resolve())
    assert len(run.plan.cells) == 1
    assert not (tmp_path / "out").exists()  # opening a study writes nothing
