"""Settings: every knob of alloysync, read from `ALLOYSYNC_*` environment variables and `.env`.

This module owns the names, defaults, units and validation of configuration. Nothing else reads
the environment for alloysync settings. The Alloy token and the webhook secret are `SecretStr`:
they print as `**********` in reprs and logs and are only unwrapped where a request is built.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_REPORT_COALESCE = 60.0  # seconds: longer would keep Running off a record for a minute
DEFAULT_MISSED_RUNS_WINDOW = 86_400.0  # seconds: `all` catches up at most a day of missed fires
BUILTIN_TASK_MODULE = "alloysync.builtins"  # registers alloy.*, http.request, data.*, mail.send, wait.until
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")

Seconds = Annotated[float, Field(gt=0)]
PerMinute = Annotated[int, Field(ge=1, le=100_000)]
Names = Annotated[list[str], NoDecode]  # "a,b" or a JSON list


class MissedRunPolicy(StrEnum):
    """What to do with cron fires that were missed while nothing could run them."""

    SKIP = "skip"  # run nothing that was missed; wait for the next fire
    ONCE = "once"  # run a single catch-up for the most recent missed fire
    ALL = "all"  # run every missed fire that lies within the missed-runs window


class JobAttributeCodes(BaseModel):
    """Attribute codes of the job record (the README's "The job record"); each one can be overridden.

    Override one with e.g. `ALLOYSYNC_ATTRIBUTES__STATUS=attributes_myJobsStatus`.
    """

    title: str = "attributes_itemsTitle"
    enabled: str = "attributes_alloysyncJobsEnabled"
    task: str = "attributes_alloysyncJobsTask"
    params: str = "attributes_alloysyncJobsParams"
    schedule: str = "attributes_alloysyncJobsSchedule"
    timezone: str = "attributes_alloysyncJobsTimezone"
    missed_runs: str = "attributes_alloysyncJobsMissedRuns"
    run_requested: str = "attributes_alloysyncJobsRunRequested"
    status: str = "attributes_alloysyncJobsStatus"
    message: str = "attributes_alloysyncJobsMessage"
    result: str = "attributes_alloysyncJobsResult"
    last_run_started: str = "attributes_alloysyncJobsLastRunStarted"
    last_run_finished: str = "attributes_alloysyncJobsLastRunFinished"
    next_run: str = "attributes_alloysyncJobsNextRun"
    run_count: str = "attributes_alloysyncJobsRunCount"
    # Added after the first release: optional on a design (the feature is off where absent).
    overlap: str = "attributes_alloysyncJobsOverlap"
    concurrency_key: str = "attributes_alloysyncJobsConcurrencyKey"
    cancel_requested: str = "attributes_alloysyncJobsCancelRequested"
    run_params: str = "attributes_alloysyncJobsRunParams"
    backfill: str = "attributes_alloysyncJobsBackfill"
    notify: str = "attributes_alloysyncJobsNotify"
    notify_on: str = "attributes_alloysyncJobsNotifyOn"
    max_age: str = "attributes_alloysyncJobsMaxAge"
    consecutive_failures: str = "attributes_alloysyncJobsConsecutiveFailures"
    last_succeeded: str = "attributes_alloysyncJobsLastSucceeded"


class Settings(BaseSettings):
    """All settings. Field `x` is read from `ALLOYSYNC_X`; durations are in seconds."""

    model_config = SettingsConfigDict(
        env_prefix="ALLOYSYNC_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    # --- Alloy -----------------------------------------------------------------------------
    alloy_url: str = "https://api.uk.alloyapp.io"
    alloy_token: SecretStr = SecretStr("")
    alloy_timeout: Seconds = 30.0
    alloy_max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    alloy_query_per_minute: PerMinute = 120
    alloy_read_per_minute: PerMinute = 300
    alloy_write_per_minute: PerMinute = 150
    # The window Alloy counts those limits in (60 s: "per minute"); only a test tenant differs.
    alloy_rate_window: Annotated[float, Field(ge=1, le=3600)] = 60.0
    alloy_page_size: Annotated[int, Field(ge=1, le=100)] = 100  # Alloy documents at most 100
    jobs_design: str = "designs_alloysyncJobs"
    jobs_collection: str = "Live"
    attributes: JobAttributeCodes = JobAttributeCodes()

    # --- Redis -----------------------------------------------------------------------------
    redis_url: str | None = None

    # --- serve: poller, reporter, web ------------------------------------------------------
    poll_interval: Seconds = 5.0
    full_sync_interval: Seconds = 300.0
    sync_overlap: Annotated[float, Field(ge=0)] = 10.0
    lease_ttl: Annotated[float, Field(ge=1, le=60)] = 10.0
    report_writes_per_minute: PerMinute = 120
    report_coalesce: float = 1.0  # seconds an item's first event waits for the next ones (0: at once)
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    public_url: str = ""  # how people reach serve (links in notifications); empty: http://{host}:{port}
    webhook_secret: SecretStr | None = None
    webhook_header: str = "X-Alloysync-Secret"
    webhook_max_bytes: Annotated[int, Field(ge=256)] = 65_536

    # --- tasks and the worker pool ---------------------------------------------------------
    task_modules: Names = ["coinrequest.tasks"]
    worker_processes: Annotated[int, Field(ge=1, le=64)] = 2
    worker_threads: Annotated[int, Field(ge=1, le=256)] = 8
    worker_queues: Names = []
    worker_idle_poll: Annotated[float, Field(ge=0.01, le=10)] = 0.1
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9191
    task_max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    task_time_limit: Seconds = 600.0
    task_min_backoff: Seconds = 1.0
    task_max_backoff: Seconds = 300.0
    worker_heartbeat_timeout: Annotated[float, Field(ge=3, le=600)] = 15.0
    worker_maintenance_interval: Annotated[float, Field(ge=0.5, le=300)] = 5.0
    params_max_bytes: Annotated[int, Field(ge=2)] = 65_536
    result_max_bytes: Annotated[int, Field(ge=64)] = 16_384
    message_max_chars: Annotated[int, Field(ge=40, le=4000)] = 500  # le: model.design.MESSAGE_MAX_LENGTH
    run_history: Annotated[int, Field(ge=1, le=1000)] = 20
    run_log_max_lines: Annotated[int, Field(ge=1, le=10_000)] = 200
    run_log_max_bytes: Annotated[int, Field(ge=256, le=10_000_000)] = 65_536

    # --- run control -----------------------------------------------------------------------
    concurrency_limits: dict[str, Annotated[int, Field(ge=1, le=10_000)]] = {}  # key -> runs at once
    backfill_max_runs: Annotated[int, Field(ge=1, le=100_000)] = 1000

    # --- notifications (and the mail.send task) --------------------------------------------
    smtp_host: str = ""  # empty: e-mail off
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_from: str = "alloysync@localhost"
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_timeout: Seconds = 30.0
    notify_url_allow: Names = []  # URL prefixes a Notify webhook may start with; empty: webhooks off
    notify_per_minute: PerMinute = 30  # notifications sent per minute (all channels together)
    freshness_interval: Annotated[float, Field(ge=0.1, le=3600)] = 15.0  # seconds between MaxAge checks

    # --- built-in tasks (alloysync/builtins/: alloy.*, http.request, data.*, mail.send, wait.until)
    builtin_tasks: bool = True  # register the built-in tasks
    builtin_alloy_designs: Names = []  # design or interface codes alloy.update/alloy.create may edit
    builtin_http_allow: Names = []  # URL prefixes http.request may call; empty: http.request off
    builtin_http_secrets: dict[str, SecretStr] = {}  # name -> header value a record names, never holds
    builtin_http_timeout: Seconds = 30.0  # one request, redirects included
    builtin_http_max_bytes: Annotated[int, Field(ge=256, le=100_000_000)] = 1_048_576  # a response body
    builtin_mail_allow: Names = []  # recipient domains mail.send may write to; empty: mail.send off
    builtin_max_items: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000  # items one step reads or edits
    builtin_render_max_chars: Annotated[int, Field(ge=100, le=10_000_000)] = 200_000  # data.render output
    builtin_wait_max: Annotated[float, Field(gt=0, le=30 * 86_400)] = 7 * 86_400.0  # longest wait.until

    # --- scheduling ------------------------------------------------------------------------
    missed_runs: MissedRunPolicy = MissedRunPolicy.ONCE
    missed_runs_window: Seconds = DEFAULT_MISSED_RUNS_WINDOW
    schedule_stale_after: Seconds = 300.0
    run_at_horizon: Seconds = 86_400.0
    scheduler_metrics_host: str = "127.0.0.1"
    scheduler_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9192

    # --- logging ---------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = "auto"

    # --- demo ------------------------------------------------------------------------------
    demo_dir: str = ".alloysync-demo"

    @field_validator("alloy_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"must be an http(s) URL such as https://api.uk.alloyapp.io, not {redact_url(value)!r}"
            )
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"must be the http(s) URL people open serve's pages at, such as "
                f"https://alloysync.example.org, not {redact_url(value)!r}"
            )
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL, not {redact_url(value)!r}")
        return value

    @field_validator(
        "task_modules",
        "worker_queues",
        "notify_url_allow",
        "builtin_alloy_designs",
        "builtin_http_allow",
        "builtin_mail_allow",
        mode="before",
    )
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("notify_url_allow", "builtin_http_allow")
    @classmethod
    def _url_prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"must be http(s) URL prefixes such as https://hooks.example.org/, not {value!r}"
                )
        return values

    @field_validator("builtin_mail_allow")
    @classmethod
    def _mail_domains(cls, values: list[str]) -> list[str]:
        domains = []
        for value in values:
            domain = value.strip().lower().removeprefix("@")
            if not _DOMAIN.match(domain):
                raise ValueError(f"must be e-mail domains such as council.example.org, not {value!r}")
            domains.append(domain)
        return domains

    @property
    def task_modules_to_load(self) -> list[str]:
        """The modules whose tasks are registered: the built-ins (unless ALLOYSYNC_BUILTIN_TASKS is
        false), then ALLOYSYNC_TASK_MODULES."""
        builtins = [BUILTIN_TASK_MODULE] if self.builtin_tasks else []
        return builtins + [module for module in self.task_modules if module != BUILTIN_TASK_MODULE]

    def concurrency_limit(self, key: str) -> int:
        """How many runs of jobs sharing `key` may run at once (ALLOYSYNC_CONCURRENCY_LIMITS, default 1)."""
        return self.concurrency_limits.get(key, 1)

    @field_validator("report_coalesce")
    @classmethod
    def _coalesce(cls, value: float) -> float:
        if not 0 <= value <= MAX_REPORT_COALESCE:
            raise ValueError(
                f"must be seconds from 0 (write every status at once) to {MAX_REPORT_COALESCE:g}, "
                "e.g. 1.0: how long the reporter holds a job's first status for the ones that follow"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in ("auto", "json", "console"):
            raise ValueError("must be auto (JSON unless stdout is a terminal), json or console")
        return value

    @cached_property
    def effective_redis_url(self) -> str:
        """The Redis to use: `ALLOYSYNC_REDIS_URL`, or the local default."""
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def effective_public_url(self) -> str:
        """Where serve's pages are reached: `ALLOYSYNC_PUBLIC_URL`, or serve's own address."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def alloy_token_value(self) -> str:
        """The raw token, for building the Authorization header only."""
        return self.alloy_token.get_secret_value()


def redact_url(url: str) -> str:
    """`url` without a password (`redis://:secret@host` → `redis://:***@host`), for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per invalid setting: the environment variable, what is wrong, and the bad value's type.

    Values are never echoed: a mistyped secret must not end up in a terminal or a log.
    """
    lines = []
    for problem in error.errors():
        location = "__".join(str(part) for part in problem["loc"]).upper()
        lines.append(f"ALLOYSYNC_{location}: {problem['msg']}")
    return lines


def load_settings() -> Settings:
    """Read settings from the environment and `.env`; raises `ValidationError` on bad values."""
    return Settings()
