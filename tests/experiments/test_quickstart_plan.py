"""The quickstart study's shape, without training: three models x three seeds on the same data and the same
training, small enough for about half a minute of training on two CPU cores, and it passes the checks that
run before a study starts on either dataset it may use."""

from __future__ import annotations

import pytest

from cnnlab.experiments.checks import check_plan
from cnnlab.experiments.plan import StudySpec, plan_study
from cnnlab.experiments.quickstart import PLANS, SEEDS, TRAIN_SETTINGS, quickstart_study

LABELS = ["lenet5", "lenet5-activation_relu-pool_max", "rescnn-widths_8-16-32"]


def _plan(dataset: str):
    return plan_study(StudySpec.model_validate(quickstart_study(dataset)), threads=2)


@pytest.mark.parametrize("dataset", sorted(PLANS))
def test_three_models_by_three_seeds_nine_cells(dataset):
    plan = _plan(dataset)
    assert SEEDS == 3
    rows = [(row.value, row.seed) for row in plan.rows if row.factor == "model"]
    assert rows == [(label, seed) for seed in range(SEEDS) for label in LABELS]
    assert len(plan.cells) == 3 * SEEDS  # LeNet-5 is the base: its row reuses the base cell
    assert [row.cell for row in plan.rows if row.factor == "base"] == \
        [row.cell for row in plan.rows if row.value == "lenet5"]


@pytest.mark.parametrize("dataset", sorted(PLANS))
def test_cells_differ_only_in_model_and_seed(dataset):
    """So the table compares the models and nothing else."""
    plan = _plan(dataset)
    configs = [plan.config(cell) for cell in plan.cells]
    assert len({c.data for c in configs}) == 1
    assert len({c.augment for c in configs}) == 1
    assert len({c.train.model_copy(update={"seed": 0}) for c in configs}) == 1
    assert sorted({c.train.seed for c in configs}) == list(range(SEEDS))
    assert len({c.model for c in configs}) == 3


@pytest.mark.parametrize("dataset", sorted(PLANS))
def test_the_study_passes_its_checks_and_stays_small(dataset):
    plan = _plan(dataset)
    facts = check_plan(plan, need_data=False)
    assert set(facts) == {cell.key for cell in plan.cells}
    epochs = plan.config(plan.cells[0]).train.epochs
    for fact in facts.values():
        assert fact["params"] > 0 and 0 < fact["train_images"] * epochs <= 15_000  # images a cell trains on


def test_train_settings_reach_every_cell(monkeypatch):
    """What the quickstart benchmark uses to turn bf16 off (benchmarks/bench_quickstart.py)."""
    monkeypatch.setitem(TRAIN_SETTINGS, "amp", "off")
    plan = _plan("digits")
    assert {plan.config(cell).train.amp for cell in plan.cells} == {"off"}
    fashion = _plan("fashion-mnist")
    assert {c.train.amp for c in map(fashion.config, fashion.cells)} == {"off"}
    monkeypatch.undo()
    again = _plan("digits")
    assert {again.config(cell).train.amp for cell in again.cells} == {"auto"}
