"""Keras-shaped callbacks, driven by a real tiny Trainer (LeNet-5 on scikit-learn's 8x8 digits, a few
hundredths of a second per epoch) or, for the pure decision logic, by chosen logs."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from run_helpers import same_weights

from cnnlab.config import TrainConfig
from cnnlab.engine.callbacks import (
    CALLBACKS,
    AtLeastOne,
    Callback,
    CallbackOptions,
    CallbackSetting,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
)
from cnnlab.engine.trainer import Trainer
from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.runfolder import METRIC_COLUMNS, RunFolder


def make_trainer(callbacks=(), **train) -> Trainer:
    torch.manual_seed(0)
    built = create_model("lenet5", 10, 1, (8, 8), channels_last=True)
    config = TrainConfig(**{"epochs": 3, "threads": 1, "batch_size": 128, **train})
    return Trainer(built.module, built.transform, config, callbacks=callbacks)


class Inject(Callback):
    """Adds a chosen 'score' per epoch to the logs (placed first, so the callbacks after it see it)."""

    def __init__(self, scores):
        self.scores = scores

    def on_epoch_end(self, epoch, logs):
        logs["score"] = self.scores[epoch - 1]


class Snapshots(Callback):
    """The weights at the end of every epoch."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, epoch, logs):
        self.weights[epoch] = self.trainer.weights(copy=True)


def feed(callback, trainer, key, values):
    """Call on_epoch_end with chosen values; returns the epoch the trainer was told to stop at (or None)."""
    callback.set_trainer(trainer)
    for epoch, value in enumerate(values, 1):
        callback.on_epoch_end(epoch, {key: value})
        if trainer.stop_training:
            return epoch
    return None


# ---- EarlyStopping -----------------------------------------------------------------------------------


def test_early_stopping_waits_patience_epochs_without_improvement():
    values = [0.5, 0.6, 0.6, 0.55, 0.59, 0.7]
    assert feed(EarlyStopping("val_acc", patience=3), make_trainer(), "val_acc", values) == 5
    assert feed(EarlyStopping("val_acc", patience=4), make_trainer(), "val_acc", values) is None
    stopper = EarlyStopping("val_acc", patience=1)
    trainer = make_trainer()
    assert feed(stopper, trainer, "val_acc", values) == 3  # equal is not an improvement
    assert trainer.stop_training and stopper.tracker.best_epoch == 2
    assert "val_acc has not improved for 1 epochs (best 0.6000 at epoch 2)" in trainer.stop_reason


def test_early_stopping_min_delta():
    values = [0.5, 0.505, 0.509, 0.52, 0.53]
    assert feed(EarlyStopping("val_acc", patience=2, min_delta=0.01), make_trainer(), "val_acc", values) == 3
    assert feed(EarlyStopping("val_acc", patience=2), make_trainer(), "val_acc", values) is None


@pytest.mark.parametrize("monitor, mode, values, stops_at", [
    ("val_loss", "auto", [1.0, 0.9, 0.8, 0.7], None),  # auto: a loss is minimised
    ("val_loss", "auto", [1.0, 1.1, 1.2, 1.3], 3),
    ("val_acc", "auto", [0.1, 0.2, 0.3, 0.4], None),  # auto: an accuracy is maximised
    ("val_acc", "auto", [0.4, 0.3, 0.2, 0.1], 3),
    ("val_loss", "max", [1.0, 1.1, 1.2, 1.3], None),
    ("val_acc", "min", [0.4, 0.3, 0.2, 0.1], None),
    ("val_acc", "min", [0.1, 0.2, 0.3, 0.4], 3),
])
def test_early_stopping_mode(monitor, mode, values, stops_at):
    assert feed(EarlyStopping(monitor, mode=mode, patience=2), make_trainer(), monitor, values) == stops_at


def test_nan_is_never_an_improvement():
    assert feed(EarlyStopping("val_loss", patience=2), make_trainer(), "val_loss", [1.0, math.nan, math.nan]) == 3


def test_monitoring_a_missing_key_names_the_logged_ones(digits):
    train, val = digits
    trainer = make_trainer([EarlyStopping("val_accuracy")], epochs=1)
    with pytest.raises(ConfigError, match="cannot monitor 'val_accuracy'.*val_acc"):
        trainer.fit(train, val)


