"""Every study file in configs/studies/ is valid: it plans, and (but for the zoo, whose models the zoo
test builds) every cell passes the checks that run before a study starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.experiments.checks import check_plan
from cnnlab.experiments.plan import load_study, plan_study
from cnnlab.models import MODELS

STUDIES = sorted((Path(__file__).resolve().parents[2] / "configs" / "studies").glob("*.yaml"))
REFERENCE = {"baseline-zoo", "transfer", "optimizer", "activation", "residual-blocks", "lr-coarse", "lr-fine", "batch-size",
             "dropout", "augmentation", "loss", "train-on-split"}


def test_every_reference_study_is_there():
    assert {path.stem for path in STUDIES} == REFERENCE


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_a_ready_made_study_plans_and_passes_its_checks(path):
    spec, _ = load_study(path)
    plan = plan_study(spec, threads=2)
    assert len(plan.rows) > len(spec.seed_list)  # it varies something
    assert len(plan.cells) < len(plan.rows)  # each lists the base's value too, which reuses the base cell
    names = [cell.name for cell in plan.cells]
    assert len(set(names)) == len(names)
    if path.stem == "baseline-zoo":
        assert {value if isinstance(value, str) else value["name"] for value in spec.ablate["model"]} \
            == set(MODELS.names()) - {"efficientnet_lite0"}  # the survey's models, LeNet-5 and ResNet-50 included
        # (EfficientNet-Lite0 is curated as the offline pretrained backbone of the transfer study)
        return
    facts = check_plan(plan, need_data=False)
    assert set(facts) == {cell.key for cell in plan.cells}
    assert all(f["params"] > 0 and f["train_images"] > 0 for f in facts.values())


def test_values_equal_to_the_base_reuse_its_cells():
    spec, _ = load_study(next(p for p in STUDIES if p.stem == "residual-blocks"))
    plan = plan_study(spec, threads=2)
    blocks_one = [row.cell for row in plan.rows if row.factor == "model.blocks" and row.value == "1"]
    base = [row.cell for row in plan.rows if row.factor == "base"]
    assert blocks_one == base  # rescnn's default is one block per stage
    assert len(plan.cells) == 4 * len(spec.seed_list)


@pytest.mark.parametrize("dataset", ["cifar10", "fashion-mnist", "digits"])
def test_the_transfer_quickstart_study_plans_and_passes_its_checks(dataset):
    """Its cells: ImageNet weights frozen (the base), random weights frozen, the last stage fine-tuned."""
    from cnnlab.experiments.plan import StudySpec
    from cnnlab.experiments.quickstart import SEEDS, transfer_quickstart_study

    plan = plan_study(StudySpec.model_validate(transfer_quickstart_study(dataset)), threads=2)
    assert {(row.factor, row.value) for row in plan.rows} == {
        ("base", "base"), ("model.pretrained", "True"), ("model.pretrained", "False"),
        ("model.finetune", "frozen"), ("model.finetune", "last_1")}  # values as file names
    assert len(plan.cells) == 3 * SEEDS  # the base's values reuse its cells
    facts = check_plan(plan, need_data=False)
    assert all(f["params"] > 0 and f["train_images"] > 0 for f in facts.values())
