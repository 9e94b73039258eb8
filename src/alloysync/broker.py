"""The Dramatiq broker: Redis, with prompt redelivery of the messages of a worker that died.

Dramatiq's Redis broker keeps each fetched message in a per-worker "acks" set until it is acked.
A worker that dies (SIGKILL, OOM, power loss) leaves its messages there; they go back on their
queue only when (a) the worker's heartbeat is older than `heartbeat_timeout` and (b) some process
runs the broker's *maintenance* for that queue. Out of the box heartbeats happen only as a side
effect of fetching, the timeout is 60 s and maintenance runs on 0.1% of broker commands, for the
queue of that command only — measured here at about 5 minutes before a killed worker's run resumed.

`WorkerHeartbeat` (worker/middleware.py) fixes both halves: a thread in every worker process calls
`AlloysyncBroker.maintain` every `ALLOYSYNC_WORKER_MAINTENANCE_INTERVAL` seconds (5 s), which
records the heartbeat and runs maintenance for every declared queue and its delay queue, with the
heartbeat timeout set from `ALLOYSYNC_WORKER_HEARTBEAT_TIMEOUT` (15 s). A killed worker's messages
are back on their queue within timeout + interval (~20 s). The thread also records the worker in
`alloysync:workers` so `serve` can count live workers.

A Redis outage must not look like dead workers: while Redis is away nobody's heartbeat lands, so
when it returns every heartbeat is old. Dramatiq's own random maintenance is therefore switched off
(`maintenance_chance=0`), and a worker that saw Redis fail only heartbeats, without maintenance, for
one heartbeat timeout after it returns: by then every live worker has heartbeated again. What remains
is a worker process stalled for longer than the heartbeat timeout (its heartbeat thread starved):
its messages may then run again elsewhere, which the at-least-once contract of task code allows.

With that thread running, the heartbeat Dramatiq's dispatch script records on every fetch and ack
adds nothing, so a worker whose `WorkerHeartbeat` booted (`beats_on_its_own`) fetches and acks
through scripts of its own without it (state/lua/queue_fetch.lua, queue_ack.lua: the same keys,
one fetch call taking its ids with one LPOP): a third fewer Redis commands per message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.middleware import CurrentMessage, Middleware, Retries, TimeLimit
from redis.commands.core import Script

from alloysync.settings import Settings
from alloysync.state import scripts
from alloysync.state.claims import MessageAck
from alloysync.state.connections import connect

STORAGE_ID_OPTION = "alloysync_storage_id"


class AlloysyncBroker(RedisBroker):
    """RedisBroker with an explicit maintenance pass, and messages that may name their storage id.

    Dramatiq's Redis broker files every enqueued message under a fresh random id. A message whose
    options carry `alloysync_storage_id` (enqueue.py gives a step's first message one derived from
    the run and step) is filed under that id instead, so recovery can ask whether Dramatiq still
    holds it (`state.queue_stats.message_waiting`). A delayed enqueue (a retry) gets a fresh one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.beats_on_its_own = False  # set by WorkerHeartbeat once its first heartbeat is recorded
        self._own_scripts: dict[str, Script] = {}
        # Storage ids of messages a run script acknowledged already (finish_step.lua): their
        # consumer's ack makes no round trip. Added and removed by different threads (set
        # operations are atomic under the GIL); a message is acked or nacked once.
        self.acked_by_script: set[str] = set()

    def do_fetch(self, queue_name: str, prefetch: int) -> list[bytes]:
        """Fetch up to `prefetch` messages (Dramatiq's `fetch`, without its heartbeat once
        `beats_on_its_own`)."""
        if not self.beats_on_its_own:
            return self._dispatch("fetch")(queue_name, prefetch)  # type: ignore[no-untyped-call,no-any-return]
        count = min(prefetch, self._max_unpack_size())  # type: ignore[no-untyped-call]
        fetched: list[bytes] = self._own_script("queue_fetch")(
            keys=[*self.queue_keys(queue_name), self._acks_key(queue_name)], args=[count]
        )
        return fetched

    def do_ack(self, queue_name: str, message_id: str) -> None:
        """Acknowledge a message (Dramatiq's `ack`, without its heartbeat once `beats_on_its_own`;
        nothing at all when a run script acknowledged it already)."""
        if message_id in self.acked_by_script:
            self.acked_by_script.discard(message_id)
            return
        if not self.beats_on_its_own:
            self._dispatch("ack")(queue_name, message_id)  # type: ignore[no-untyped-call]
            return
        _queue, messages = self.queue_keys(queue_name)
        self._own_script("queue_ack")(keys=[self._acks_key(queue_name), messages], args=[message_id])

    def do_nack(self, queue_name: str, message_id: str) -> None:
        """Dead-letter a message (Dramatiq's `nack`; one a script acknowledged is gone already)."""
        if message_id in self.acked_by_script:
            self.acked_by_script.discard(message_id)
            return
        self._dispatch("nack")(queue_name, message_id)  # type: ignore[no-untyped-call]

    def message_ack(self, message: Message[Any]) -> MessageAck | None:
        """How a script acknowledges `message`, fetched from its queue by this worker (None for a
        message without a storage id)."""
        storage_id = message.options.get("redis_message_id")
        if storage_id is None:
            return None
        _queue, messages = self.queue_keys(message.queue_name)
        return MessageAck(self._acks_key(message.queue_name), messages, str(storage_id))

    def queue_keys(self, queue_name: str) -> tuple[str, str]:
        """A queue's list of message ids and its hash of message bodies (Dramatiq's layout)."""
        queue = f"{self.namespace}:{queue_name}"
        return queue, f"{queue}.msgs"

    def _acks_key(self, queue_name: str) -> str:
        """The worker's set of fetched, unacknowledged ids of a queue (Dramatiq's layout)."""
        return f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}"

    def _own_script(self, name: str) -> Script:
        script = self._own_scripts.get(name)
        if script is None:
            script = self._own_scripts[name] = scripts.register(self.client, name)
        return script

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        storage_id = message.options.get(STORAGE_ID_OPTION)
        if storage_id is None or delay is not None:
            return super().enqueue(message, delay=delay)
        message = message.copy(options={"redis_message_id": str(storage_id)})
        self.emit_before("enqueue", message, None)
        self.do_enqueue(message.queue_name, str(storage_id), message.encode())
        self.emit_after("enqueue", message, None)
        return message

    def maintain(self) -> None:
        """Heartbeat, and requeue messages of dead workers, for every declared queue."""
        for queue_name in sorted(self.get_declared_queues()):
            for name in (queue_name, dq_name(queue_name)):
                self._dispatch_qsize(name, maintenance=True)

    def heartbeat(self) -> None:
        """Record this worker's heartbeat only."""
        self._dispatch_qsize(next(iter(sorted(self.get_declared_queues())), "default"), maintenance=False)

    def _dispatch_qsize(self, queue_name: str, maintenance: bool) -> None:
        """A harmless command through Dramatiq's dispatch script (which records the heartbeat), with
        its maintenance flag as asked. The argument layout is that of `RedisBroker._dispatch`
        (dramatiq 1.17 to 2.x)."""
        self.scripts["dispatch"](
            args=[
                "qsize",
                current_millis(),
                queue_name,
                self.broker_id,
                self.heartbeat_timeout,
                self.dead_message_ttl,
                1 if maintenance else 0,
                self._max_unpack_size(),  # type: ignore[no-untyped-call]
            ],
            keys=[self.namespace],
        )


def build_broker(
    settings: Settings,
    *,
    worker_middleware: list[Middleware] | None = None,
    queues: Iterable[str] = (),
) -> AlloysyncBroker:
    """A broker for this deployment, with `queues` declared. Enqueue-only processes (serve,
    scheduler) pass no middleware; the worker passes its stack (see `worker/boot.py`)."""
    middleware: list[Middleware] = [
        TimeLimit(time_limit=int(settings.task_time_limit * 1000)),
        CurrentMessage(),
        Retries(
            max_retries=settings.task_max_retries,
            min_backoff=int(settings.task_min_backoff * 1000),
            max_backoff=int(settings.task_max_backoff * 1000),
        ),
    ]
    if worker_middleware:
        middleware.extend(worker_middleware)
    client = connect(settings.effective_redis_url, decode=False)  # Dramatiq reads bytes
    broker = AlloysyncBroker(
        client=client,
        middleware=middleware,
        heartbeat_timeout=int(settings.worker_heartbeat_timeout * 1000),
        maintenance_chance=0,  # WorkerHeartbeat runs maintenance, on its own terms
    )
    for queue in sorted(queues):
        broker.declare_queue(queue)
    return broker