@pytest.mark.parametrize("patience, stops_at", [(10, None), (2, 4)])
def test_restore_best_weights_puts_back_the_best_epochs_weights(digits, patience, stops_at):
    train, val = digits
    snapshots = Snapshots()
    stopper = EarlyStopping("score", mode="max", patience=patience, restore_best_weights=True)
    trainer = make_trainer([Inject([0.1, 0.9, 0.3, 0.2, 0.1]), snapshots, stopper], epochs=5)
    trainer.fit(train, val)
    assert trainer.stop_training == (stops_at is not None)
    last = trainer.epoch
    assert last == (stops_at or 5)
    assert not same_weights(snapshots.weights[2], snapshots.weights[last])  # so the test can fail
    assert same_weights(trainer.weights(), snapshots.weights[2])


def test_without_restore_the_last_weights_stay(digits):
    train, val = digits
    snapshots = Snapshots()
    trainer = make_trainer([Inject([0.1, 0.9, 0.3]), snapshots, EarlyStopping("score", mode="max", patience=5)])
    trainer.fit(train, val)
    assert same_weights(trainer.weights(), snapshots.weights[3])


# ---- ReduceLROnPlateau -------------------------------------------------------------------------------


def _epoch_lrs(digits, scores, **options) -> list[float]:
    train, val = digits
    trainer = make_trainer([Inject(scores), ReduceLROnPlateau("score", mode="min", **options)],
                           epochs=len(scores), lr=1e-3)
    return [row["lr"] for row in trainer.fit(train, val)]


def test_reduce_lr_on_plateau_changes_the_trainers_lr_from_the_next_epoch(digits):
    lrs = _epoch_lrs(digits, [1.0] * 7, factor=0.5, patience=2)
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4], rel=1e-9)


def test_reduce_lr_on_plateau_resets_on_improvement(digits):
    lrs = _epoch_lrs(digits, [1.0, 1.0, 0.5, 0.5, 0.5, 0.5], factor=0.5, patience=2)
    assert lrs == pytest.approx([1e-3] * 5 + [5e-4], rel=1e-9)  # epoch 3 improved: the wait starts again


def test_reduce_lr_on_plateau_cooldown(digits):
    # Keras' semantics: after a reduction `cooldown` epochs reset the wait (the last of them counts again)
    lrs = _epoch_lrs(digits, [1.0] * 7, factor=0.5, patience=2, cooldown=2)
    assert lrs == pytest.approx([1e-3] * 3 + [5e-4] * 3 + [2.5e-4], rel=1e-9)  # without: reduced after 3 and 5


def test_reduce_lr_on_plateau_stops_at_min_lr(digits):
    lrs = _epoch_lrs(digits, [1.0] * 8, factor=0.1, patience=1, min_lr=5e-5)
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 5e-5, 5e-5, 5e-5, 5e-5, 5e-5], rel=1e-9)


def test_reduce_lr_on_plateau_min_delta():
    trainer = make_trainer()
    reducer = ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=0.1)
    feed(reducer, trainer, "val_loss", [1.0, 0.95])  # less than min_delta better: a plateau
    assert trainer.lr_scale == 0.5
    trainer = make_trainer()
    feed(ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=0.01), trainer, "val_loss", [1.0, 0.95])
    assert trainer.lr_scale == 1.0


# ---- ModelCheckpoint ---------------------------------------------------------------------------------


def test_model_checkpoint_saves_best_only_on_improvement_and_last_every_epoch(digits):
    train, val = digits
    best, calls, snapshots = [], [], Snapshots()

    def save_best(weights, epoch):
        calls.append(("best", epoch))
        best.append((epoch, {k: v.clone() for k, v in weights.items()}))

    checkpoint = ModelCheckpoint(save_best=save_best, save_last=lambda epoch: calls.append(("last", epoch)),
                                 monitor="score", mode="max")
    trainer = make_trainer([Inject([0.2, 0.5, 0.4, 0.6, 0.6]), snapshots, checkpoint], epochs=5)
    trainer.fit(train, val)
    assert calls == [("best", 1), ("last", 1), ("best", 2), ("last", 2), ("last", 3), ("best", 4), ("last", 4),
                     ("last", 5)]
    assert checkpoint.best_epoch == 4
    for epoch, weights in best:
        assert same_weights(weights, snapshots.weights[epoch])


