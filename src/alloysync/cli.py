"""The `alloysync` command line: argument parsing and dispatch to the module that owns each command.

Every command loads settings first; invalid settings print one line per problem and exit 2.
Implementation modules are imported lazily so `alloysync --help` stays fast and so `worker` can
set up its environment before Prometheus or Dramatiq are imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from alloysync import __version__
from alloysync.log import configure_logging, get_logger
from alloysync.model.registry import TaskModuleError, TaskRegistry, load_task_modules
from alloysync.settings import Settings, describe_validation_error, load_settings

EXIT_BAD_SETTINGS = 2
EXIT_NO_TASKS = 2

Handler = Callable[[argparse.Namespace, Settings], int]


class _NoTasks(Exception):
    """A task module failed to import (and that was logged): the command exits with EXIT_NO_TASKS."""


def _start_process(process: str, settings: Settings) -> TaskRegistry:
    """Logging for a long-running process, and its task registry (raises `_NoTasks`, logged, when a
    module fails to import)."""
    configure_logging(settings.log_level, settings.log_format, process=process)
    try:
        return load_task_modules(settings.task_modules_to_load)
    except TaskModuleError as error:
        get_logger(__name__).error("cannot load the task modules", error=str(error))
        raise _NoTasks from None


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    registry = _start_process("serve", settings)
    from alloysync.serve.main import run_serve

    return run_serve(settings, registry)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from alloysync.worker.launch import run_worker

    return run_worker(settings, processes=args.processes, threads=args.threads, queues=args.queues)


def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    registry = _start_process("scheduler", settings)
    from alloysync.scheduler import run_scheduler

    return run_scheduler(settings, registry)


def _emulator(args: argparse.Namespace, settings: Settings) -> int:
    from alloysync.emulator.main import run_emulator

    return run_emulator(
        settings,
        host=args.host,
        port=args.port,
        seed=args.seed,
        state_file=args.state,
        rate_limits=not args.no_rate_limits,
        item_dates=args.item_dates,
    )


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from alloysync.local.demo import run_demo

    return run_demo(settings, once=args.once, timeout=args.timeout)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from alloysync.check import run_check

    return run_check(settings)


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    from alloysync.setup import run_setup

    return run_setup(
        settings, design_name=args.design_name, adopt=args.adopt, dry_run=args.dry_run, env_file=args.env_file
    )


def _tasks(args: argparse.Namespace, settings: Settings) -> int:
    return print_registered_tasks(settings)


def print_registered_tasks(settings: Settings) -> int:
    """`alloysync tasks`: list every registered task with its parameters and options."""
    try:
        registry = load_task_modules(settings.task_modules_to_load)
    except TaskModuleError as error:
        print(f"alloysync: {error}")
        return 1
    if not registry.names():
        print(f"no tasks registered by {', '.join(settings.task_modules_to_load) or '(no modules)'}")
        return 1
    for registered in registry.all():
        summary = registered.description.splitlines()[0] if registered.description else ""
        kind = "async" if registered.is_async else "sync"
        retries = settings.task_max_retries if registered.max_retries is None else registered.max_retries
        limit = settings.task_time_limit if registered.time_limit is None else registered.time_limit
        print(f"{registered.name}({registered.parameters_text()})")
        print(f"    {summary}" if summary else "    (no description)")
        print(f"    queue={registered.queue} {kind} max_retries={retries} time_limit={limit:g}s")
        if registered.example is not None:
            print(f"    example options: {json.dumps(registered.example, ensure_ascii=False)}")
    return 0


@dataclass(frozen=True)
class Option:
    """One option of a command: the flags and keyword arguments of argparse's `add_argument`."""

    flags: tuple[str, ...]
    keywords: dict[str, Any]


def option(*flags: str, **keywords: Any) -> Option:
    return Option(flags, keywords)


