"""The task registry: the only code a job record can make run.

A task is a sync or async function registered under a stable dotted name with `@task`. Job records
name tasks (or a pipeline `a | b | c` of them); they never name an import path, module or command.
Which modules register tasks is a setting (`ALLOYSYNC_TASK_MODULES`); importing them is the only
way code gets into the registry.

Parameters of the first step come from the record's Params (a JSON object) and are checked against
the function's signature and type annotations before anything runs. A later step of a pipeline is
called with the previous step's result in its first parameter, plus the options Params gives that
step (`{"steps": [...]}`, see model/params.py). A parameter annotated `RunContext` receives the
run's context and is never an option.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, get_type_hints

from pydantic import TypeAdapter, ValidationError

from alloysync.model.context import is_context_annotation

if TYPE_CHECKING:
    from alloysync.settings import Settings

TASK_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")
QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
DEFAULT_QUEUE = "default"

F = TypeVar("F", bound=Callable[..., Any])


class TaskDefinitionError(Exception):
    """A task was registered wrongly (bad name, duplicate, unsupported signature)."""


class TaskModuleError(Exception):
    """A module named in ALLOYSYNC_TASK_MODULES could not be imported."""


class ParamsError(ValueError):
    """Params do not fit the task's signature; the message says which parameter and why."""


OptionsCheck = Callable[[Mapping[str, Any], "Settings"], None]
"""A task's own check of its options beyond their types (allow-lists, shapes), run when a record is
validated: raises `ParamsError` (or `ValueError`) with a message naming the option."""

_ABSENT = object()  # stands for the previous step's result and the context while checking a binding
BINDINGS_KEPT = 256  # sets of option names whose binding a task remembers


