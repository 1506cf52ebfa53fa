"""Callbacks with the Keras shape: hooks get (epoch, logs); stopping is a flag on the trainer.

`logs` at epoch end holds lr, train_loss, train_acc, val_loss, val_acc, seconds, images_per_s.
A callback that must survive --resume returns its counters from state_dict() and takes them back
in load_state_dict(); the trainer stores them in the checkpoint.

A callback a config can ask for is registered in CALLBACKS under the name the config uses, with its
options as a pydantic model in its `Options` attribute (their defaults those of its constructor):

    @CALLBACKS.register("print_lr")
    class PrintLR(Callback):
        class Options(CallbackOptions):
            every: AtLeastOne = 1

        def __init__(self, every: int = 1): ...

and then `train.callbacks: [{name: print_lr, every: 5}]` builds PrintLR(every=5) for every run.
This module imports neither torch nor rich: the config reads the registry and the option models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SerializeAsAny

from ...registry import Registry
from .options import (
    EPOCH_LOGS,
    FROM_CONFIG,
    AtLeastOne,
    CallbackOptions,
    Mode,
    Monitored,
    NonNegative,
    NonNegativeInt,
    OpenUnitInterval,
    checked_options,
)


class Callback:
    Options: type[CallbackOptions] = CallbackOptions  # what a config may set (nothing, unless a callback says)
    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None:
        """Called every few batches (when the trainer syncs): logs has the running loss and accuracy."""
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


# name in a config -> Callback class (with its Options)
CALLBACKS: Registry[type[Callback]] = Registry("callback")


class CallbackSetting(BaseModel):
    """A registered callback and its validated options, as a config asks for it."""

    model_config = ConfigDict(frozen=True)
    name: str
    options: SerializeAsAny[CallbackOptions]

    @classmethod
    def of(cls, name: str, options: dict, context: dict | None = None) -> CallbackSetting:
        """`options` validated by the callback's own model (a pydantic ValidationError names the bad option;
        `context`: FROM_CONFIG for options a config gives); an unknown `name` raises UnknownNameError."""
        return cls(name=name, options=CALLBACKS.get(name).Options.model_validate(options, context=context))

    def build(self) -> Callback:
        return CALLBACKS.get(self.name)(**self.options.model_dump())


from .csv_logger import CSVLogger  # noqa: E402  (the callbacks build on the base above)
from .early_stopping import EarlyStopping  # noqa: E402
from .history import History  # noqa: E402
from .model_checkpoint import ModelCheckpoint  # noqa: E402
from .monitor import Monitor  # noqa: E402
from .progress import ProgressPrinter  # noqa: E402
from .reduce_lr_on_plateau import ReduceLROnPlateau  # noqa: E402
from .tensorboard import TensorBoard  # noqa: E402

__all__ = [
    "CALLBACKS", "EPOCH_LOGS", "FROM_CONFIG", "AtLeastOne", "CSVLogger", "Callback", "CallbackOptions",
    "CallbackSetting", "EarlyStopping", "History", "Mode", "ModelCheckpoint", "Monitor", "Monitored", "NonNegative",
    "NonNegativeInt", "OpenUnitInterval",
    "ProgressPrinter", "ReduceLROnPlateau", "TensorBoard", "checked_options",
]