@dataclass(frozen=True)
class Command:
    """One `alloysync` command: its name, the handler it runs, its help texts and its options."""

    name: str
    handler: Handler
    help: str  # the line in `alloysync --help`
    description: str  # the text of `alloysync <name> --help`
    options: tuple[Option, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        _serve,
        help="poll Alloy, enqueue runs, write statuses back; serve the webhook, metrics and jobs page",
        description=(
            "Run the web process: it syncs job records from Alloy (polling every ALLOYSYNC_POLL_INTERVAL "
            "seconds and on POST /webhooks/alloy), enqueues runs, writes run outcomes back to Alloy, and "
            "serves /metrics, the active jobs page / and /api/jobs on "
            "ALLOYSYNC_HTTP_HOST:ALLOYSYNC_HTTP_PORT. "
            "Several replicas may run: one holds the poller lease and does the syncing and reporting, "
            "the others stand by and take over within 15 s."
        ),
    ),
    Command(
        "worker",
        _worker,
        help="run a pool of Dramatiq worker processes that execute job runs",
        description=(
            "Run Dramatiq worker processes (processes x threads) that execute runs of registered "
            "tasks. Task modules come from ALLOYSYNC_TASK_MODULES. Worker metrics are served on "
            "ALLOYSYNC_WORKER_METRICS_HOST:ALLOYSYNC_WORKER_METRICS_PORT."
        ),
        options=(
            option(
                "--processes", "-p", type=int, help="worker processes (default: ALLOYSYNC_WORKER_PROCESSES)"
            ),
            option(
                "--threads", "-t", type=int, help="threads per process (default: ALLOYSYNC_WORKER_THREADS)"
            ),
            option(
                "--queues",
                "-Q",
                nargs="+",
                metavar="QUEUE",
                help="consume only these queues (default: all task queues)",
            ),
        ),
    ),
    Command(
        "scheduler",
        _scheduler,
        help="fire cron and run-at jobs (periodiq), exactly once per scheduled time",
        description=(
            "Run the scheduler: it reads cron and run-at schedules that `serve` keeps in Redis, fires "
            "each one at its time in the job's time zone, and applies the missed-runs policy after "
            "downtime. Several schedulers may run; each (job, scheduled time) runs once."
        ),
    ),
    Command(
        "emulator",
        _emulator,
        help="run a local Alloy API emulator (for the demo and tests)",
        description=(
            "Serve a faithful local Alloy: AQS queries; item get/create/edit with signatures, validated "
            "against their design; designs (GET/POST /api/design, POST /api/design/{code}/attribute) "
            "with generated codes and signatures; rate limits with X-Rate-Limit-* headers and 429s; "
            "Alloy's error bodies and categories; fault knobs at /_emulator/faults; and a CoinDesk-shaped "
            "price feed at /v1/bpi/currentprice.json. Like real Alloy, items carry no lastEditDate or "
            "createdDate unless --item-dates is given. Requests must carry "
            "'Authorization: Bearer $ALLOYSYNC_ALLOY_TOKEN'."
        ),
        options=(
            option("--host", default="127.0.0.1", help="address to bind (default: %(default)s)"),
            option("--port", type=int, default=8090, help="port to listen on (default: %(default)s)"),
            option(
                "--seed",
                choices=("demo", "none", "empty"),
                default="demo",
                help=(
                    "initial data: demo = the jobs design under the configured codes (by default "
                    "designs_alloysyncJobs) and the demo jobs; none = that design only; empty = a new tenant "
                    "without designs (create one with `alloysync setup`) (default: %(default)s)"
                ),
            ),
            option(
                "--state",
                metavar="FILE",
                help=(
                    "persist designs and items to this JSON file and reload them on start "
                    "(instead of the seed)"
                ),
            ),
            option(
                "--no-rate-limits",
                action="store_true",
                help="switch Alloy's per-minute rate limits off (benchmarks)",
            ),
            option(
                "--item-dates",
                action="store_true",
                help=(
                    "send items with lastEditDate and createdDate (real Alloy does not; AQS filters "
                    "and sorts by them either way)"
                ),
            ),
        ),
    ),
    Command(
        "demo",
        _demo,
        help="run the whole system on embedded defaults and show the demo jobs running",
        description=(
            "Start everything locally: a private redis-server (unless ALLOYSYNC_REDIS_URL is set), the "
            "emulator with the demo jobs, serve, a worker pool and the scheduler; then show the demo "
            "jobs moving through their statuses. Ctrl-C stops everything it started."
        ),
        options=(
            option(
                "--once",
                action="store_true",
                help="exit when every one-off demo job has reached a final status",
            ),
            option(
                "--timeout",
                type=float,
                default=180.0,
                help="with --once: give up after this many seconds (default: 180)",
            ),
        ),
    ),
    Command(
        "check",
        _check,
        help="validate settings, the jobs design in Alloy, and reach Redis",
        description=(
            "Validate the settings; read the jobs design (ALLOYSYNC_JOBS_DESIGN) and check that each "
            "configured attribute (ALLOYSYNC_ATTRIBUTES__*) is on it with the right type; say which "
            "optional features are off because the design lacks their attribute; query the design "
            "once; reach Redis. One line per problem, naming the setting and the fix; exit 1 on any."
        ),
    ),
    Command(
        "setup",
        _setup,
        help="create (or adopt) the jobs design and its attributes in Alloy; print the settings",
        description=(
            "Create the jobs design and every attribute of the job record in the configured Alloy "
            "(ALLOYSYNC_ALLOY_URL, ALLOYSYNC_ALLOY_TOKEN; the key's user needs a role that can manage "
            "designs), or adopt an existing design and add only the attributes it lacks, then print the "
            "settings with the codes Alloy generated as .env lines (ALLOYSYNC_JOBS_DESIGN=..., "
            "ALLOYSYNC_ATTRIBUTES__<FIELD>=...; never the token). A second run finds the design (by "
            "ALLOYSYNC_JOBS_DESIGN or by name), creates nothing and prints the same lines. Progress goes "
            "to stderr."
        ),
        options=(
            option(
                "--design-name",
                default="alloysync jobs",
                metavar="NAME",
                help="the name of the jobs design to create or find (default: %(default)s)",
            ),
            option(
                "--adopt",
                metavar="DESIGN_CODE",
                help="use this existing design: map its attributes by name, create only the missing ones",
            ),
            option(
                "--dry-run",
                action="store_true",
                help="list (on stderr) what would be created; create nothing",
            ),
            option(
                "--env-file",
                metavar="PATH",
                help=(
                    "write the settings into this .env file (updating lines already there) instead of stdout"
                ),
            ),
        ),
    ),
    Command(
        "tasks",
        _tasks,
        help="list the registered tasks and their parameters",
        description="Import ALLOYSYNC_TASK_MODULES and list every registered task with its parameters.",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alloysync",
        description=(
            "Run jobs marked in Alloy on a Dramatiq worker pool, write their outcome back onto the "
            "Alloy record, and export metrics to Prometheus. Settings come from ALLOYSYNC_* "
            "environment variables or a .env file (see README)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "processes (Procfile):  web: alloysync serve   worker: alloysync worker   "
            "scheduler: alloysync scheduler\n"
            "try it:                alloysync demo"
        ),
    )
    parser.add_argument("--version", action="version", version=f"alloysync {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        subparser = commands.add_parser(command.name, help=command.help, description=command.description)
        for each in command.options:
            subparser.add_argument(*each.flags, **each.keywords)
        subparser.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as error:
        for line in describe_validation_error(error):
            print(f"alloysync: {line}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except _NoTasks:
        return EXIT_NO_TASKS
    except KeyboardInterrupt:
        return 130
