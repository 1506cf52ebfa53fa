"""Callbacks and registered names set from a run's config, end to end: a real tiny run (LeNet-5 on
scikit-learn's 8x8 digits) whose plateau halves the learning rate in metrics.csv, and a study whose
`imports:` module registers the optimizer and the callback its cells use."""

from __future__ import annotations

import pytest

from cnnlab.config import to_dict
from cnnlab.engine.callbacks import CALLBACKS
from cnnlab.engine.optim import OPTIMIZERS
from cnnlab.experiments.run import train_run

# lr 1e-7 and min_delta 1.0: no epoch after the first improves the validation loss enough, a sure plateau
PLATEAU = {"data": "digits", "model": "lenet5",
           "train": {"epochs": 5, "lr": 1e-7, "threads": 1, "batch_size": 256,
                     "reduce_lr_on_plateau": {"patience": 1, "factor": 0.5, "min_delta": 1.0}}}


def _lrs(result) -> list[float]:
    return [row["lr"] for row in result.folder.read_metrics()]


def test_a_plateau_halves_the_lr_in_metrics_csv(tmp_path):
    result = train_run(PLATEAU, tmp_path / "run", progress=False)
    assert result.summary["status"] == "finished"
    # epoch 1 sets the best, epoch 2 is the plateau: from epoch 3 on the rate halves after each epoch
    assert _lrs(result) == pytest.approx([1e-7, 1e-7, 5e-8, 2.5e-8, 1.25e-8], rel=1e-9)
    saved = result.folder.read_config()["train"]["reduce_lr_on_plateau"]
    assert (saved["patience"], saved["factor"], saved["monitor"]) == (1, 0.5, "val_loss")


def test_the_callbacks_list_does_the_same(tmp_path):
    train = {k: v for k, v in PLATEAU["train"].items() if k != "reduce_lr_on_plateau"}
    config = {**PLATEAU, "train": {**train, "epochs": 3, "callbacks": [
        {"name": "reduce_lr_on_plateau", "patience": 1, "factor": 0.5, "min_delta": 1.0}]}}
    result = train_run(config, tmp_path / "run", progress=False)
    assert _lrs(result) == pytest.approx([1e-7, 1e-7, 5e-8], rel=1e-9)
    assert result.folder.read_config()["train"]["callbacks"][0]["name"] == "reduce_lr_on_plateau"


def test_a_plain_patience_is_the_config_it_always_was(tmp_path):
    config = {**PLATEAU, "train": {**PLATEAU["train"], "epochs": 2, "reduce_lr_on_plateau": 3,
                                   "early_stopping": 2}}
    result = train_run(config, tmp_path / "run", progress=False)
    train = result.folder.read_config()["train"]
    assert (train["reduce_lr_on_plateau"], train["early_stopping"]) == (3, 2) and "callbacks" not in train


MODULE = '''
import torch

from cnnlab.engine.callbacks import CALLBACKS, AtLeastOne, Callback, CallbackOptions
from cnnlab.engine.optim import OPTIMIZERS

OPTIMIZERS.register("asgd_study_test", lambda params, lr, weight_decay, momentum: torch.optim.ASGD(
    params, lr=lr, weight_decay=weight_decay))


@CALLBACKS.register("stop_after_study_test")
class StopAfter(Callback):
    class Options(CallbackOptions):
        epochs: AtLeastOne = 1

    def __init__(self, epochs: int = 1):
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs):
        self.trainer.stop_training = epoch >= self.epochs
'''


def test_a_study_imports_module_registers_what_its_cells_use(tmp_path, forget_imports):
    from cnnlab.experiments.study import open_study

    (tmp_path / "cnnlab_test_registrations.py").write_text(MODULE)
    study = tmp_path / "study.yaml"
    study.write_text("name: registered\nimports: [cnnlab_test_registrations]\nseeds: 1\n"
                     "base: {data: digits, model: lenet5, train: {epochs: 3, threads: 1, optimizer: asgd_study_test,\n"
                     "       callbacks: [{name: stop_after_study_test, epochs: 1}]}}\n")
    try:
        run = open_study(study, tmp_path / "out")
        (cell,) = run.plan.cells
        assert cell.config["train"]["optimizer"] == "asgd_study_test"
        assert cell.config["train"]["callbacks"] == [{"name": "stop_after_study_test", "epochs": 1}]
        result = train_run(cell.config, tmp_path / "run", progress=False)
        assert result.summary["epochs_run"] == 1  # the user's callback stopped it
    finally:
        for registry, name in ((OPTIMIZERS, "asgd_study_test"), (CALLBACKS, "stop_after_study_test")):
            if name in registry:
                registry.unregister(name)


def test_the_saved_config_reads_back_with_its_callback_options(tmp_path):
    from cnnlab.config import build_config

    config = build_config(PLATEAU)
    result = train_run(config, tmp_path / "run", progress=False)
    assert build_config(result.folder.read_config()) == config
    assert to_dict(build_config(result.folder.read_config())) == to_dict(config)
