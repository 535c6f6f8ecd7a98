"""Frozen settings dataclasses as Hydra structured-config schemas, and back from a composed config.

Library code takes frozen dataclasses: settings nothing can change under it. OmegaConf marks the
nodes of a frozen dataclass read-only, so Hydra cannot compose YAML files or command-line
overrides into them (by design, facebookresearch/hydra#724). `schema` therefore makes a mutable
twin with the same fields and types for Hydra's ConfigStore, and `settings` builds the frozen
dataclass from the composed config that twin has already checked (keys and types).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from neuroseg.errors import UsageError

T = TypeVar("T")
# Field metadata: the type a field has in the schema when it cannot be its own. OmegaConf cannot
# add a key to a dict of dataclasses from the command line (`+conditions.new={...}` is refused),
# so such a dict is typed dict[str, Any] there and its entries are checked by `build`.
SCHEMA_TYPE = "schema_type"


@functools.cache
def schema(cls: type) -> type:
    """A mutable dataclass with the fields and types of frozen dataclass `cls` (nested ones too).

    Fields without a default are MISSING: the YAML in conf/ holds every value and its comment.
    """
    hints = typing.get_type_hints(cls)
    specs = []
    for item in dataclasses.fields(cls):
        kind = item.metadata.get(SCHEMA_TYPE) or schema_type(hints[item.name])
        if item.default is not dataclasses.MISSING:
            default = dataclasses.field(default=item.default)
        elif dataclasses.is_dataclass(kind):
            default = dataclasses.field(default_factory=kind)
        else:
            default = dataclasses.field(default=MISSING)
        specs.append((item.name, kind, default))
    twin = dataclasses.make_dataclass(f"{cls.__name__}Schema", specs)
    twin.__module__ = cls.__module__  # where OmegaConf's messages say the type comes from
    return twin


def schema_type(hint: Any) -> Any:
    """`hint` with every dataclass in it replaced by its schema (dict values, Optional too)."""
    if dataclasses.is_dataclass(hint):
        return schema(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        return dict[args[0], schema_type(args[1])]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(schema_type(arg) for arg in args)]  # noqa: UP007
    return hint


def settings(cls: type[T], cfg: DictConfig | Mapping[str, Any]) -> T:
    """The frozen `cls` from the keys of a composed config that it names; others are not read
    (nor resolved). A `???` left unset raises OmegaConf's error naming the key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    return cls(**{name: build(hints[name], to_plain(cfg[name]), name) for name in names})


def to_plain(value: Any) -> Any:
    """A config node as plain dicts and lists, interpolations resolved; leaves as they are."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
    return value


def build(hint: Any, value: Any, key: str) -> Any:
    """`value` (plain dicts and lists) at config `key` as type `hint`, dataclasses field by field.

    A key the dataclass lacks is refused: Hydra lets `+grid.extra=1` through its schema check.
    """
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        names = [f.name for f in dataclasses.fields(hint)]
        unknown, missing = sorted(set(value) - set(names)), [n for n in names if n not in value]
        if unknown:
            raise UsageError(f"{key}.{unknown[0]}: not a setting; choose from {names}")
        if missing:
            raise UsageError(f"{key}: no {missing[0]}; give all of {names}")
        hints = typing.get_type_hints(hint)
        return hint(**{name: build(hints[name], value[name], f"{key}.{name}") for name in names})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        return {name: build(args[1], item, f"{key}.{name}") for name, item in value.items()}
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return build(inner[0], value, key) if len(inner) == 1 else value
    if hint in (bool, int, float, str):
        kinds = (int, float) if hint is float else hint
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, kinds):
            raise UsageError(f"{key}: {value!r} is not a {hint.__name__}")
        return hint(value)
    return value
