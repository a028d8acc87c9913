"""Config-file helpers: `--config=experiments/configs/x.py:key=value,key2=value2` argument parsing."""

from __future__ import annotations

import ml_collections


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
    out[key] = _convert(key, value.strip(), default)
  return out


def _convert(key: str, value: str, default):
  try:
    if isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(value)
      return value.lower() in ("true", "1")
    if isinstance(default, int):
      return int(value)
    if isinstance(default, float):
      return float(value)
  except ValueError:
    raise ValueError(f"config argument {key}={value!r} is not a {type(default).__name__}") from None
  return value
