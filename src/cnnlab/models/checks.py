"""Argument checks for model builders, with one message template for every bad value:
"The 'dropout' parameter of rescnn must be a float in [0, 1). Got 2 instead."
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ConfigError, bad_value


def positive_int(value: object, param: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_value(param, owner, "an int >= 1", value)
    return value


def probability(value: object, param: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise bad_value(param, owner, "a float in [0, 1)", value)
    return float(value)


def one_of(value: object, choices: Iterable[str], param: str, owner: str) -> str:
    choices = list(choices)
    if value not in choices:
        raise bad_value(param, owner, "one of " + ", ".join(repr(c) for c in choices), value)
    return value  # type: ignore[return-value]


def int_list(value: object, param: str, owner: str, length: int | None = None) -> list[int]:
    """An int or a sequence of ints >= 1 (an int is repeated to `length` when given)."""
    if isinstance(value, int) and not isinstance(value, bool) and length is not None:
        value = [value] * length
    want = "an int >= 1 or a list of them" + (f" with {length} entries" if length is not None else "")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise bad_value(param, owner, want, value)
    items = list(value)
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise bad_value(param, owner, want, value)
    if length is not None and len(items) != length:
        raise bad_value(param, owner, want, value)
    return items


def side_pair(value: object, param: str, owner: str) -> tuple[int, int]:
    """An image side: an int or (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    items = list(value) if isinstance(value, (list, tuple)) else []
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise bad_value(param, owner, "an int >= 1 or a (height, width) pair", value)
    return int(items[0]), int(items[1])


def known_options(options: Mapping[str, object], valid: Iterable[str], owner: str) -> None:
    """Reject option names `owner` does not take, naming the ones it does."""
    valid = sorted(set(valid))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        import difflib

        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, valid, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} for {owner}: {', '.join(hints)}; "
            f"valid options: {', '.join(valid)}"
        )