def test_model_checkpoint_defaults_to_validation_accuracy(digits):
    train, val = digits
    checkpoint = ModelCheckpoint(save_best=lambda weights, epoch: None)
    trainer = make_trainer([checkpoint], epochs=4)
    history = trainer.fit(train, val)
    accs = [row["val_acc"] for row in history]
    assert checkpoint.best_epoch == accs.index(max(accs)) + 1


# ---- CSVLogger and TensorBoard -------------------------------------------------------------------------


def test_csv_logger_writes_one_row_per_epoch_equal_to_the_history(digits, tmp_path):
    train, val = digits
    folder = RunFolder(tmp_path)
    trainer = make_trainer([CSVLogger(folder.append_metrics)])
    history = trainer.fit(train, val)
    rows = folder.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows == [{k: h[k] for k in METRIC_COLUMNS} for h in history]
    assert all(set(h) == set(METRIC_COLUMNS) for h in history)


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_writes_events_that_tensorboard_reads_back(digits, tmp_path):
    train, val = digits
    trainer = make_trainer([TensorBoard(tmp_path / "tb")])
    history = trainer.fit(train, val)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    scalars = _scalars(tmp_path / "tb")
    assert set(scalars) == {"loss/train_loss", "loss/val_loss", "accuracy/train_acc", "accuracy/val_acc",
                            "train/lr", "train/seconds", "train/images_per_s"}
    for tag, points in scalars.items():
        key = tag.split("/")[1]
        assert [step for step, _ in points] == [1, 2, 3]
        assert [v for _, v in points] == pytest.approx([h[key] for h in history], rel=1e-6)


def test_tensorboard_skips_values_that_are_not_finite(digits, tmp_path):
    train, _ = digits
    trainer = make_trainer([TensorBoard(tmp_path / "tb")], epochs=2)
    history = trainer.fit(train)  # no validation: val_loss and val_acc are NaN
    assert math.isnan(history[0]["val_loss"])
    scalars = _scalars(tmp_path / "tb")
    assert "loss/train_loss" in scalars and "loss/val_loss" not in scalars and "accuracy/val_acc" not in scalars


