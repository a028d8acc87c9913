"""What an entry point does with hostile input: config fields checked against rules declared beside their defaults,
and the project's own errors reported as one `error: ...` line (the traceback behind --debug).

- `Field` / `check_fields`: a config's table of field rules (experiments/configs/gdt_base.py, data.py) applied to a
  built config: unknown fields, missing fields, types and ranges, each refusal naming the dotted field. Registry names
  and rules spanning fields are checked by the validators that own them (`gdt.train.validate_config`,
  `gdt.data.generation.validate_config`).
- `run(main)`: `absl.app.run` with `--debug`; a ValueError, KeyError, file error or busy workdir prints one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import sys
from typing import Any, Callable, Mapping

from absl import app, flags, logging


@dataclasses.dataclass(frozen=True)
class Field:
  """The rule of one config field: its type (int excludes bool; float accepts ints and refuses nan/inf; tuple
  accepts a list), bounds for numbers (ge/gt/le/lt), `none` to allow None, `items` the type of a tuple's items,
  `nonempty` to refuse '' or (), `choices` the values allowed."""
  kind: type
  ge: float | None = None
  gt: float | None = None
  le: float | None = None
  lt: float | None = None
  none: bool = False
  items: type | None = None
  nonempty: bool = False
  choices: tuple | None = None

  def describe(self) -> str:
    if self.choices is not None:
      return f"one of {', '.join(map(repr, self.choices))}"
    kind = {int: "an int", float: "a finite number", bool: "a bool", str: "a string"}.get(self.kind)
    if self.kind is tuple:
      kind = f"a tuple of {self.items.__name__}" if self.items else "a tuple"
    bounds = [f"{op} {v}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
              if v is not None]
    out = ("a non-empty " + kind.split(" ", 1)[1] if self.nonempty else kind) + (" " + " and ".join(bounds)
                                                                                 if bounds else "")
    return f"None or {out}" if self.none else out

  def accepts(self, value: Any) -> bool:
    if value is None:
      return self.none
    if self.kind is int:
      ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif self.kind is float:
      ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    elif self.kind is tuple:
      ok = isinstance(value, (tuple, list)) and (self.items is None or all(_is(v, self.items) for v in value))
    else:
      ok = _is(value, self.kind)
    if ok and self.nonempty:
      ok = len(value) > 0
    if ok and self.choices is not None:
      ok = value in self.choices
    if ok and self.kind in (int, float):
      ok = ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
    return ok


def _is(value: Any, kind: type) -> bool:
  return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
  """{dotted field: value} of a ConfigDict or nested mapping."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) or hasattr(value, "to_dict"):
      out.update(flatten(value, name + "."))
    else:
      out[name] = value
  return out


def check_fields(config: Any, rules: Mapping[str, Field], defaults: str) -> None:
  """Raises ValueError naming the first unknown, missing or ill-typed/out-of-range field of `config`; `defaults`
  says where the fields are declared (for the message)."""
  values = flatten(config)
  for name in values:
    if name not in rules:
      close = _suggest(name, rules)
      hint = f"; did you mean {' or '.join(close)}?" if close else ""
      raise ValueError(f"config field {name!r} is unknown{hint} (the fields are declared in {defaults})")
  for name, rule in rules.items():
    if name not in values:
      raise ValueError(f"config field {name!r} is missing (its default is in {defaults})")
    if not rule.accepts(values[name]):
      raise ValueError(f"config field {name!r}: must be {rule.describe()}, got {values[name]!r}")


def _suggest(name: str, known) -> list[str]:
  """Known fields `name` may have meant: a sibling it abbreviates (train.lr -> train.learning_rate) or resembles,
  or the same name in another block (learning_rate -> train.learning_rate)."""
  block, _, leaf = name.rpartition(".")
  siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == block}
  initials = [k for s, k in siblings.items() if "".join(w[0] for w in s.split("_") if w) == leaf]
  similar = [siblings[s] for s in difflib.get_close_matches(leaf, list(siblings), n=2, cutoff=0.75)]
  elsewhere = [k for k in known if k.rpartition(".")[2] == leaf]
  return list(dict.fromkeys(initials + similar + elsewhere))[:3]


# ----------------------------------------------------------------------------------------------------------------
# Errors as one line.

DEBUG_HINT = "(rerun with --debug for the traceback)"


def message(error: BaseException) -> str:
  """One line of an error: KeyError's message without repr quotes, newlines folded."""
  text = error.args[0] if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str) else str(error)
  return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


def _fail(text: str) -> None:
  sys.stderr.write(f"error: {text}\n")
  sys.stderr.flush()
  sys.exit(1)


def _debug_requested(argv: list[str]) -> bool:
  return any(a in ("--debug", "--debug=true", "--debug=True", "--debug=1") for a in argv)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing; a bad flag or a config file that raises is one line (the whole message with --debug,
  where ml_collections puts the config file's traceback)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if _debug_requested(argv):
      _fail(str(e))
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    traced = any(line.startswith("Traceback") for line in lines)
    _fail(f"{lines[0]} {lines[-1]} {DEBUG_HINT}" if traced and len(lines) > 1 else " ".join(lines))


def errors() -> tuple[type[BaseException], ...]:
  """The project's own refusals: their messages name the field, file or workdir. Anything else keeps its traceback."""
  from gdt.core.checkpoint import CorruptCheckpointError  # here, so a config file importing `Field` does not import jax
  from gdt.core.workdir import WorkdirBusy
  return (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
          PermissionError, WorkdirBusy, FloatingPointError, CorruptCheckpointError)


def _guarded(main: Callable[[list[str]], Any], argv: list[str]) -> Any:
  try:
    from gdt.core import distributed  # here: importing this module must not import jax (config files use Field)
    f = flags.FLAGS
    if not f["verbosity"].present:  # orbax logs every save and restore at INFO; our own progress lines say enough
      logging.set_verbosity(logging.WARNING)
    distributed.initialize(f.multihost, coordinator_address=f.coordinator_address, num_processes=f.num_processes,
                           process_id=f.process_id)
    return main(argv)
  except errors() as e:
    if flags.FLAGS.debug:
      raise
    _fail(f"{message(e)} {DEBUG_HINT}")


def run(main: Callable[[list[str]], Any]) -> None:
  """`absl.app.run(main)` where the project's errors (`errors()`) print `error: <message>` on one line and exit 1;
  `--debug` re-raises them with their traceback."""
  if "debug" not in flags.FLAGS:
    flags.DEFINE_bool("debug", False, "raise errors with their traceback instead of printing one line")
    # Multi-host (gdt.core.distributed): explicit coordinator flags, else SLURM / TPU VM detection under 'auto'.
    flags.DEFINE_enum("multihost", "auto", ["auto", "on", "off"], "initialise jax.distributed: auto = when flags, "
                      "$JAX_COORDINATOR_ADDRESS, SLURM (>1 task) or a multi-worker TPU VM say so")
    flags.DEFINE_string("coordinator_address", None, "multi-host: host:port of process 0's coordinator")
    flags.DEFINE_integer("num_processes", None, "multi-host: number of processes")
    flags.DEFINE_integer("process_id", None, "multi-host: this process's index in [0, num_processes)")
  app.run(functools.partial(_guarded, main), flags_parser=_parse_flags)