@dataclass(frozen=True)
class RegisteredTask:
    """A registered task function and its run options."""

    name: str
    function: Callable[..., Any]
    queue: str
    max_retries: int | None
    time_limit: float | None
    description: str
    signature: inspect.Signature = field(repr=False)
    type_hints: Mapping[str, Any] = field(repr=False)
    context_parameter: str | None = None  # the parameter annotated RunContext, if any
    check: OptionsCheck | None = field(default=None, repr=False)
    example: Mapping[str, Any] | None = None  # example options, for `alloysync tasks`
    # What binding a set of option names gives (the error, or None), and each parameter's
    # validator: a page of records mostly passes the same names to the same task.
    _bindings: dict[tuple[frozenset[str], bool], str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _adapters: dict[str, TypeAdapter[Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    @property
    def input_parameter(self) -> str | None:
        """The parameter a later pipeline step receives the previous result in: the first one that
        is not the context (None when there is none)."""
        for parameter in self.signature.parameters.values():
            if parameter.name != self.context_parameter and parameter.kind in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                return parameter.name
        return None

    def check_params(
        self, params: Mapping[str, Any], *, follows: bool = False, settings: Settings | None = None
    ) -> None:
        """Raise ParamsError unless `params` can be passed as keyword arguments (after the previous
        step's result when `follows`), fit their annotations, and pass the task's own check."""
        if self.context_parameter is not None and self.context_parameter in params:
            raise ParamsError(
                f"{self.name}: parameter {self.context_parameter!r} is the run's context, not an option"
            )
        if follows:
            if self.input_parameter is None:
                raise ParamsError(f"{self.name} cannot follow another step: it takes no input parameter")
            if self.input_parameter in params:
                raise ParamsError(
                    f"{self.name}: parameter {self.input_parameter!r} is the previous step's result, "
                    "not an option"
                )
        binding_error = self._binding_error(frozenset(params), follows)
        if binding_error is not None:
            raise ParamsError(f"{self.name}: {binding_error}")
        for name, value in params.items():
            parameter = self.signature.parameters.get(name)
            if parameter is None or parameter.kind is inspect.Parameter.VAR_KEYWORD:
                continue  # taken by the task's **kwargs
            adapter = self._adapter(name)
            if adapter is None:
                continue
            try:
                adapter.validate_python(value, strict=False)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in (name, *first["loc"]))
                raise ParamsError(f"{self.name}: parameter {where}: {first['msg']}") from None
        if self.check is not None and settings is not None:
            try:
                self.check(params, settings)
            except ParamsError as error:
                raise ParamsError(f"{self.name}: {error}") from None
            except ValueError as error:
                raise ParamsError(f"{self.name}: {error}") from None

    def _binding_error(self, names: frozenset[str], follows: bool) -> str | None:
        """Why options named `names` (after the previous step's result when `follows`) cannot be
        passed to the task, or None; remembered per set of names (at most BINDINGS_KEPT)."""
        key = (names, follows)
        if key in self._bindings:
            return self._bindings[key]
        bound: dict[str, Any] = dict.fromkeys(names, _ABSENT)
        if follows and self.input_parameter is not None:
            bound[self.input_parameter] = _ABSENT
        if self.context_parameter is not None:
            bound[self.context_parameter] = _ABSENT
        error: str | None = None
        try:
            self.signature.bind(**bound)
        except TypeError as type_error:
            error = str(type_error)
        if len(self._bindings) >= BINDINGS_KEPT:
            self._bindings.clear()
        self._bindings[key] = error
        return error

    def _adapter(self, name: str) -> TypeAdapter[Any] | None:
        """The validator of parameter `name`'s annotation (None when it has none)."""
        if name not in self._adapters:
            annotation = self.type_hints.get(name)
            if annotation is None:
                return None
            self._adapters[name] = TypeAdapter(annotation)
        return self._adapters[name]

    def check_accepts_input(self) -> None:
        """Raise ParamsError unless the task can be a later pipeline step on the previous step's
        result alone (no options of its own)."""
        try:
            self.check_params({}, follows=True)
        except ParamsError:
            raise ParamsError(
                f"{self.name} cannot follow another step: a later pipeline step must accept the "
                "previous step's result as its only required positional argument"
            ) from None

    def arguments(
        self, previous: Any, options: Mapping[str, Any], context: Any, *, follows: bool
    ) -> dict[str, Any]:
        """The keyword arguments of a call: the options, the previous step's result (when `follows`)
        and the run's context (when the task asks for it)."""
        arguments = dict(options)
        if follows and self.input_parameter is not None:
            arguments[self.input_parameter] = previous
        if self.context_parameter is not None:
            arguments[self.context_parameter] = context
        return arguments

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task in this thread (an async task gets an event loop of its own)."""
        if self.is_async:
            return asyncio.run(self.function(*args, **kwargs))
        return self.function(*args, **kwargs)

    def parameters_text(self) -> str:
        parts = []
        for parameter in self.signature.parameters.values():
            text = parameter.name
            annotation = self.type_hints.get(parameter.name)
            if annotation is not None:
                text += f": {_annotation_text(annotation)}"
            if parameter.default is not inspect.Parameter.empty:
                text += f" = {parameter.default!r}"
            parts.append(text)
        return ", ".join(parts)


class TaskRegistry:
    """Name → RegisteredTask."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def register(
        self,
        function: Callable[..., Any],
        name: str,
        *,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        time_limit: float | None = None,
        check: OptionsCheck | None = None,
        example: Mapping[str, Any] | None = None,
    ) -> RegisteredTask:
        if not TASK_NAME.match(name):
            raise TaskDefinitionError(
                f"task name {name!r} must be dotted lowercase words such as 'coinrequest.get_btc_prices'"
            )
        if not QUEUE_NAME.match(queue):
            raise TaskDefinitionError(f"queue name {queue!r} must be lowercase letters, digits, '-' or '_'")
        existing = self._tasks.get(name)
        if existing is not None and existing.function is not function:
            raise TaskDefinitionError(f"task {name!r} is registered twice")
        signature = inspect.signature(function)
        if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
            raise TaskDefinitionError(f"task {name!r}: *args is not supported, name the parameters")
        type_hints = _type_hints(function, name)
        contexts = [p for p, annotation in type_hints.items() if is_context_annotation(annotation)]
        if len(contexts) > 1:
            raise TaskDefinitionError(f"task {name!r}: only one parameter may be annotated RunContext")
        registered = RegisteredTask(
            name=name,
            function=function,
            queue=queue,
            max_retries=max_retries,
            time_limit=time_limit,
            description=inspect.getdoc(function) or "",
            signature=signature,
            type_hints=type_hints,
            context_parameter=contexts[0] if contexts else None,
            check=check,
            example=example,
        )
        self._tasks[name] = registered
        return registered

    def get(self, name: str) -> RegisteredTask | None:
        return self._tasks.get(name)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def all(self) -> list[RegisteredTask]:
        return [self._tasks[name] for name in self.names()]

    def queues(self) -> set[str]:
        return {registered.queue for registered in self._tasks.values()} | {DEFAULT_QUEUE}

    def digest(self) -> str:
        """A digest of the task names and signatures: when it changes (a deploy added, removed or
        changed a task), job records are validated again."""
        described = "\n".join(f"{task.name}({task.parameters_text()})" for task in self.all())
        return hashlib.sha256(described.encode()).hexdigest()[:16]


REGISTRY = TaskRegistry()


class TaskOptions(TypedDict, total=False):
    """The keyword arguments of `@task` after the name; `TaskRegistry.register` has their defaults."""

    queue: str
    max_retries: int | None
    time_limit: float | None
    check: OptionsCheck | None
    example: Mapping[str, Any] | None


def task(name: str, **options: Unpack[TaskOptions]) -> Callable[[F], F]:
    """Register a function as a task under `name`.

    `queue` (default "default") is the Dramatiq queue its runs go to. `max_retries` and `time_limit`
    (seconds) override the deployment defaults (ALLOYSYNC_TASK_MAX_RETRIES,
    ALLOYSYNC_TASK_TIME_LIMIT) for this task. A parameter annotated `RunContext` receives the run's
    context (model/context.py) and is no option. `check` validates the options beyond their types
    when a record is read (see `OptionsCheck`); `example` shows example options in `alloysync tasks`.
    """

    def decorate(function: F) -> F:
        REGISTRY.register(function, name, **options)
        return function

    return decorate


def load_task_modules(modules: list[str], registry: TaskRegistry = REGISTRY) -> TaskRegistry:
    """Import the task modules so their `@task` decorators run; returns the registry."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:
            raise TaskModuleError(
                f"cannot import task module {module!r} (ALLOYSYNC_TASK_MODULES): "
                f"{type(error).__name__}: {error}"
            ) from error
    return registry


def _type_hints(function: Callable[..., Any], name: str) -> dict[str, Any]:
    """The resolved annotations of `function`; a task whose annotations cannot be resolved would
    lose its parameter check, so it is refused at registration."""
    try:
        hints = get_type_hints(function)
    except Exception as error:
        raise TaskDefinitionError(
            f"task {name!r}: its annotations cannot be resolved ({type(error).__name__}: {error}); "
            "import every type the annotations name in the task's module"
        ) from None
    hints.pop("return", None)
    return hints


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
