"""The aiohttp application: routes plus the gate every request passes through.

The gate decides, per request area:
- health check: answered as is;
- admin API (`/_emulator/...`): bearer token, no faults, no rate limits, no stats;
- everything else (the Alloy API, unknown paths, the price feed): injected latency and faults
  first (as a proxy in front of Alloy would fail), then the bearer token (not for the price feed),
  then the rate limit of the request's family, then the handler. Each such request is counted in
  stats by family and status; rate-limited families get `X-Rate-Limit-Remaining` and
  `X-Rate-Limit-Reset`.
Every refusal is an Alloy error body with one of Alloy's categories; unknown paths and methods too
(`BadRequest`), unexpected failures `InternalError`. Stale-signature errors get the status (and
errorCode) the fault knobs set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from alloysync.emulator.errors import AlloyError, Category, internal_error, unauthorized
from alloysync.emulator.faults import (
    BAD_GATEWAY_PAGE,
    DownMode,
    InjectedFailure,
    injected_server_error,
    service_down,
)
from alloysync.emulator.limits import Family, family_of
from alloysync.emulator.prices import PRICE_PATH
from alloysync.emulator.routes_api import add_api_routes
from alloysync.emulator.routes_design import add_design_routes
from alloysync.emulator.routes_emulator import ADMIN_PREFIX, HEALTH_PATH, add_emulator_routes
from alloysync.emulator.state import STATE_KEY, EmulatorState
from alloysync.emulator.wire import error_response
from alloysync.log import get_logger

MAX_REQUEST_BYTES = 64 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = get_logger(__name__)


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[gate], client_max_size=MAX_REQUEST_BYTES)
    app[STATE_KEY] = state
    add_api_routes(app)
    add_design_routes(app)
    add_emulator_routes(app)
    app.on_startup.append(_start_background)
    app.on_cleanup.append(_stop_background)
    return app


async def _start_background(app: web.Application) -> None:
    await app[STATE_KEY].callouts.start()


async def _stop_background(app: web.Application) -> None:
    state = app[STATE_KEY]
    await state.callouts.close()
    if state.saver is not None:
        await state.saver.close()


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if request.path == HEALTH_PATH:
        return await handler(request)
    if request.path.startswith(ADMIN_PREFIX):
        if not state.tokens.accepts(request.headers):
            return error_response(unauthorized())
        return await _answer(request, handler)
    family = family_of(request.method, request.path)
    if state.faults.latency_seconds > 0:
        await asyncio.sleep(state.faults.latency_seconds)
    if state.faults.config.down and state.faults.config.down_mode is DownMode.RESET:
        state.stats.record(family, "reset")
        return _drop_connection(request)
    response = await _serve(request, handler, state, family)
    state.stats.record(family, response.status)
    return response


async def _serve(
    request: web.Request, handler: Handler, state: EmulatorState, family: Family
) -> web.StreamResponse:
    if state.faults.config.down:
        return error_response(service_down())
    failure = state.faults.pick_failure()
    if failure is InjectedFailure.BAD_GATEWAY_HTML:
        return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
    if failure is InjectedFailure.SERVER_ERROR:
        return error_response(injected_server_error())
    if request.path == PRICE_PATH:
        return await _answer(request, handler)
    if not state.tokens.accepts(request.headers):
        return error_response(unauthorized())
    decision = state.limiter.count(state.tokens.key, family)
    if decision is None:
        return await _answer(request, handler)
    if not decision.allowed:
        return error_response(decision.error(family), headers=decision.headers())
    response = await _answer(request, handler)
    response.headers.update(decision.headers())
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, with every failure turned into an Alloy error body."""
    try:
        return await handler(request)
    except AlloyError as error:
        return error_response(request.app[STATE_KEY].faults.shape(error))
    except web.HTTPException as error:
        if error.status == 404:
            message = f"there is no endpoint {request.method} {request.path}"
        else:
            message = f"{error.reason}: {request.method} {request.path}"
        return error_response(AlloyError(error.status, Category.BAD_REQUEST, message))
    except Exception:
        log.exception("emulator request failed", method=request.method, path=request.path)
        return error_response(internal_error("the emulator failed to handle the request"))


def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering (fault `down_mode: reset`)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)  # never sent: the connection is gone
