"""`alloysync emulator`: check the token, load the state file or the seed, serve HTTP until SIGTERM or SIGINT.

On a clean stop the state file is saved before the process exits.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from alloysync.emulator.app import build_app
from alloysync.emulator.persistence import StateFileError
from alloysync.emulator.state import create_state
from alloysync.gc_tuning import tune_for_throughput
from alloysync.log import configure_logging, get_logger
from alloysync.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_SETTINGS = 2
SHUTDOWN_TIMEOUT_SECONDS = 5.0

log = get_logger(__name__)


def run_emulator(
    settings: Settings,
    *,
    host: str,
    port: int,
    seed: str,
    state_file: str | None,
    rate_limits: bool,
    item_dates: bool = False,
) -> int:
    """Run the emulator in the foreground; the process exit code."""
    if not settings.alloy_token_value():
        print(
            "alloysync emulator: set ALLOYSYNC_ALLOY_TOKEN to the API token clients must send "
            "(e.g. `export ALLOYSYNC_ALLOY_TOKEN=dev-token`)",
            file=sys.stderr,
        )
        return EXIT_BAD_SETTINGS
    configure_logging(settings.log_level, settings.log_format, process="emulator")
    options = _Options(
        host=host,
        port=port,
        seed=seed,
        state_path=Path(state_file) if state_file else None,
        rate_limits=rate_limits,
        item_dates=item_dates,
    )
    tune_for_throughput()
    return asyncio.run(_serve(settings, options))


@dataclass(frozen=True)
class _Options:
    """What the command line asked of this emulator process."""

    host: str
    port: int
    seed: str
    state_path: Path | None
    rate_limits: bool
    item_dates: bool


async def _serve(settings: Settings, options: _Options) -> int:
    try:
        state, loaded = create_state(
            settings,
            state_file=options.state_path,
            rate_limits=options.rate_limits,
            item_dates=options.item_dates,
        )
    except StateFileError as error:
        print(f"alloysync emulator: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if loaded:
        log.info(
            "state loaded", path=str(options.state_path), designs=len(state.designs), items=len(state.store)
        )
    else:
        seeded = state.load_seed(options.seed)
        log.info("seed loaded", seed=options.seed, designs=len(state.designs), items=seeded)

    runner = web.AppRunner(build_app(state), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port)
        try:
            await site.start()
        except OSError as error:
            where = f"{options.host}:{options.port}"
            print(f"alloysync emulator: cannot listen on {where}: {error.strerror}", file=sys.stderr)
            return EXIT_FAILURE
        url = _listening_url(runner, options.host, options.port)
        limits = "on" if options.rate_limits else "off"
        dates = "on" if options.item_dates else "off"
        print(
            f"alloysync emulator listening on {url} (seed: {options.seed}, rate limits: {limits}, "
            f"item dates: {dates}, state: {options.state_path or 'in memory only'})",
            flush=True,
        )
        log.info("emulator started", url=url, items=len(state.store), rate_limits=options.rate_limits)
        await _wait_for_stop_signal()
        log.info("emulator stopping")
    finally:
        await runner.cleanup()  # runs the app's cleanup: stops call-outs, saves the state file
    log.info("emulator stopped")
    return EXIT_OK


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _listening_url(runner: web.AppRunner, host: str, port: int) -> str:
    """`http://host:port` with the port actually bound (it differs when --port 0 was given)."""
    bound_port = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound_port = int(address[1])
            break
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{bound_port}"
