"""A sweep's grid: ``--grid key=v1,v2`` and ``-p key=value`` options read against a notebook's
``parameters`` cell, each value checked against the parameter's type (:mod:`hpolab.sweep`
runs the combinations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


from hpolab import notebooks
from hpolab.notebooks import Parameter

# A grid key that is not a parameter may name one value of a list parameter: p -> p_values, dataset -> datasets.
ALIAS_SUFFIXES = ("_values", "s")
# Set by hpolab itself, never by a sweep.
RESERVED = ("results_dir",)


# --- the grid -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One ``--grid`` option: ``key`` as typed, the notebook ``parameter`` it sets and its values.

    With ``wrap`` (``key`` names one element of the list parameter ``parameter``), each
    value is handed to the notebook as a one-element list.
    """

    key: str
    parameter: str
    values: tuple
    wrap: bool = False

    def setting(self, value) -> dict:
        """The notebook parameter this axis sets for one of its values."""
        return {self.parameter: [value] if self.wrap else value}


def split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` at the commas outside brackets and quotes (``[1, 2],[3]`` is two values)."""
    parts, current, depth, quote = [], "", 0, None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return parts


def resolve_key(key: str, declared: dict[str, Parameter], notebook: str) -> tuple[str, bool]:
    """The parameter that grid key ``key`` sets, and whether its values are wrapped in a list.

    A declared parameter sets itself. Otherwise ``key`` may name one element of a
    declared ``list`` parameter called ``<key>_values`` or ``<key>s`` (``p`` -> ``p_values``).
    """
    if key in RESERVED:
        raise ValueError(f"parameter {key!r} is set by hpolab itself")
    if key in declared:
        return key, False
    aliases = [key + suffix for suffix in ALIAS_SUFFIXES
               if key + suffix in declared and declared[key + suffix].type.replace(" ", "") == "list"]
    if len(aliases) == 1:
        return aliases[0], True
    raise ValueError(f"parameter {key!r} is not in {notebook}'s parameters: {sorted(declared)}")


def element_type(default) -> str:
    """The type name of a list default's elements (``float`` for ``[0.1, 1]``), or ``""`` when mixed or empty."""
    kinds = {type(value) for value in default or []} if isinstance(default, (list, tuple)) else set()
    if kinds and kinds <= {int, float} and float in kinds:
        return "float"
    return next(iter(kinds)).__name__ if len(kinds) == 1 and next(iter(kinds)) in (int, float, str) else ""


def parse_axis(spec: str, declared: dict[str, Parameter], notebook: str) -> Axis:
    """Read one ``--grid key=v1,v2`` option, each value checked against the parameter's type."""
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ValueError(f"--grid takes key=value1,value2,..., got {spec!r}")
    parameter, wrap = resolve_key(key, declared, notebook)
    kind = Parameter(key, element_type(declared[parameter].default), None, "") if wrap else declared[parameter]
    values = []
    for piece in split_values(text):
        if not piece:
            raise ValueError(f"--grid {key}: empty value in {text!r}")
        value = normalized(kind, notebooks.coerce(kind, piece))
        if wrap and isinstance(value, (list, tuple, dict)):
            raise ValueError(f"parameter {key} takes one element of {parameter}, got {piece!r}")
        if value not in values:
            values.append(value)
    return Axis(key, parameter, tuple(values), wrap)


def normalized(parameter: Parameter, value):
    """``value`` as the cache key sees it: an int given for a ``float`` parameter becomes a float."""
    if parameter.type.replace(" ", "") == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_fixed(pairs: Iterable[tuple[str, str]], declared: dict[str, Parameter], notebook: str) -> dict:
    """The ``-p key value`` options: parameters every run of the sweep shares."""
    values = {}
    for key, text in pairs:
        if key in RESERVED:
            raise ValueError(f"parameter {key!r} is set by hpolab itself")
        if key not in declared:
            raise ValueError(f"parameter {key!r} is not in {notebook}'s parameters: {sorted(declared)}")
        values[key] = normalized(declared[key], notebooks.coerce(declared[key], text))
    return values
