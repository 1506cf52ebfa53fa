"""The option models of configurable callbacks: one pydantic model per callback, checked the same way
from a config (errors name the key) and from Python (errors name the parameter and the callback)."""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

from ...errors import bad_value


class CallbackOptions(BaseModel):
    """Base of a callback's options: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _must_be(holds, expected: str) -> AfterValidator:
    def check(value):
        if not holds(value):
            raise ValueError(f"must be {expected}")
        return value

    return AfterValidator(check)


AtLeastOne = Annotated[int, _must_be(lambda v: v >= 1, ">= 1")]
NonNegativeInt = Annotated[int, _must_be(lambda v: v >= 0, ">= 0")]
NonNegative = Annotated[float, _must_be(lambda v: v >= 0, ">= 0")]
OpenUnitInterval = Annotated[float, _must_be(lambda v: 0 < v < 1, "in (0, 1)")]
Mode = Literal["min", "max", "auto"]  # auto: max for a metric whose name has 'acc', else min

# What the trainer logs at every epoch end (metrics.csv's columns after `epoch`).
EPOCH_LOGS = ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s")
FROM_CONFIG = {"from_config": True}  # the validation context of options read from a config


def _logged(value: str, info: ValidationInfo) -> str:
    """From a config, a monitored metric must be one the trainer logs, so a typo stops the run before it
    trains; from Python it may be one that another callback adds to the logs."""
    if (info.context or {}).get("from_config") and value not in EPOCH_LOGS:
        close = difflib.get_close_matches(value, EPOCH_LOGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"must be a metric logged every epoch: {', '.join(map(repr, EPOCH_LOGS))}{hint}")
    return value


Monitored = Annotated[str, AfterValidator(_logged)]

Options = TypeVar("Options", bound=BaseModel)


def checked_options(options_type: type[Options], owner: str, **values) -> Options:
    """`values` validated by `options_type`; the first bad one is a ConfigError in the bad-value template."""
    try:
        return options_type(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        expected = error["msg"].removeprefix("Value error, ").removeprefix("must be ").replace("Input should be ", "")
        raise bad_value(str(error["loc"][0]), owner, expected, error.get("input")) from None
