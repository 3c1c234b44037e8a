"""Prometheus metrics at ``GET /metrics``, correct under several gunicorn workers.

Counters and the latency histogram live in each process. Under gunicorn, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (``server_sync.gunicorn_conf``
empties it at start): prometheus-client then keeps each worker's values in a file
there, and whichever worker answers a scrape sums them all. Without it (one
process: ``fieldsync-server serve``) values stay in memory. The fleet gauges
(devices seen, commands pending) are read from the database at each scrape, so they
are the same whichever worker answers and need no per-process state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from protocol import Ack

from .commands import open_count
from .extension import server_state
from .models import devices, ops

#: The environment variable that turns on prometheus-client's multi-process mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The endpoint whose answers ``fieldsync_batches_total`` counts.
BATCH_ENDPOINT = "sync.post_batch"

metrics = Blueprint("metrics", __name__)

#: This process's own metrics (what a scrape reads when not in multi-process mode).
_OWN = CollectorRegistry()

BATCHES = Counter(
    "fieldsync_batches", "Batch requests answered, by HTTP status.", ["status"], registry=_OWN
)
ENTRIES = Counter(
    "fieldsync_entries", "Entries answered, by result status.", ["result"], registry=_OWN
)
REJECTIONS = Counter(
    "fieldsync_rejections", "Entries rejected, by the server's code.", ["code"], registry=_OWN
)
APPLY_SECONDS = Histogram(
    "fieldsync_apply_seconds",
    "Seconds to apply one batch in its database transaction (commit included).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=_OWN,
)


def observe_ack(ack: Ack, seconds: float) -> None:
    """Count an applied batch's results and its apply time."""
    APPLY_SECONDS.observe(seconds)
    for result in ack.results:
        ENTRIES.labels(result.status).inc()
        if result.status == "rejected":
            REJECTIONS.labels(result.code or "unknown").inc()


@metrics.after_app_request
def _count_batch(response: Response) -> Response:
    if request.endpoint == BATCH_ENDPOINT:
        BATCHES.labels(str(response.status_code)).inc()
    return response


@metrics.get("/metrics")
def get_metrics() -> Response:
    """Every metric in the Prometheus text format, summed over this server's processes."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Own())
    registry.register(_Fleet(server_state(current_app).reader))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0])


class _Own(Collector):
    """This process's metrics, for a one-process server."""

    def collect(self) -> Iterable[Metric]:
        return _OWN.collect()


class _Fleet(Collector):
    """Gauges read from the database at scrape time: the same answer from every worker."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        seen = sa.exists().where(ops.c.device_id == devices.c.id)
        with self.engine.begin() as conn:
            enrolled = conn.execute(sa.select(sa.func.count()).select_from(devices)).scalar_one()
            devices_seen = conn.execute(
                sa.select(sa.func.count()).select_from(devices).where(seen)
            ).scalar_one()
            pending = open_count(conn)
        yield GaugeMetricFamily(
            "fieldsync_devices_enrolled", "Devices enrolled (revoked included).", value=enrolled
        )
        yield GaugeMetricFamily(
            "fieldsync_devices_seen",
            "Devices that have sent at least one entry.",
            value=devices_seen,
        )
        yield GaugeMetricFamily(
            "fieldsync_commands_pending",
            "Commands to devices not yet answered (pending or delivered).",
            value=pending,
        )
