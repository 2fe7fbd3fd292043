"""Prometheus `/metrics` for one chatwatch process.

Why one exporter per process, with its own registry: Prometheus scrapes a process, and its
counters must only ever grow while that process lives. A runtime is rebuilt on every config
change (runtime/process.py), so counters kept per runtime would be wiped by an edit of the
config file (LiteLLM's #10595/#42566); the exporter is therefore owned by the process's
`Runtimes` and listens to each runtime's Monitor in turn. It uses its own
`CollectorRegistry` (never prometheus_client's global one), so two exporters in one test
process never share a series.

What it counts comes from the records alone (one per attempt, after the commit, on the
monitor's after-record thread: never on the request path). Gauges that describe the present
(circuit state, firing alerts, unsaved and dropped records, RSS) are read at scrape time by
a custom collector, so they are never stale.

Names follow the OpenTelemetry GenAI conventions mapped to Prometheus where one exists
(`gen_ai_client_operation_duration_seconds`, `gen_ai_client_operation_time_to_first_chunk_seconds`,
`gen_ai_client_token_usage`), `chatwatch_*` for the rest. Labels are bounded: model and
provider come from the config, status and error type from closed lists (anything else is
"other"); never a session, a request id or text.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import typing
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chatwatch.config import ModelConfig, PrometheusConfig
from chatwatch.models.contract import ErrorType
from chatwatch.store.record import LOCAL_REFUSALS, RequestRecord

log = logging.getLogger(__name__)

# OpenTelemetry GenAI semantic conventions: explicit bucket boundaries advised for
# gen_ai.client.operation.duration / time_to_first_chunk (seconds) and token usage.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = tuple(4**i for i in range(14))  # 1, 4, 16, ... 67108864

STATUSES = ("ok", "error", "cancelled")
ERROR_TYPES: tuple[str, ...] = (*typing.get_args(ErrorType), *LOCAL_REFUSALS)
OTHER = "other"
# Circuit breaker states as numbers (resilience/breaker.py names them).
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
SEVERITIES = ("critical", "warning", "info")
OPERATION = "chat"


def error_label(error_type: str | None) -> str:
    """The error type as a label value: "" for none, a known type, else "other" (a bounded set)."""
    if not error_type:
        return ""
    return error_type if error_type in ERROR_TYPES else OTHER


class MetricsSource(typing.Protocol):
    """What the scrape-time collector reads from a runtime (chatwatch.runtime.Runtime). A
    protocol, so this layer does not import the runtime layer above it."""

    monitor: Any
    alerts: Any
    breakers: Any  # resilience.breaker.Breakers: states() -> {model: BreakerState}


class _StateCollector(Collector):
    """Gauges read when Prometheus scrapes: the present state, never a stale copy."""

    def __init__(self, sources: Callable[[], Iterable[MetricsSource]]) -> None:
        self._sources = sources
        self._process = psutil.Process()

    def describe(self) -> list:
        return []  # read at scrape time only; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sources = list(self._sources())
        circuit = GaugeMetricFamily(
            "chatwatch_circuit_state",
            "Circuit breaker state per model: 0 closed, 1 half-open, 2 open",
            labels=["model"],
        )
        firing = GaugeMetricFamily("chatwatch_alerts_firing", "Alerts firing now, by severity", labels=["severity"])
        unsaved = GaugeMetricFamily(
            "chatwatch_unsaved_records", "Records kept in memory because the store refused them"
        )
        dropped = GaugeMetricFamily(
            "chatwatch_dropped_records", "Records this process's current runtime dropped (unsaved bound reached)"
        )
        rss = GaugeMetricFamily("chatwatch_process_resident_memory_bytes", "Resident memory of this process")
        seen: set[str] = set()
        severities = dict.fromkeys(SEVERITIES, 0)
        unsaved_n = dropped_n = 0
        for source in sources:
            for model, state in _breaker_states(source).items():
                if model not in seen:
                    seen.add(model)
                    circuit.add_metric([model], state)
            try:
                for alert in source.alerts.active():
                    sev = alert.rule.severity if alert.rule.severity in severities else "info"
                    severities[sev] += 1
            except Exception as exc:  # a store that is down must not break the scrape
                log.warning("metrics: firing alerts unavailable: %s", exc)
            health = source.monitor.health()
            unsaved_n += health.unsaved
            dropped_n += health.lost
        for sev, n in severities.items():
            firing.add_metric([sev], n)
        unsaved.add_metric([], unsaved_n)
        dropped.add_metric([], dropped_n)
        rss.add_metric([], self._process.memory_info().rss)
        yield from (circuit, firing, unsaved, dropped, rss)


def _breaker_states(source: MetricsSource) -> dict[str, int]:
    """model -> 0 closed / 1 half-open / 2 open, as the store has it now (every replica
    reports the one shared state). With the store down: nothing, and a warning."""
    try:
        states = source.breakers.states()
    except Exception as exc:
        log.warning("metrics: circuit states unavailable: %s", exc)
        return {}
    return {model: CIRCUIT_VALUES[state.state] for model, state in states.items()}


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: a scrape every few seconds is noise."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never keeps the process alive


def _with_token(app: Callable, token: str) -> Callable:
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        sent = environ.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(sent, expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"401 Unauthorized: send Authorization: Bearer <token>\n"]
        return app(environ, start_response)

    return guarded


class PrometheusExporter:
    """The process's metrics: `on_record` is a Monitor listener; `start()` serves them on
    [prometheus] host:port (port 0: any free port, see `port`); `close()` stops the server
    and joins its thread. `registry` is this exporter's own CollectorRegistry.

    `sources` returns the runtimes to read gauges from at scrape time."""

    def __init__(self, config: PrometheusConfig, sources: Callable[[], Iterable[MetricsSource]] = tuple) -> None:
        self.config = config
        self.token: str | None = None
        if config.token_env:
            self.token = os.environ.get(config.token_env) or None
            if self.token is None:
                raise ValueError(
                    f"[prometheus] token_env = {config.token_env!r}, but that environment variable is not set "
                    "(or empty): set it, or remove token_env to serve /metrics without a token"
                )
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        genai = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"]
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (one per attempt at a model)",
            genai,
            buckets=DURATION_BUCKETS,
            unit="seconds",
            registry=r,
        )
        self.ttfc = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first chunk of a streamed reply",
            genai,
            buckets=DURATION_BUCKETS,
            unit="seconds",
            registry=r,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per attempt (unit: tokens), by gen_ai_token_type input/output",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "chatwatch_requests",
            "Attempt records (one per attempt at a model, and one per request chatwatch refused)",
            ["model", "provider", "status", "error_type"],
            registry=r,
        )
        self.user_requests = Counter(
            "chatwatch_user_requests", "User requests (first attempts)", ["model", "provider"], registry=r
        )
        self.retries = Counter(
            "chatwatch_retries",
            "Attempts after the first of a user request, by the error before",
            ["model", "reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "chatwatch_fallbacks", "Attempts moved to a fallback model", ["model", "fallback_from"], registry=r
        )
        self.cost = Counter("chatwatch_cost_usd", "Cost in USD of priced attempts", ["model"], registry=r)
        self.unpriced = Counter(
            "chatwatch_unpriced_requests", "Attempts with no known price (never counted as $0)", ["model"], registry=r
        )
        r.register(_StateCollector(sources))
        self._declared: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- series ---------------------------------------------------------------------
    def declare(self, models: Iterable[ModelConfig]) -> None:
        """Create the counters of these models at 0 (every status and error type): a series
        exists before its first request, so Prometheus' increase() sees it start at zero."""
        for m in models:
            key = (m.id, m.provider_name)
            with self._lock:
                if key in self._declared:
                    continue
                self._declared.add(key)
            self.requests.labels(m.id, m.provider_name, "ok", "")
            self.requests.labels(m.id, m.provider_name, "cancelled", "")
            for et in (*ERROR_TYPES, OTHER):
                self.requests.labels(m.id, m.provider_name, "error", et)
            self.user_requests.labels(m.id, m.provider_name)
            self.retries.labels(m.id, "")
            self.fallbacks.labels(m.id, "")
            self.cost.labels(m.id)
            self.unpriced.labels(m.id)

    def on_record(self, r: RequestRecord) -> None:
        """Count one record (a Monitor listener: after the commit, off the request path)."""
        status = r.status if r.status in STATUSES else OTHER
        err = error_label(r.error_type)
        self.requests.labels(r.model, r.provider, status, err).inc()
        if r.attempt == 1:
            self.user_requests.labels(r.model, r.provider).inc()
        else:
            self.retries.labels(r.model, error_label(r.retry_reason)).inc()
        if r.fallback_from:
            self.fallbacks.labels(r.model, r.fallback_from).inc()
        if r.cost_usd is not None:
            self.cost.labels(r.model).inc(float(r.cost_usd))
        else:
            self.unpriced.labels(r.model).inc()
        if r.error_type in LOCAL_REFUSALS:
            return  # no model was asked: no GenAI operation to time
        genai = (OPERATION, r.provider, r.provider_model)
        outcome = "cancelled" if r.status == "cancelled" else err  # the GenAI series have no status label
        if r.latency_s is not None:
            self.duration.labels(*genai, outcome).observe(r.latency_s)
        if r.ttft_s is not None:
            self.ttfc.labels(*genai, outcome).observe(r.ttft_s)
        if r.input_tokens is not None:
            self.tokens.labels(*genai, "input").observe(r.input_tokens)
        if r.output_tokens is not None:
            self.tokens.labels(*genai, "output").observe(r.output_tokens)

    # -- the HTTP server --------------------------------------------------------------
    def start(self) -> None:
        """Serve /metrics on [prometheus] host:port in a thread. Idempotent."""
        if self._server is not None:
            return
        app = make_wsgi_app(self.registry)
        if self.token is not None:
            app = _with_token(app, self.token)
        host, port = self.config.host, self.config.port
        try:
            self._server = make_server(host, port, app, _ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:
            raise OSError(f"[prometheus] cannot serve /metrics on {host}:{port}: {exc.strerror or exc}") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="chatwatch-prometheus", kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics%s", self.config.host, self.port, " (token)" if self.token else "")

    @property
    def port(self) -> int:
        """The port actually bound (the configured one, or the free one picked for 0)."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/metrics"

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and join the thread. Idempotent."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
