"""A bound on what a YAML file may expand to. safe_load builds no objects, but its anchors and aliases
let a few hundred bytes stand for billions of values (or a structure that contains itself), which
would hang whatever walks it next: validation, hashing, JSON."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

MAX_YAML_VALUES = 100_000  # a study with every factor of the reference studies holds a few hundred


def check_yaml_size(tree, path: str | Path, limit: int = MAX_YAML_VALUES) -> None:
    """Raise ConfigError when `tree`, with every alias expanded, holds more than `limit` values."""
    stack, seen = [tree], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > limit:
            raise ConfigError(f"{path}: expands to more than {limit:,} values (YAML anchors and aliases repeated "
                              f"or nested); write the values out, or check that the file is the one you meant")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
