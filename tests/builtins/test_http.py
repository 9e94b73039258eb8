"""http.request against a loopback receiver: allow-list (also for redirects), secret headers by
name, timeouts, size limits, one request per entry, and no second request from a redelivered step."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from alloysync.builtins import http
from alloysync.builtins.common import BuiltinError
from alloysync.local.redis_server import RedisServer
from alloysync.model.registry import ParamsError
from alloysync.settings import Settings
from tests.builtins.conftest import ContextFactory, make_settings
from tests.support.receiver import Receiver

SECRET = "Bearer contractor-s3cret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver(slow_seconds=3.0).start()
    yield peer
    peer.stop()


@pytest.fixture
def settings(redis_server: RedisServer, receiver: Receiver) -> Settings:
    return make_settings(
        redis_server,
        None,
        builtin_http_allow=[f"{receiver.url}/v1/"],
        builtin_http_secrets={"contractor": SecretStr(SECRET)},
        builtin_http_timeout=1.5,
        builtin_http_max_bytes=100_000,
    )


async def test_a_request_with_a_secret_header_by_name(
    settings: Settings, receiver: Receiver, context: ContextFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tests.builtins")
    async with context(settings) as ctx:
        answer = await http.request(
            ctx=ctx,
            method="POST",
            url=f"{receiver.url}/v1/jobs",
            secret_headers={"Authorization": "contractor"},
            headers={"X-Team": "highways"},
            body={"reference": "D-1"},
        )
    assert answer["status"] == 201 and answer["body"]["received"] == {"reference": "D-1"}
    assert answer["summary"] == f"POST {receiver.url}/v1/jobs -> 201"
    sent = receiver.received[0]
    assert sent.headers["Authorization"] == SECRET and sent.headers["X-Team"] == "highways"
    assert len(sent.headers["Idempotency-Key"]) == 32
    assert SECRET not in str(answer) and SECRET not in caplog.text
    assert "http.request POST" in caplog.text  # what it touched is in the run log


async def test_each_sends_one_request_per_entry_once_per_run(
    settings: Settings, receiver: Receiver, context: ContextFactory
) -> None:
    rows = [
        {"itemId": "a", "ref": "D-1", "location": "Mill Lane"},
        {"itemId": "b", "ref": "D-2", "location": "Quay"},
    ]
    options: dict[str, Any] = {
        "method": "POST",
        "url": f"{receiver.url}/v1/jobs",
        "body_from": "{reference: ref, where: location}",
    }
    async with context(settings, step=1) as ctx:
        answered = await http.request(rows, ctx=ctx, each=True, **options)
        again = await http.request(rows, ctx=ctx, each=True, **options)  # a redelivered step
    assert [entry["response"]["body"]["jobNumber"] for entry in answered] == ["C-1001", "C-1002"]
    assert [entry["ref"] for entry in answered] == ["D-1", "D-2"]
    assert [sent.body for sent in receiver.received] == [
        {"reference": "D-1", "where": "Mill Lane"},
        {"reference": "D-2", "where": "Quay"},
    ]
    assert again == answered  # answered from memory: no third or fourth request
    assert receiver.received[0].headers["Idempotency-Key"] != receiver.received[1].headers["Idempotency-Key"]


async def call(settings: Settings, context: ContextFactory, step: int, **options: Any) -> Any:
    """One http.request step of its own (a step's answers are remembered: a second call of the same
    step would be a redelivery)."""
    async with context(settings, step=step) as ctx:
        return await http.request(ctx=ctx, **options)


async def test_redirects_are_followed_only_inside_the_allow_list(
    settings: Settings, receiver: Receiver, context: ContextFactory
) -> None:
    inside = await call(settings, context, 1, url=f"{receiver.url}/v1/redirect-in")
    assert inside["status"] == 200 and "headers" in inside["body"]
    with pytest.raises(
        BuiltinError, match=r"redirected to http://127\.0\.0\.1:9/elsewhere, which is not under an allowed"
    ):
        await call(settings, context, 2, url=f"{receiver.url}/v1/redirect-out")
    assert [sent.path for sent in receiver.received] == ["/v1/redirect-in", "/v1/echo", "/v1/redirect-out"]


async def test_timeouts_sizes_statuses_and_the_allow_list_at_run_time(
    settings: Settings, receiver: Receiver, context: ContextFactory
) -> None:
    with pytest.raises(BuiltinError, match=r"took longer than 1.5 s \(ALLOYSYNC_BUILTIN_HTTP_TIMEOUT\)"):
        await call(settings, context, 1, url=f"{receiver.url}/v1/slow")
    receiver.big_bytes = 150_000
    with pytest.raises(BuiltinError, match="ALLOYSYNC_BUILTIN_HTTP_MAX_BYTES"):
        await call(settings, context, 2, url=f"{receiver.url}/v1/big")
    receiver.big_bytes = 90_000
    assert len((await call(settings, context, 3, url=f"{receiver.url}/v1/big"))["body"]) == 90_000
    with pytest.raises(BuiltinError, match=r"answered 500: .*down for maintenance"):
        await call(settings, context, 4, url=f"{receiver.url}/v1/fail")
    assert (await call(settings, context, 5, url=f"{receiver.url}/v1/fail", expect=[500]))["status"] == 500
    with pytest.raises(ParamsError, match="not under an allowed prefix"):
        await call(settings, context, 6, url=f"{receiver.url}/admin")
    assert [sent.path for sent in receiver.received].count("/v1/fail") == 2
