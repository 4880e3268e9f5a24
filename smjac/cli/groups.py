"""Option groups as decorators: a dataclass whose fields are typer options, spliced into a command.

Several commands take the same options: the layer (``-W``, ``-x``, ``--layer``, …), the loss
(``--target``, ``--reduce``, …) and the output (``--format``, ``-o``, …). Each group is declared once,
as a dataclass whose fields carry their ``Annotated[..., typer.Option(...)]`` and default; a command
names the group once, as one parameter typed with it, and :func:`group` replaces that parameter by
the fields (typer reads ``__signature__`` and ``__annotations__``), then hands the command the
packed dataclass. sqlite-utils does the same with click decorators (``@load_extension_option``).

>>> import dataclasses, inspect, typer
>>> @dataclasses.dataclass(frozen=True)
... class Size:
...     width: Annotated[int, typer.Option(help="Columns.")] = 80
...     height: Annotated[int, typer.Option(help="Rows.")] = 24
>>> @group(Size, fixed={"height": 40})
... def show(name: str, size: Size) -> str:
...     return f"{name} {size.width}×{size.height}"
>>> list(inspect.signature(show).parameters)
['name', 'width']
>>> show(name="term", width=100)
'term 100×40'
"""

import collections
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from copy import copy
from typing import Annotated, Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A group's fields' annotations, resolved once: a group is spliced into several commands
    (a string annotation is evaluated here, where it names an ``Annotated[..., typer.Option(...)]``)."""
    return {k: v for c in reversed(cls.__mro__) for k, v in inspect.get_annotations(c, eval_str=True).items()}


def group(
    cls: type,
    *,
    omit: Iterable[str] = (),
    fixed: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    types: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """A decorator: the command's parameter typed ``cls`` becomes ``cls``'s fields, as options.

    Parameters
    ----------
    cls
        A dataclass; each field's annotation is ``Annotated[type, typer.Option(...)]`` and its
        default is the option's.
    omit
        Fields this command does not offer: they keep the dataclass's default.
    fixed
        Fields this command does not offer, with the value it uses instead.
    defaults
        Another default for a field, shown in the help.
    types
        Another annotation for a field (a ``--format`` whose choices depend on the command).
    helps
        Another help text for a field, where the option means something particular here.
    """
    fixed = dict(fixed or {})
    hidden = set(omit) | set(fixed)
    hints = _hints(cls)
    shown = [f for f in dataclasses.fields(cls) if f.name not in hidden]
    unknown = (hidden | set(defaults or ()) | set(types or ()) | set(helps or ())) - set(hints)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")

    def parameter(field: dataclasses.Field[Any]) -> inspect.Parameter:
        annotation = (types or {}).get(field.name, hints[field.name])
        if field.name in (helps or {}):
            base, info, *more = typing.get_args(annotation)
            info = copy(info)
            info.help = (helps or {})[field.name]
            annotation = Annotated[(base, info, *more)]
        default = (defaults or {}).get(field.name, field.default)
        return inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
        )

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        # Not typing.get_type_hints: before Python 3.11 it wraps an annotation whose default is None
        # in Optional[...], which hides the Annotated option from typer (--rtol lost its check).
        annotations = inspect.get_annotations(command, eval_str=True)
        typed = [p for p in signature.parameters if annotations.get(p) is cls]
        if len(typed) != 1:
            raise TypeError(f"{command.__name__} has no parameter typed {cls.__name__}")
        name = typed[0]
        params: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            if p.name == name:
                params += [parameter(f) for f in shown]
            else:
                annotation = annotations.get(p.name, p.annotation)
                if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.annotation is not annotation:
                    p = p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
                params.append(p)  # a group spliced in before is kept as it is
        names = collections.Counter(p.name for p in params)
        clash = {name for name, count in names.items() if count > 1}
        if clash:
            raise TypeError(f"{command.__name__}: {', '.join(sorted(clash))} given twice")

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in shown}
            kwargs[name] = cls(**values, **fixed)
            return command(**kwargs)

        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        if "return" in annotations:
            wrapper.__annotations__["return"] = annotations["return"]
        return typing.cast(F, wrapper)

    return decorate
