"""One generic name registry with did-you-mean suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; an unknown name raises UnknownNameError naming the closest matches."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(item: T) -> T:
            if name in self._items and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    def unregister(self, name: str) -> T:
        """Remove `name` (UnknownNameError if it is not registered); returns what it held."""
        self.get(name)
        return self._items.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = self.suggest(name)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        return f"unknown {self.kind} {name!r}: {hint}known: {', '.join(self.names())}"

    def one_of(self, name: str | None = None, quote: bool = True) -> str:
        """How a "must be ..." sentence about this kind ends: "one of 'a', 'b', 'c'", then the names
        closest to `name` ("(did you mean 'b'?)") when it is given and something is close."""
        known = ", ".join(repr(k) if quote else k for k in self.names())
        close = self.suggest(name) if isinstance(name, str) else []
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        return f"one of {known}{hint}"

    def suggest(self, name: str, n: int = 3) -> list[str]:
        lowered = {k.lower(): k for k in self._items}
        hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
        prefix = [k for k in self._items if k.lower().startswith(name.lower()) and k.lower() not in hits]
        return [lowered[h] for h in hits] + prefix[: max(0, n - len(hits))]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(k, self._items[k]) for k in self.names()]

