"""One description and one check per parameter, shared by a component, its core, the CLI and the local runner.

Each component keeps its parameters in one frozen dataclass (its *request*, ``request.py`` beside the core):
every field is declared with :func:`param`, which holds its one description, and ``__post_init__`` checks the
values and raises :class:`~kfp_tabular.components.common.errors.ConfigError` naming the field. The component
builds the request first thing, the core takes it, and ``check_parameters`` (CLI, local runner) builds the
same requests from a pipeline's arguments before anything runs. :func:`document` writes the descriptions into
the Args section of a component's or pipeline's docstring, which KFP shows in its UI.

Standard library only: importing it costs nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from typing import Any, Callable

from kfp_tabular.components.common.errors import ConfigError

_HELP = "help"


def param(help: str, default: Any = dataclasses.MISSING) -> Any:
    """Declare a request field with its one description (mutable defaults are copied per instance)."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={_HELP: help})
    return dataclasses.field(default=default, metadata={_HELP: help})


def descriptions(*request_classes: type) -> dict[str, str]:
    """Field name -> description of every field of the request classes (the first class wins a name)."""
    found: dict[str, str] = {}
    for cls in request_classes:
        for field in dataclasses.fields(cls):
            if _HELP in field.metadata:
                found.setdefault(field.name, field.metadata[_HELP])
    return found


def build(request_cls: type, values: dict[str, Any], rename: dict[str, str] | None = None):
    """Build ``request_cls`` from the entries of ``values`` that name its fields (after ``rename``).

    Args:
        request_cls: The request dataclass.
        values: Parameters, e.g. a pipeline run's arguments; entries that are not fields are ignored.
        rename: Name in ``values`` -> field name, for parameters a pipeline names differently.

    Raises:
        ConfigError: A required field is not given, or the request's own check fails (naming the field).
    """
    rename = rename or {}
    fields = [f for f in dataclasses.fields(request_cls) if f.init]
    kwargs = {
        rename.get(key, key): value for key, value in values.items() if rename.get(key, key) in {f.name for f in fields}
    }
    required = dataclasses.MISSING
    missing = [
        f.name for f in fields if f.name not in kwargs and f.default is required and f.default_factory is required
    ]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required, not given")
    try:
        return request_cls(**kwargs)
    except ConfigError as exc:
        # Name the parameter as the caller named it (a pipeline's deploy_action is the deploy step's action).
        field, sep, rest = str(exc).partition(":")
        caller_name = {target: name for name, target in rename.items()}.get(field)
        if sep and caller_name:
            raise ConfigError(f"{caller_name}:{rest}") from exc
        raise


def document(*request_classes: type, rename: dict[str, str] | None = None) -> Callable:
    """Add the description of each parameter the function shares with the requests to its Args (a decorator).

    Apply it below ``@dsl.component``/``@dsl.pipeline`` so KFP reads the completed docstring. Parameters the
    docstring already describes (the artifacts) keep their text.

    Args:
        *request_classes: The request dataclasses whose fields the function's parameters are.
        rename: Function parameter name -> field name, where they differ.
    """
    rename = rename or {}

    def decorate(func: Callable) -> Callable:
        helps = descriptions(*request_classes)
        doc = inspect.cleandoc(func.__doc__ or "")
        lines = doc.splitlines()
        try:
            start = lines.index("Args:")
        except ValueError:
            lines += ["", "Args:"]
            start = len(lines) - 1
        end = start + 1
        while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        described = {m.group(1) for line in lines[start + 1 : end] if (m := re.match(r"    (\w+):", line))}
        added = []
        for name in inspect.signature(func).parameters:
            text = helps.get(rename.get(name, name))
            if text is None or name in described:
                continue
            added += textwrap.wrap(f"{name}: {text}", width=112, initial_indent="    ", subsequent_indent="        ")
        func.__doc__ = "\n".join(lines[:end] + added + lines[end:]) + "\n"
        return func

    return decorate


def check_seed(value: Any, field: str = "seed") -> int:
    """Check a random seed: an integer from 0 to 2**32 - 1 (what numpy and scikit-learn accept)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{field}: expected an integer between 0 and 2**32 - 1, got {value!r}")
    return value
