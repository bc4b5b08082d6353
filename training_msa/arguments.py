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


def own_fields(config_class: type) -> list[dataclasses.Field]:
    """The fields `config_class` adds over `PreTrainedConfig` (every field of a plain dataclass)."""
    base = {f.name for f in dataclasses.fields(PreTrainedConfig)} if issubclass(config_class, PreTrainedConfig) else set()
    return [f for f in dataclasses.fields(config_class) if f.name not in base]


def field_descriptions(config_class: type, limit: int = 110) -> dict[str, str]:
    """A one-line description per own field, the first sentence of its entry in the class docstring's `Args:`
    section (entries `name: text`, `a / b: text`, `post_*_dropout: text`; continuation lines indented deeper)."""
    import fnmatch
    import inspect
    import re

    entries, current, in_args = [], None, False
    for line in (inspect.getdoc(config_class) or "").splitlines():
        if line.strip() == "Args:":
            in_args = True
        elif in_args and (match := re.match(r"^ {4}(\S[^:]*?):\s*(.*)$", line)):
            current = [match[1], match[2]]
            entries.append(current)
        elif in_args and current is not None and line.strip():
            current[1] += " " + line.strip()
    names, descriptions = [f.name for f in own_fields(config_class)], {}
    for keys, text in entries:
        sentence, depth = text.strip(), 0
        for index, character in enumerate(sentence):  # up to the first "." or ";" outside parentheses
            depth += (character == "(") - (character == ")")
            if depth == 0 and character in ".;" and sentence[index + 1:index + 2] in (" ", ""):
                sentence = sentence[:index]
                break
        if len(sentence) > limit:
            sentence = sentence[:limit].rsplit(" ", 1)[0] + " ..."
        for pattern in re.split(r"\s*/\s*|,\s*", keys):
            for name in fnmatch.filter(names, pattern.strip()):
                descriptions.setdefault(name, sentence)
    return descriptions


def config_arguments(
    config_classes: tuple[type, ...],
    name: str,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    labels: dict[type, str] | None = None,
    choices: dict[str, tuple] | None = None,
    defaults: dict[str, Any] | None = None,
    group: str | None = None,
) -> type:
    """A dataclass with one optional flag (default None = keep the config's default) per own field of each
    config class; a field shared by several classes is one flag. Its help is the field's description
    ([`field_descriptions`]) and the real default of each class
    (`labels` name them, `defaults` replace a class default where the script uses another one), `choices` lists
    allowed values, and `group` is the `--help` section (HfArgumentParser's `_argument_group_name`)."""
    specs, helps, descriptions = {}, {}, {}
    for config_class in config_classes:
        label = (labels or {}).get(config_class, config_class.__name__)
        descriptions = {**field_descriptions(config_class), **descriptions}
        for config_field in own_fields(config_class):
            if config_field.name in skip:
                continue
            default = (defaults or {}).get(config_field.name, config_field.default)
            default = list(default) if isinstance(default, tuple) else default
            helps.setdefault(config_field.name, []).append(
                f"{label}: {default}" if len(config_classes) > 1 else f"{default}")
            specs.setdefault(config_field.name, _flag_type(config_field.type) | None)
    fields = []
    for field_name, flag_type in specs.items():
        description = descriptions.get(field_name, "")
        description += " " if description.endswith("...") else ". " if description else ""
        metadata = {"help": description + "Default " + "; ".join(helps[field_name])}
        if field_name in (choices or {}):
            metadata["choices"] = list(choices[field_name])
        fields.append((prefix + field_name, flag_type, dataclasses.field(default=None, metadata=metadata)))
    namespace = {"_argument_group_name": group} if group else {}
    return dataclasses.make_dataclass(name, fields, namespace=namespace)


def overrides(arguments: Any, prefix: str = "") -> dict[str, Any]:
    """The flags that were set, with the prefix removed."""
    return {
        f.name[len(prefix):]: getattr(arguments, f.name)
        for f in dataclasses.fields(arguments)
        if f.name.startswith(prefix) and getattr(arguments, f.name) is not None
    }
