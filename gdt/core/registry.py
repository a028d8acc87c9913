"""Name -> constructor registries (envs, features, aggregators, models, observation configs)."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """A named table of constructors; `get` fails with the closest registered names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str, value: T | None = None):
    """`registry.register("x", f)` or `@registry.register("x")` above a definition."""
    if value is not None:
      self._add(name, value)
      return value

    def decorator(fn: T) -> T:
      self._add(name, fn)
      return fn

    return decorator

  def _add(self, name: str, value: T) -> None:
    if name in self._entries:
      raise ValueError(f"{self.kind} {name!r} is registered twice")
    self._entries[name] = value

  def get(self, name: str) -> T:
    try:
      return self._entries[name]
    except KeyError:
      raise KeyError(unknown_name_message(self.kind, name, self._entries)) from None

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self._entries)


def unknown_name_message(kind: str, name: str, known, n: int = 5) -> str:
  """'unknown env 'x'; closest: a, b, c' (or the full list when it is short)."""
  known = sorted(known)
  close = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
  if close:
    hint = "closest registered: " + ", ".join(close)
  elif len(known) <= 20:
    hint = "registered: " + ", ".join(known)
  else:
    hint = f"{len(known)} registered, e.g. " + ", ".join(known[:n])
  return f"unknown {kind} {name!r}; {hint}"

