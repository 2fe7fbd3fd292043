"""OpenTelemetry export: one span per attempt record and the GenAI client metrics, sent over
OTLP/HTTP with the SDK's own exporters, so a team's collector (Jaeger, Tempo, Grafana, any
OTLP backend) sees chatwatch's requests with no glue.

Why it is built this way:
- Its OWN TracerProvider and MeterProvider, never the global ones: `set_tracer_provider` is
  process-wide and set-once, while chatwatch runs one runtime per configuration and swaps
  them on a config change (runtime/process.py). Each exporter closes what it built.
- Records reach `on_record` after their commit, on the monitor's listener thread; spans
  then wait in the BatchSpanProcessor's bounded queue and metrics in the SDK's aggregation
  until the PeriodicExportingMetricReader's thread sends them. A dead or hanging collector
  therefore never delays a reply: exports run on the SDK's threads, each bounded by
  [otel] timeout_s, and a full queue drops spans (the SDK logs it) instead of blocking.
- Spans carry the record's own times (started_at + queue, + latency): the span says when the
  model worked, not when the listener happened to run.

Names follow the OpenTelemetry GenAI semantic conventions (client spans and metrics,
https://opentelemetry.io/docs/specs/semconv/gen-ai/): span `chat {gen_ai.request.model}`,
kind CLIENT; `gen_ai.usage.cache_read.input_tokens` (the current name; it replaced
`gen_ai.usage.cache_read_input_tokens`); time to first chunk as the span attribute
`gen_ai.response.time_to_first_chunk` (seconds) and the metric
`gen_ai.client.operation.time_to_first_chunk` (reported for streaming calls only, as the
conventions say); `gen_ai.client.operation.duration` with the conventions' explicit bucket
boundaries 0.01 … 81.92 s, and `gen_ai.client.token.usage` by `gen_ai.token.type` with the
conventions' token buckets. Content (`gen_ai.input.messages`, `gen_ai.output.messages`, in
the conventions' JSON message shape) is attached only when both [otel] capture_content and
[privacy] capture_content are on — the record carries redacted text only then.

chatwatch's own attempt fields go under `chatwatch.*`; the cost as exact decimal text
(`chatwatch.cost_usd`), omitted when the price is unknown (`chatwatch.price_source` then says
"unpriced": never a $0). Header values (an API key for a hosted collector) come from the
environment variable named by [otel] headers_env; they are registered as secrets so no log
line can carry them, and they are never logged, recorded or exported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.re import parse_env_headers

from chatwatch import __version__
from chatwatch.config import Settings
from chatwatch.privacy import register_secret
from chatwatch.store.record import RequestRecord, exact_usd

log = logging.getLogger(__name__)

# GenAI semantic conventions, client metrics: the recommended explicit bucket boundaries.
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

OPERATION_DURATION = "gen_ai.client.operation.duration"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
TOKEN_USAGE = "gen_ai.client.token.usage"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution


def record_times_ns(record: RequestRecord) -> tuple[int, int]:
    """Span start and end in ns since the epoch: the model's work starts after the queue
    (waiting for a local model's lock) and lasts the latency; a record with no latency (an
    attempt refused or failed before the model started) is a zero-length span."""
    started_us = (record.started_at - _EPOCH) // _MICROSECOND
    start = started_us * 1000 + round(record.queue_s * 1e9)
    end = start + (round(record.latency_s * 1e9) if record.latency_s is not None else 0)
    return start, end


class OtelExporter:
    """Spans and GenAI metrics of every record, exported over OTLP/HTTP off the request path.

    `on_record(record)` is a Monitor listener; `close()` flushes what is queued and stops the
    SDK's threads, waiting at most about [otel] timeout_s (half for spans, half for metrics)."""

    def __init__(self, settings: Settings, *, instance: str) -> None:
        cfg = settings.otel
        self._timeout_s = cfg.timeout_s
        self._capture_content = cfg.capture_content and settings.privacy.capture_content
        self._closed = False
        self._lock = threading.Lock()
        headers = _headers(cfg.headers_env)
        resource = Resource.create(
            {"service.name": cfg.service_name, "service.instance.id": instance, "service.version": __version__}
        )
        self._span_exporter = OTLPSpanExporter(
            endpoint=f"{cfg.endpoint}/v1/traces", headers=headers, timeout=cfg.timeout_s
        )
        self._tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._tracer_provider.add_span_processor(BatchSpanProcessor(self._span_exporter))
        self._tracer = self._tracer_provider.get_tracer("chatwatch", __version__)
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{cfg.endpoint}/v1/metrics", headers=headers, timeout=cfg.timeout_s),
            export_interval_millis=cfg.metric_interval_s * 1000,
            export_timeout_millis=cfg.timeout_s * 1000,
        )
        seconds = ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S)
        self._meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[reader],
            views=[
                View(instrument_name=OPERATION_DURATION, aggregation=seconds),
                View(instrument_name=TIME_TO_FIRST_CHUNK, aggregation=seconds),
                View(instrument_name=TOKEN_USAGE, aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)),
            ],
            shutdown_on_exit=False,
        )
        meter = self._meter_provider.get_meter("chatwatch", __version__)
        self._duration = meter.create_histogram(OPERATION_DURATION, unit="s", description="GenAI operation duration.")
        self._ttfc = meter.create_histogram(
            TIME_TO_FIRST_CHUNK, unit="s", description="Time to receive the first chunk of a streamed reply."
        )
        self._tokens = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used."
        )
        log.info("OpenTelemetry export to %s (service %s)", cfg.endpoint, cfg.service_name)

    # -- the listener ----------------------------------------------------------------------
    def on_record(self, record: RequestRecord) -> None:
        with self._lock:
            if self._closed:  # a reply that outlived its runtime: its exporter is gone
                return
            self._span(record)
            self._metrics(record)

    def _span(self, r: RequestRecord) -> None:
        start, end = record_times_ns(r)
        span = self._tracer.start_span(
            f"chat {r.provider_model}", kind=SpanKind.CLIENT, start_time=start, attributes=span_attributes(r)
        )
        if self._capture_content:
            for key, value in content_attributes(r).items():
                span.set_attribute(key, value)
        if r.status == "error":
            span.set_status(Status(StatusCode.ERROR, r.error_message or r.error_type))
        span.end(end_time=end)

    def _metrics(self, r: RequestRecord) -> None:
        common = metric_attributes(r)
        if r.latency_s is not None:
            self._duration.record(r.latency_s, common)
        if r.stream and r.ttft_s is not None:
            self._ttfc.record(r.ttft_s, common)
        tokens = {k: v for k, v in common.items() if k != "error.type"}
        if r.input_tokens is not None:
            self._tokens.record(r.input_tokens, {**tokens, "gen_ai.token.type": "input"})
        if r.output_tokens is not None:
            self._tokens.record(r.output_tokens, {**tokens, "gen_ai.token.type": "output"})

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Send what is queued and stop the SDK's threads, in at most about timeout_s. With a
        collector that hangs, an export already in flight ends by its own timeout on its
        daemon thread; nothing waits for it here. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        half_s = self._timeout_s / 2
        # The span processor's shutdown takes no timeout (it may wait 30 s, one export
        # timeout per queued batch): it runs on its own thread, waited for half the bound.
        # Past that the exporter is shut down, so the batches still queued fail at once and
        # only the export in flight remains, ending by its own timeout (<= timeout_s).
        stopping = threading.Thread(target=self._tracer_provider.shutdown, name="chatwatch-otel-close", daemon=True)
        stopping.start()
        stopping.join(half_s)
        if stopping.is_alive():
            log.warning("OpenTelemetry collector did not take the last spans within %.1f s: dropped", half_s)
            self._span_exporter.shutdown()
        self._meter_provider.shutdown(timeout_millis=half_s * 1000)


