"""`http.request`: call another system's HTTP API, within the operator's allow-list.

Only URLs under a prefix of ALLOYSYNC_BUILTIN_HTTP_ALLOW may be called (empty: the task is off);
a record naming another URL is Invalid before anything runs, and every redirect is followed by
hand and checked against the same list (at most 5). Each request, redirects included, has
ALLOYSYNC_BUILTIN_HTTP_TIMEOUT; a response body larger than ALLOYSYNC_BUILTIN_HTTP_MAX_BYTES fails
the step. Secret header values (an API key, a bearer token) come from
ALLOYSYNC_BUILTIN_HTTP_SECRETS by name: the record says `"secret_headers": {"Authorization":
"contractor"}` and never holds the value; values are never logged.

The body is JSON (`body`, or `body_from`: a JMESPath over the input building it) or a form
(`form`). With `each`, one request is sent per entry of the previous step's list and each entry
comes back with its `response`, so a later `alloy.update` can write a reply back to its item
(`"values_from": {"attributes_…": "response.body.jobNumber"}`).

At-least-once: every request carries an `Idempotency-Key` header (the same for the same run, step
and entry) for receivers that deduplicate, and the answer of each request is remembered under the
run and step (state/builtin_memory.py), so a redelivered step does not send a request again that
was already answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urljoin

import aiohttp

from alloysync.builtins.common import (
    BuiltinError,
    builtin_memory,
    check_item_count,
    check_url_allowed,
    compile_jmespath,
    search,
    settings_of,
    url_allowed,
)
from alloysync.model.context import RunContext
from alloysync.model.registry import ParamsError, task
from alloysync.settings import Settings

MAX_REDIRECTS = 5
RESPONSE_KEY = "response"
_REDIRECTS = (301, 302, 303, 307, 308)
_REFUSED_HEADERS = ("host", "content-length", "transfer-encoding", "connection", "cookie")


def _check_request(options: Mapping[str, Any], settings: Settings) -> None:
    check_url_allowed(options.get("url"), settings)
    bodies = [name for name in ("body", "body_from", "form") if options.get(name) is not None]
    if len(bodies) > 1:
        raise ParamsError(f"give one of 'body', 'body_from' and 'form', not {' and '.join(bodies)}")
    if options.get("body_from") is not None:
        compile_jmespath(options["body_from"], "body_from")
    for name in list(options.get("headers") or {}) + list(options.get("secret_headers") or {}):
        if str(name).lower() in _REFUSED_HEADERS:
            raise ParamsError(f"header {name!r} is set by alloysync itself; leave it out")
    for header, secret in (options.get("secret_headers") or {}).items():
        if secret not in settings.builtin_http_secrets:
            known = ", ".join(sorted(settings.builtin_http_secrets)) or "none"
            raise ParamsError(
                f"option 'secret_headers': header {header!r} names secret {secret!r}, which "
                f"ALLOYSYNC_BUILTIN_HTTP_SECRETS does not hold (its names: {known})"
            )
    for status in options.get("expect") or []:
        if not 100 <= int(status) <= 599:
            raise ParamsError(f"option 'expect': {status} is not an HTTP status")


@task(
    "http.request",
    max_retries=2,
    time_limit=600,
    check=_check_request,
    example={
        "method": "POST",
        "url": "https://api.contractor.example/v1/jobs",
        "secret_headers": {"Authorization": "contractor"},
        "body_from": "{reference: ref, location: location}",
        "each": True,
    },
)
async def request(
    previous: Any = None,
    *,
    ctx: RunContext,
    url: str,
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET",
    headers: dict[str, str] | None = None,
    secret_headers: dict[str, str] | None = None,
    body: Any = None,
    body_from: str | None = None,
    form: dict[str, str] | None = None,
    each: bool = False,
    expect: list[int] | None = None,
) -> Any:
    """Call an allowed URL (ALLOYSYNC_BUILTIN_HTTP_ALLOW), or one request per entry with `each`.

    Returns {"status", "body" (parsed JSON, else text), "summary"}; with `each`, one request per
    entry of the previous list, each entry returned with its `response`. A status outside `expect`
    (default: any 2xx) fails the step."""
    settings = settings_of(ctx)
    options = {"url": url, "body": body, "body_from": body_from, "form": form, "headers": headers}
    _check_request({**options, "secret_headers": secret_headers, "expect": expect}, settings)
    shape = compile_jmespath(body_from, "body_from") if body_from is not None else None
    if each:
        if not isinstance(previous, list):
            raise BuiltinError(
                "http.request with 'each' sends one request per entry of a list: its input is no list"
            )
        entries: list[Any] = previous
        check_item_count(len(entries), settings, "http.request")
    else:
        entries = [previous]
    sent_headers = dict(headers or {})
    for header, secret in (secret_headers or {}).items():
        sent_headers[header] = settings.builtin_http_secrets[secret].get_secret_value()
    answers: list[dict[str, Any]] = []
    async with builtin_memory(settings) as memory, aiohttp.ClientSession() as session:
        done = await memory.recall(ctx.run_id, ctx.step)
        for position, entry in enumerate(entries):
            remembered = done.get(f"request:{position}")
            if remembered is not None:
                answers.append(json.loads(remembered))
                continue
            payload = search(shape, entry, "body_from") if shape is not None else body
            request_headers = {**sent_headers, "Idempotency-Key": _idempotency_key(ctx, position)}
            answer = await _send(session, settings, _Request(method, url, request_headers, payload, form))
            ctx.log.info(
                "http.request %s %s -> %d (%d bytes)", method, url, answer["status"], answer["bytes"]
            )
            _expect(answer, expect, method, url)
            await memory.remember(ctx.run_id, ctx.step, f"request:{position}", json.dumps(answer))
            answers.append(answer)
    if each:
        return [
            {**entry, RESPONSE_KEY: answer}
            if isinstance(entry, dict)
            else {"entry": entry, RESPONSE_KEY: answer}
            for entry, answer in zip(entries, answers, strict=True)
        ]
    answer = answers[0]
    return {**answer, "summary": f"{method} {url} -> {answer['status']}"}


@dataclass(frozen=True)
class _Request:
    """One HTTP request as sent: a JSON `payload` or a `form` (or neither) as its body."""

    method: str
    url: str
    headers: dict[str, str]
    payload: Any
    form: dict[str, str] | None


async def _send(session: aiohttp.ClientSession, settings: Settings, request: _Request) -> dict[str, Any]:
    """One request, its redirects followed by hand within the allow-list, under one timeout."""
    try:
        async with asyncio.timeout(settings.builtin_http_timeout):
            return await _follow(session, settings, request)
    except TimeoutError:
        raise BuiltinError(
            f"http.request: {request.method} {request.url} took longer than "
            f"{settings.builtin_http_timeout:g} s (ALLOYSYNC_BUILTIN_HTTP_TIMEOUT)"
        ) from None


async def _follow(session: aiohttp.ClientSession, settings: Settings, request: _Request) -> dict[str, Any]:
    """Send `request`, then again to each redirect's Location (after a 303, or a 301 or 302 of a
    POST, as a GET without a body)."""
    sent = request
    for _hop in range(MAX_REDIRECTS + 1):
        if not url_allowed(sent.url, settings.builtin_http_allow):
            raise BuiltinError(
                f"http.request: {request.url} redirected to {sent.url}, which is not under an allowed "
                "prefix (ALLOYSYNC_BUILTIN_HTTP_ALLOW); not followed"
            )
        arguments: dict[str, Any] = {"headers": sent.headers, "allow_redirects": False}
        if sent.form is not None:
            arguments["data"] = sent.form
        elif sent.payload is not None and sent.method != "GET":
            arguments["json"] = sent.payload
        try:
            async with session.request(sent.method, sent.url, **arguments) as response:
                if response.status in _REDIRECTS and "Location" in response.headers:
                    sent = replace(sent, url=urljoin(sent.url, response.headers["Location"]))
                    if response.status == 303 or (response.status in (301, 302) and sent.method == "POST"):
                        sent = replace(sent, method="GET", payload=None, form=None)
                    continue
                raw = await _read_bounded(response, settings.builtin_http_max_bytes)
                return {
                    "status": response.status,
                    "body": _parse(raw, response.content_type),
                    "bytes": len(raw),
                }
        except aiohttp.ClientError as error:
            raise BuiltinError(
                f"http.request: {sent.method} {sent.url} failed: {type(error).__name__}: {error}"
            ) from None
    raise BuiltinError(f"http.request: {request.url} redirected more than {MAX_REDIRECTS} times")


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BuiltinError(
            f"http.request: the response is {declared} bytes; the limit is {limit} "
            "(ALLOYSYNC_BUILTIN_HTTP_MAX_BYTES)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise BuiltinError(
                f"http.request: the response is larger than {limit} bytes (ALLOYSYNC_BUILTIN_HTTP_MAX_BYTES)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _expect(answer: dict[str, Any], expect: list[int] | None, method: str, url: str) -> None:
    status = int(answer["status"])
    if (status in expect) if expect else 200 <= status < 300:
        return
    detail = answer["body"] if isinstance(answer["body"], str) else json.dumps(answer["body"])
    raise BuiltinError(f"http.request: {method} {url} answered {status}: {detail[:200]}")


def _idempotency_key(ctx: RunContext, position: int) -> str:
    return hashlib.sha256(f"{ctx.run_id}/{ctx.step}/{position}".encode()).hexdigest()[:32]
