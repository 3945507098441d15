"""Command-line options generated from a configuration dataclass: one option per field.

A command built this way cannot drift from the Python API: each field of the dataclass (e.g.
:class:`~hwcompress.search.SearchConfig`) becomes ``--field-name`` with the field's type, the
help text of its docstring entry and its default, and the values given on the command line
are handed to the dataclass unchanged in meaning. Errors the dataclass raises name fields
(:class:`~hwcompress.errors.ConfigError`); :func:`flag_names` turns them back into the flags.

Per-field adjustments (another flag name, a short flag, a parser for a list given as text, a
repeatable option) are :class:`OptionSpec` entries; a field with none gets the defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from hwcompress.errors import ConfigError

__all__ = [
    "OptionSpec",
    "config_values",
    "dataclass_options",
    "field_docs",
    "flag_names",
    "option_name",
]


@dataclass(frozen=True)
class OptionSpec:
    """How one field appears on the command line.

    Attributes:
        flag: The option's name without dashes (default: the field's, ``_`` as ``-``).
        short: A one-letter alias, e.g. ``"-p"``.
        parse: Reads the option's text into the field's value (default for tuple fields:
            comma-separated items of the tuple's element type).
        repeatable: The option may be given several times (a tuple field), each value one
            item.
        help: Replaces the help text taken from the dataclass docstring.
        metavar: The value's placeholder in the help.
    """

    flag: str | None = None
    short: str | None = None
    parse: Callable[[str], Any] | None = None
    repeatable: bool = False
    help: str | None = None
    metavar: str | None = None


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description from the Google-style ``Attributes:`` section of ``cls``.

    Returns:
        Field name → its description on one line, reST literals as plain text.
    """
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Attributes:\s*$(.*?)(?=^\S|\Z)", doc, re.M | re.S)
    if not match:
        return {}
    docs: dict[str, str] = {}
    name = None
    for line in match.group(1).splitlines():
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
        if entry:
            name = entry.group(1)
            docs[name] = entry.group(2).strip()
        elif name and line.strip():
            docs[name] += " " + line.strip()
    return {k: v.replace("``", "") for k, v in docs.items()}


def option_name(name: str) -> str:
    """``--name-with-dashes`` for a field or keyword ``name_with_underscores``."""
    return "--" + name.replace("_", "-")


def flag_names(cls: type, specs: Mapping[str, OptionSpec]) -> dict[str, str]:
    """Each field's option, e.g. ``{"seed_ratios": "--seeds"}``."""
    return {
        f.name: option_name(specs.get(f.name, OptionSpec()).flag or f.name)
        for f in dataclasses.fields(cls)
    }


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple | list):
        return ",".join(_show(v) for v in value)
    return str(value)


def _unwrap(hint: Any) -> Any:
    """A field's type hint without ``| None`` (``int | None`` → ``int``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _item_type(hint: Any) -> Any:
    """The element type of ``tuple[X, ...]``, or None for any other hint."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _comma_list(item: Any, field: str) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(item(x.strip()) for x in text.split(",") if x.strip())
        except ValueError:
            raise ConfigError(
                f"{{{field}}}: cannot read {text!r} as comma-separated {item.__name__} values"
            ) from None

    return parse


def dataclass_options(
    cls: type, specs: Mapping[str, OptionSpec] | None = None
) -> list[inspect.Parameter]:
    """One Typer option per field of ``cls``, as the parameters of a command's signature.

    Every option defaults to None ("not given"), so a command passes on only what the user
    set and the dataclass keeps its own defaults (shown in the help). Fields without a
    default are required options.

    Args:
        cls: A dataclass whose fields are ``bool``, ``int``, ``float``, ``str`` (optionally
            ``| None``) or ``tuple[X, ...]`` of those.
        specs: Per-field adjustments.

    Returns:
        Keyword-only parameters named like the fields, annotated for Typer.

    Raises:
        TypeError: On a field type the command line cannot carry.
    """
    import typer

    specs = specs or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    flags = flag_names(cls, specs)
    params = []
    for f in dataclasses.fields(cls):
        spec = specs.get(f.name, OptionSpec())
        hint = _unwrap(hints[f.name])
        item = _item_type(hint)
        if spec.repeatable:
            kind: Any = list[str]
        elif item is not None or spec.parse is not None:
            kind = str
        elif hint in (bool, int, float, str):
            kind = hint
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for {hint!r}")
        text = spec.help or docs.get(f.name, "")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        shows_default = "(default:" in text
        unset = f.default is None or f.default is False or f.default in ((), "")
        if not (required or shows_default or unset):
            text = f"{text.rstrip('.')} (default: {_show(f.default)})."
        if item is not None and not spec.repeatable and spec.parse is None:
            text += " Comma-separated."
        flag = flags[f.name]
        if kind is bool:  # a switch both ways: --download / --no-download
            flag = f"{flag}/--no-{flag[2:]}"
        decls = [flag] + ([spec.short] if spec.short else [])
        option = typer.Option(*decls, help=text, metavar=spec.metavar, show_default=False)
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if required else None,
                annotation=Annotated[kind if required else kind | None, option],
            )
        )
    return params


def config_values(
    cls: type, given: Mapping[str, Any], specs: Mapping[str, OptionSpec] | None = None
) -> dict[str, Any]:
    """The fields of ``cls`` set on the command line, read into the fields' types.

    Args:
        cls: The dataclass the options were generated from.
        given: The command's keyword arguments (None: not given).
        specs: The same adjustments as for :func:`dataclass_options`.

    Returns:
        Field name → value, for the fields given.
    """
    specs = specs or {}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = given.get(f.name)
        if value is None:
            continue
        spec = specs.get(f.name, OptionSpec())
        item = _item_type(_unwrap(hints[f.name]))
        if spec.repeatable:
            parse = spec.parse or (item or str)
            value = tuple(parse(v) for v in value)
        elif spec.parse is not None:
            value = spec.parse(value)
        elif item is not None:
            value = _comma_list(item, f.name)(value)
        values[f.name] = value
    return values
