"""Which metrics a PromQL expression reads, and which metric names alloysync really exports.

The dashboards and the alert rules are checked against these names so that a typo in a metric name
fails a test instead of showing an empty panel or an alert that can never fire.
"""

from __future__ import annotations

import re

# Metrics of Dramatiq's Prometheus middleware in `alloysync worker` (labels queue_name, actor_name).
DRAMATIQ_METRICS = frozenset(
    {
        "dramatiq_messages_total",
        "dramatiq_message_errors_total",
        "dramatiq_message_retries_total",
        "dramatiq_message_rejects_total",
        "dramatiq_messages_inprogress",
        "dramatiq_message_duration_milliseconds_bucket",
        "dramatiq_message_duration_milliseconds_sum",
        "dramatiq_message_duration_milliseconds_count",
    }
)
# Series that Prometheus itself writes for every scrape target.
PROMETHEUS_METRICS = frozenset({"up"})

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:]|\s*\()")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (function and keyword names excluded).

    Grafana variables must be substituted first (see `grafana.generate.render_query`).
    """
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def alloysync_metric_names() -> frozenset[str]:
    """Every series name the metrics defined in `alloysync.metrics` can export.

    Counters export `<name>_total`, histograms `<name>_bucket`, `_sum` and `_count`, infos
    `<name>_info`; `_created` series are included for completeness.
    """
    from prometheus_client import REGISTRY

    import alloysync.metrics  # registers every alloysync metric (owned gauges on first use)

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "enum": ("",),
        "unknown": ("",),
    }
    names: set[str] = {gauge.name for gauge in alloysync.metrics.OWNED_GAUGES}
    for family in REGISTRY.collect():
        if not family.name.startswith("alloysync_"):
            continue
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return frozenset(names)


def known_metric_names() -> frozenset[str]:
    """Names a dashboard or alert may use: alloysync's own, Dramatiq's and Prometheus' `up`."""
    return alloysync_metric_names() | DRAMATIQ_METRICS | PROMETHEUS_METRICS
