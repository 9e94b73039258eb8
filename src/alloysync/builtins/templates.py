"""Templates for `data.render` and `mail.send`: Jinja2's sandbox, with bounded output.

A template sees `input` (the previous step's result), `job` (`title`, `item_id`, `run_id`, `kind`,
`scheduled_at`) and `now` (the time, as Alloy writes it). Besides Jinja's own filters it has
`csv` (a list of values → one CSV line, quoted where needed) and `date` (an ISO date-time →
`date('%d %b %Y')`, default `%Y-%m-%d`).

Safety, on top of Jinja2's `ImmutableSandboxedEnvironment` (no attribute starting with `_`, no
Python internals, no changing data, no imports — there is no loader, so `include`, `import` and
`extends` have nothing to load):
  - any attribute or key starting with `_` is refused when the record is read (the record is
    Invalid) and again while rendering, with a message saying so, instead of rendering as empty;
  - the output, and every value made while rendering (a concatenation, a filter's or a call's
    result, `*` on text or lists), is held to ALLOYSYNC_BUILTIN_RENDER_MAX_CHARS; numbers passed as
    widths or counts larger than that, huge powers and huge format widths are refused before they
    are computed;
  - loops are bounded by the data and by the sandbox's `range` (100,000); the task's time limit
    stops a template that loops too long.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from alloysync.builtins.common import BuiltinError
from alloysync.model.context import RunContext
from alloysync.model.registry import ParamsError
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime, utc_now

_MAX_EXPONENT = 1024
_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string
_FORMAT_METHODS = ("format", "format_map")
_WIDTH_CALLS = ("center", "ljust", "rjust", "zfill", "expandtabs", "range")  # numbers that size a result
_WIDTH_FILTERS = ("center", "indent", "truncate", "wordwrap", "batch", "slice")


_PASSED = (Context, nodes.EvalContext, ImmutableSandboxedEnvironment)  # what Jinja passes filters first


class TemplateRefused(BuiltinError):
    """A template tried something the sandbox does not allow (the message says what)."""


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `~` (concatenation) checked against the size limit."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every built-in template renders in (see the module docstring)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, max_chars: int) -> None:
        super().__init__(autoescape=False, keep_trailing_newline=True)
        self.max_chars = max_chars
        self.globals.pop("lipsum", None)
        filters: dict[str, Callable[..., Any]] = {**self.filters, "csv": _csv_line, "date": _date}
        self.filters = {name: self._bounded_filter(name, function) for name, function in filters.items()}

    # --- the checks ---------------------------------------------------------------------------

    def check_size(self, value: Any, what: str) -> Any:
        if isinstance(value, str | list | tuple | dict) and len(value) > self.max_chars:
            raise TemplateRefused(
                f"the template made {what} of {len(value)} characters or entries; the limit is "
                f"{self.max_chars} (ALLOYSYNC_BUILTIN_RENDER_MAX_CHARS)"
            )
        return value

    def _check_numbers(self, arguments: Iterable[Any], what: str) -> None:
        for argument in arguments:
            if (
                isinstance(argument, int)
                and not isinstance(argument, bool)
                and abs(argument) > self.max_chars
            ):
                raise TemplateRefused(
                    f"the template passed {argument} to {what}; numbers used as widths or counts may not "
                    f"exceed {self.max_chars} (ALLOYSYNC_BUILTIN_RENDER_MAX_CHARS)"
                )

    def _check_format(self, text: Any, what: str) -> None:
        if isinstance(text, str) and _WIDTH.search(text):
            raise TemplateRefused(f"the template's {what} asks for a width or precision of a million or more")

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise TemplateRefused(
            f"the template may not use {attribute!r} of a {type(obj).__name__}: attributes starting with "
            "'_' and Python's internals are off limits in templates"
        )

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        return str(self.check_size("".join(str(part) for part in parts), "a text with ~"))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "a function")
        bound_to = getattr(
            getattr(__obj, "__wrapped__", __obj), "__self__", None
        )  # the sandbox wraps str.format
        if name in _FORMAT_METHODS and isinstance(bound_to, str):
            __self._check_format(bound_to, f"{name}()")
        elif name in _WIDTH_CALLS:
            __self._check_numbers([*args, *kwargs.values()], f"{name}()")
        result = super().call(__context, __obj, *args, **kwargs)
        return __self.check_size(result, f"the result of {name}()")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
                if repeated and len(sequence) * count > self.max_chars:
                    raise TemplateRefused(
                        f"the template repeats a value {count} times: over the limit of "
                        f"{self.max_chars} characters (ALLOYSYNC_BUILTIN_RENDER_MAX_CHARS)"
                    )
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise TemplateRefused(
                    f"the template raises a number to the power {right}: at most {_MAX_EXPONENT}"
                )
        elif operator == "%" and isinstance(left, str):
            self._check_format(left, "% formatting")
        result = super().call_binop(context, operator, left, right)
        return self.check_size(result, f"the result of {operator!r}")

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)  # keeps Jinja's pass_context / pass_environment marks
        def bounded(*args: Any, **kwargs: Any) -> Any:
            values = [argument for argument in args if not isinstance(argument, _PASSED)]
            if name == "format" and values:
                self._check_format(values[0], "format filter")
            elif name in _WIDTH_FILTERS:
                self._check_numbers([*values[1:], *kwargs.values()], f"the {name} filter")
            return self.check_size(function(*args, **kwargs), f"the result of the {name} filter")

        return bounded

    # --- compiling and rendering --------------------------------------------------------------

    def compile_checked(self, source: Any, option: str) -> Any:
        """The template `source`, or ParamsError naming the option (bad syntax, `_` names)."""
        if not isinstance(source, str):
            raise ParamsError(f"option {option!r} must be a template text")
        try:
            tree = self.parse(source)
        except TemplateSyntaxError as error:
            raise ParamsError(f"option {option!r}: line {error.lineno}: {error.message}") from None
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            name = node.attr if isinstance(node, nodes.Getattr) else _constant(getattr(node, "arg", None))
            if isinstance(name, str) and name.startswith("_"):
                raise ParamsError(
                    f"option {option!r}: line {node.lineno}: {name!r} is off limits: attributes starting "
                    "with '_' and Python's internals cannot be used in templates"
                )
        return self.from_string(tree)

    def render_bounded(self, source: str, variables: Mapping[str, Any], option: str) -> str:
        """Render `source` with `variables`, at most `max_chars` characters."""
        template = self.compile_checked(source, option)
        parts: list[str] = []
        size = 0
        try:
            for chunk in template.generate(**variables):
                size += len(chunk)
                if size > self.max_chars:
                    raise TemplateRefused(
                        f"the rendered text is longer than {self.max_chars} characters "
                        "(ALLOYSYNC_BUILTIN_RENDER_MAX_CHARS)"
                    )
                parts.append(chunk)
        except TemplateRefused as refused:
            raise TemplateRefused(f"option {option!r}: {refused}") from None
        except SecurityError as error:
            raise TemplateRefused(f"option {option!r}: {error}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as error:
            raise BuiltinError(
                f"option {option!r}: the template failed: {type(error).__name__}: {error}"
            ) from None
        return "".join(parts)


def template_variables(previous: Any, ctx: RunContext) -> dict[str, Any]:
    job = {
        "title": ctx.job_title,
        "item_id": ctx.item_id,
        "run_id": ctx.run_id,
        "kind": ctx.kind,
        "scheduled_at": format_alloy_datetime(ctx.scheduled_at) if ctx.scheduled_at else None,
    }
    return {"input": previous, "job": job, "now": format_alloy_datetime(utc_now())}


def _constant(node: nodes.Node | None) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


def _csv_line(values: Any) -> str:
    """`row | csv`: the values as one CSV line (no line end)."""
    if not isinstance(values, list | tuple):
        values = [values]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


def _date(value: Any, format: str = "%Y-%m-%d") -> Any:
    """`text | date('%d %b %Y')`: an ISO date-time formatted (anything else unchanged)."""
    if not isinstance(value, str):
        return value
    try:
        return parse_alloy_datetime(value).strftime(format)
    except ValueError:
        return value
