"""Command-line argument dataclasses built from config dataclasses, so every hyper-parameter is a flag."""

import dataclasses
import types
import typing
from typing import Any

from transformers import PreTrainedConfig


def _flag_type(annotation: Any) -> Any:
    """Map a config annotation (`float | int`, `list[int] | tuple[int, ...]`, ...) to one HfArgumentParser type."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    options = [option for option in options if option is not type(None)]
    for option in options:
        if typing.get_origin(option) in (list, tuple):
            return list[typing.get_args(option)[0]]
    return float if float in options else options[0]


def config_arguments(config_class: type, name: str, prefix: str = "", skip: tuple[str, ...] = ()) -> type:
    """A dataclass with one optional flag (default None = keep the config's default) per field that
    `config_class` adds over `PreTrainedConfig` (or every field of a plain dataclass)."""
    base = {f.name for f in dataclasses.fields(PreTrainedConfig)} if issubclass(config_class, PreTrainedConfig) else set()
    specs = []
    for config_field in dataclasses.fields(config_class):
        if config_field.name in base or config_field.name in skip:
            continue
        default = config_field.default
        default = list(default) if isinstance(default, tuple) else default
        specs.append((
            prefix + config_field.name,
            _flag_type(config_field.type) | None,
            dataclasses.field(default=None, metadata={"help": f"{config_class.__name__}.{config_field.name} (default {default})."}),
        ))
    return dataclasses.make_dataclass(name, specs)


def overrides(arguments: Any, prefix: str = "") -> dict[str, Any]:
    """The flags that were set, with the prefix removed."""
    return {
        f.name[len(prefix):]: getattr(arguments, f.name)
        for f in dataclasses.fields(arguments)
        if f.name.startswith(prefix) and getattr(arguments, f.name) is not None
    }