# ---- user callbacks ------------------------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self):
        self.events, self.batches = [], []

    def on_train_begin(self, logs):
        self.events.append(("train_begin", dict(logs)))

    def on_epoch_begin(self, epoch, logs):
        self.events.append(("epoch_begin", epoch, dict(logs)))

    def on_batch_end(self, batch, logs):
        self.batches.append((batch, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.events.append(("epoch_end", epoch))

    def on_train_end(self, logs):
        self.events.append(("train_end", dict(logs)))


def test_user_callbacks_see_every_hook_and_the_running_batch_logs(digits):
    train, val = digits
    recorder = Recorder()
    trainer = make_trainer([recorder], epochs=2)
    trainer.sync_every = 0.0  # read the running loss after every step
    history = trainer.fit(train, val)
    steps = math.ceil(len(train[1]) / 128)
    assert recorder.events == [("train_begin", {"initial_epoch": 0, "steps": steps}),
                               ("epoch_begin", 1, {"steps": steps}), ("epoch_end", 1),
                               ("epoch_begin", 2, {"steps": steps}), ("epoch_end", 2),
                               ("train_end", {"epoch": 2})]
    assert [b for b, _ in recorder.batches] == list(range(1, steps + 1)) * 2
    for batch, logs in recorder.batches:
        assert set(logs) == {"loss", "acc", "images_per_s"}
        assert math.isfinite(logs["loss"]) and 0 <= logs["acc"] <= 1 and logs["images_per_s"] > 0
    # the running values of an epoch's last batch are the epoch's training loss and accuracy
    assert recorder.batches[steps - 1][1]["loss"] == history[0]["train_loss"]
    assert recorder.batches[-1][1]["acc"] == history[1]["train_acc"]


def test_a_callback_can_stop_training(digits):
    train, val = digits

    class StopAt2(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.trainer.stop_training = True

    trainer = make_trainer([StopAt2()], epochs=5)
    assert [row["epoch"] for row in trainer.fit(train, val)] == [1, 2]


# ---- invalid parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make, fragment", [
    (lambda: EarlyStopping(patience=0), "'patience' parameter of EarlyStopping must be >= 1. Got 0"),
    (lambda: EarlyStopping(mode="bigger"), "'mode' parameter of EarlyStopping must be 'min', 'max' or 'auto'. "
                                           "Got 'bigger'"),
    (lambda: EarlyStopping(min_delta=-0.1), "'min_delta' parameter of EarlyStopping must be >= 0. Got -0.1"),
    (lambda: EarlyStopping(patience=1.5), "'patience' parameter of EarlyStopping must be a valid integer"),
    (lambda: ReduceLROnPlateau(factor=1.0), "'factor' parameter of ReduceLROnPlateau must be in (0, 1). Got 1.0"),
    (lambda: ReduceLROnPlateau(factor=0), "must be in (0, 1). Got 0"),
    (lambda: ReduceLROnPlateau(patience=0), "'patience' parameter of ReduceLROnPlateau must be >= 1"),
    (lambda: ReduceLROnPlateau(cooldown=-1), "'cooldown' parameter of ReduceLROnPlateau must be >= 0"),
    (lambda: ReduceLROnPlateau(min_lr=-1e-3), "'min_lr' parameter of ReduceLROnPlateau must be >= 0"),
    (lambda: ModelCheckpoint(mode="up"), "'mode' parameter of ModelCheckpoint must be"),
])
def test_invalid_parameters_are_config_errors(make, fragment):
    with pytest.raises(ConfigError) as info:
        make()
    assert fragment in str(info.value)



def test_every_invalid_parameter_message_is_the_one_template():
    with pytest.raises(ConfigError) as info:
        ReduceLROnPlateau(min_lr=-1e-3)
    assert str(info.value) == "The 'min_lr' parameter of ReduceLROnPlateau must be >= 0. Got -0.001 instead."


# ---- configurable callbacks ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CALLBACKS.names())
def test_a_registered_callbacks_options_are_its_constructors_parameters_with_the_same_defaults(name):
    callback = CALLBACKS.get(name)
    parameters = {p.name: p.default for p in inspect.signature(callback.__init__).parameters.values()
                  if p.name != "self"}
    assert {k: f.default for k, f in callback.Options.model_fields.items()} == parameters


def test_the_defaults_of_the_configurable_callbacks():
    assert EarlyStopping.Options().model_dump() == {
        "monitor": "val_acc", "mode": "auto", "patience": 5, "min_delta": 0.0, "restore_best_weights": False}
    assert ReduceLROnPlateau.Options().model_dump() == {
        "monitor": "val_loss", "mode": "auto", "factor": 0.1, "patience": 3, "min_delta": 1e-4, "cooldown": 0,
        "min_lr": 0.0}


def test_a_setting_builds_its_callback_with_its_options():
    reducer = CallbackSetting.of("reduce_lr_on_plateau", {"patience": 2, "factor": 0.5, "cooldown": 1}).build()
    assert isinstance(reducer, ReduceLROnPlateau)
    assert (reducer.patience, reducer.factor, reducer.cooldown, reducer.min_lr) == (2, 0.5, 1, 0.0)
    assert (reducer.tracker.monitor, reducer.tracker.mode) == ("val_loss", "min")
    stopper = CallbackSetting.of("early_stopping", {"monitor": "val_loss", "restore_best_weights": True}).build()
    assert (stopper.tracker.mode, stopper.patience, stopper.restore_best_weights) == ("min", 5, True)


def test_a_new_callback_is_one_class_and_its_registration(digits):
    train, val = digits

    class StopAfter(Callback):
        class Options(CallbackOptions):
            epochs: AtLeastOne = 1

        def __init__(self, epochs: int = 1):
            self.epochs = epochs

        def on_epoch_end(self, epoch, logs):
            self.trainer.stop_training = epoch >= self.epochs

    CALLBACKS.register("stop_after_test", StopAfter)
    try:
        from cnnlab.config import build_config

        config = build_config(overrides=["train.callbacks=[{name: stop_after_test, epochs: 2}]", "train.epochs=5",
                                         "train.threads=1"])
        callbacks = [setting.build() for setting in config.train.configured_callbacks()]
        assert [type(c) for c in callbacks] == [StopAfter] and callbacks[0].epochs == 2
        assert len(make_trainer(callbacks, epochs=5).fit(train, val)) == 2
    finally:
        CALLBACKS.unregister("stop_after_test")
