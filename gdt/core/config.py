"""Config overrides, one parser for every entry point.

- `parse_arg`: the `:k=v,k2=v2` suffix of `--config=experiments/configs/x.py:k=v,...` (big_vision style), typed by
  the config file's declared defaults;
- `apply_overrides`: `dotted.key=value` overrides of a built config (`launch/`'s `--set`), typed by the field.
Both convert a value with `convert_value`, so `x=yes` means the same everywhere.
"""

from __future__ import annotations

from typing import Any, Iterable

import ml_collections

TRUE = ("true", "1", "yes")
FALSE = ("false", "0", "no")


def convert_value(key: str, text: str, default: Any):
  """`text` converted to the type of `default` (bool: true/false/yes/no/1/0; tuple/list: comma-separated items of
  the first element's type, or str); ValueError naming `key` when it does not parse."""
  text = text.strip()
  try:
    if isinstance(default, bool):
      if text.lower() not in TRUE + FALSE:
        raise ValueError(text)
      return text.lower() in TRUE
    if isinstance(default, int):
      return int(text)
    if isinstance(default, float):
      return float(text)
    if isinstance(default, (tuple, list)):
      items = [s for s in (p.strip() for p in text.split(",")) if s]
      item_default = default[0] if default else ""
      return type(default)(convert_value(key, s, item_default) for s in items)
  except ValueError:
    kind = "bool (true/false/yes/no/1/0)" if isinstance(default, bool) else type(default).__name__
    raise ValueError(f"config value {key}={text!r} is not a {kind}") from None
  if default is not None and not isinstance(default, str):
    raise ValueError(f"config field {key!r} holds a {type(default).__name__}; it cannot be set from text")
  return text


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses the `:k=v,k2=v2` suffix of a config path into a ConfigDict of `defaults`' keys and types.

  A bare word `w` (no `=`) sets the boolean default named `w` to True. Unknown keys and values that do
  not parse as the default's type raise ValueError naming the key.
  """
  out = ml_collections.ConfigDict(dict(defaults))
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; expected one of {sorted(defaults)}")
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise ValueError(f"config argument {key!r} needs a value ({key}=...)")
      out[key] = True
      continue
    out[key] = convert_value(key, value, default)
  return out


def apply_overrides(config, overrides: Iterable[str]):
  """`a.b=value` -> config.a.b = value converted to the existing field's type (unknown keys raise); in place."""
  for item in overrides:
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"override {item!r} is not dotted.key=value")
    *path, leaf = key.strip().split(".")
    node = config
    for part in path:
      if part not in node:
        raise ValueError(f"override {item!r}: config has no field {key!r}")
      node = node[part]
    if leaf not in node:
      raise ValueError(f"override {item!r}: config has no field {key!r}")
    node[leaf] = convert_value(key, value, node[leaf])
  return config
