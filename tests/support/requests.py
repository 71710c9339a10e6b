"""Check that a component's parameters are its request's fields: same names, defaults and descriptions."""

from __future__ import annotations

import dataclasses
import inspect


def component_request_differences(component, request_cls) -> list[str]:
    """Return every way the KFP component's parameters differ from the request's fields (empty: none).

    Compared: each field is a parameter of the component function, with the same default (both required, or
    equal defaults), and the compiled component spec carries the field's description.
    """
    signature = inspect.signature(component.python_func).parameters
    inputs = component.component_spec.inputs or {}
    problems = []
    for field in dataclasses.fields(request_cls):
        if field.name not in signature:
            problems.append(f"{field.name}: not a parameter of {component.name}")
            continue
        given = signature[field.name].default
        if field.default is not dataclasses.MISSING:
            expected = field.default
        elif field.default_factory is not dataclasses.MISSING:
            expected = field.default_factory()
        else:
            expected = inspect.Parameter.empty
        if given != expected:
            problems.append(f"{field.name}: the component's default {given!r} is not the request's {expected!r}")
        description = " ".join((inputs[field.name].description or "").split())
        if description != " ".join(field.metadata["help"].split()):
            problems.append(f"{field.name}: the component spec describes it as {description!r}")
    return problems
