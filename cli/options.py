"""Typer options made from a stage's options model, so a command cannot forget one.

`@model_options("roads", RoadLoading, prefix="road-")` replaces a command's parameter
`roads: RoadLoading` by one CLI option per model field (`--road-layer`, `--road-name-field`,
…), with the field's description as help; the command receives the validated model.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer
from pydantic import BaseModel, ValidationError

from streetaudit.flows.errors import InputError


def _cli_type(annotation: Any) -> Any:
    """The type typer parses: lists are given comma-separated and pairs as WIDTHxHEIGHT (the
    model's validators read the text), optionals as their inner type."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    inner = args[0] if args and type(None) in typing.get_args(annotation) else annotation
    if typing.get_origin(inner) in (list, tuple):
        return str
    return inner


def _cli_default(value: Any) -> Any:
    """A list default as the text that means it (`0,90,180,270`), a pair as `1024x512`."""
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if value else None
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return value


def option_names(
    model: type[BaseModel], *, prefix: str = "", flags: dict[str, tuple[str, ...]] | None = None
):
    """Field -> (python parameter name, CLI flags) for `model` under `prefix`."""
    flags = flags or {}
    names = {}
    for field in model.model_fields:
        dashed = f"--{prefix}{field.replace('_', '-')}"
        names[field] = (f"{prefix.replace('-', '_')}{field}", flags.get(field, (dashed,)))
    return names


def model_options(
    param: str,
    model: type[BaseModel],
    *,
    prefix: str = "",
    argument: str | None = None,
    flags: dict[str, tuple[str, ...]] | None = None,
    help: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
) -> Callable:
    """Expand the command parameter `param` into the options of `model`.

    `argument` names a field taken as the positional argument (required); `flags` gives a
    field other CLI names than `--{prefix}{field}`; `help` overrides a field's description;
    `required` names fields the command cannot run without (optional in the model).
    """
    names = option_names(model, prefix=prefix, flags=flags)
    help = help or {}

    def decorate(command: Callable) -> Callable:
        hints = typing.get_type_hints(command)
        signature = inspect.signature(command)
        generated = []
        for field, info in model.model_fields.items():
            name, decls = names[field]
            text = help.get(field, info.description)
            if field == argument:
                default = typer.Argument(..., help=text, show_default=False, metavar=field.upper())
            elif field in required:
                default = typer.Option(..., *decls, help=text, show_default=False)
            else:
                value = _cli_default(info.get_default(call_default_factory=True))
                default = typer.Option(value, *decls, help=text, show_default=value is not None)
            kind = _cli_type(info.annotation)
            generated.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
            )
        kept = [
            p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.name != param
        ]

        @functools.wraps(command)
        def wrapper(**kwargs: Any):
            values = {field: kwargs.pop(names[field][0]) for field in model.model_fields}
            try:
                kwargs[param] = model.model_validate(values)
            except ValidationError as error:
                first = error.errors()[0]
                field = str(first["loc"][0])
                flag = names[field][1][0] if field != argument else field.upper()
                raise InputError(f"{flag}: {first['msg']} (got {first.get('input')!r})") from None
            return command(**kwargs)

        parameters = kept + generated
        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            parameters, return_annotation=signature.return_annotation
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__  # typer must see the expanded signature, not the original
        return wrapper

    return decorate