def span_attributes(r: RequestRecord) -> dict:
    """The span's attributes from one record (None values are left out, as OTel requires)."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": r.provider,
        "gen_ai.request.model": r.provider_model,
        "gen_ai.response.model": r.response_model,
        "gen_ai.request.temperature": r.temperature,
        "gen_ai.request.top_p": r.top_p,
        "gen_ai.request.max_tokens": r.max_tokens,
        "gen_ai.usage.input_tokens": r.input_tokens,
        "gen_ai.usage.output_tokens": r.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": r.cache_read_tokens,
        "gen_ai.response.finish_reasons": [r.finish_reason] if r.finish_reason else None,
        "gen_ai.response.time_to_first_chunk": r.ttft_s,
        "gen_ai.conversation.id": r.conversation_id,
        "error.type": r.error_type,
        "chatwatch.model": r.model,
        "chatwatch.record_id": r.id,
        "chatwatch.request_id": r.request_id,
        "chatwatch.attempt": r.attempt,
        "chatwatch.retry_reason": r.retry_reason,
        "chatwatch.fallback_from": r.fallback_from,
        "chatwatch.status": r.status,
        "chatwatch.mode": r.mode,
        "chatwatch.compare_id": r.compare_id,
        "chatwatch.stream": r.stream,
        "chatwatch.queue_s": r.queue_s,
        "chatwatch.token_source": r.token_source,
        "chatwatch.price_source": r.price_source,
        "chatwatch.cost_usd": exact_usd(r.cost_usd) if r.cost_usd is not None else None,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def content_attributes(r: RequestRecord) -> dict:
    """Prompt and reply in the GenAI conventions' message shape (JSON text), when the record
    carries them (content capture on: already redacted by the Monitor)."""
    attrs = {}
    if r.prompt_text is not None:
        attrs["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": r.prompt_text}]}], ensure_ascii=False
        )
    if r.response_text is not None:
        message = {"role": "assistant", "parts": [{"type": "text", "content": r.response_text}]}
        if r.finish_reason:
            message["finish_reason"] = r.finish_reason
        attrs["gen_ai.output.messages"] = json.dumps([message], ensure_ascii=False)
    return attrs


def metric_attributes(r: RequestRecord) -> dict:
    """Bounded metric attributes: operation, provider, models and error type; never an id,
    a session or text."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": r.provider,
        "gen_ai.request.model": r.provider_model,
        "gen_ai.response.model": r.response_model,
        "chatwatch.model": r.model,
        "error.type": r.error_type,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def _headers(env_name: str | None) -> dict[str, str] | None:
    """Export headers from the environment variable named by [otel] headers_env, in the
    OTLP exporter format ("key=value,key2=value2", URL-encoded values allowed). The values
    are registered as secrets first, so even the SDK's own warning about a malformed entry
    reaches the log scrubbed."""
    if not env_name:
        return None
    raw = os.environ.get(env_name)
    if not raw:
        log.warning("[otel] headers_env names %s, which is not set: exporting without headers", env_name)
        return None
    for part in raw.split(","):
        register_secret(part.partition("=")[2].strip())
    register_secret(raw)
    headers = dict(parse_env_headers(raw, liberal=True))
    for value in headers.values():
        register_secret(value)
    if not headers:
        log.warning("[otel] %s holds no key=value header: exporting without headers", env_name)
    return headers or None
