"""OpenTelemetry export, end to end: real requests through `Runtime.chat` (the real
in-process SmolLM2, and a model on a closed port for an error attempt) reach an OTLP/HTTP
receiver on loopback, which decodes the protobuf bodies with opentelemetry-proto's own
request messages. Each span attribute is compared with the stored record's field (read back
from the store, written out here field by field, not through the exporter's mapping);
metrics carry the GenAI bucket bounds and the right counts; text appears only with both
content switches on; a hanging or dead collector never slows a reply and close() is bounded."""

from __future__ import annotations

import bisect
import json
import statistics
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from chatwatch import __version__, config
from chatwatch.models.contract import GenerationSettings, Message, ModelError
from chatwatch.models.registry import ModelRegistry
from chatwatch.reports.queries import Filters, list_requests
from chatwatch.runtime import Runtime
from tests.fixtures.paths import free_port

PROMPT = [Message("user", "Say hi in three words.")]
GEN = GenerationSettings(temperature=0.5, top_p=0.9, max_tokens=8, seed=3)
# The GenAI conventions' buckets, written out (the exporter has its own copy).
SECONDS_BOUNDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BOUNDS = [4**i for i in range(14)]


class OtlpReceiver:
    """An OTLP/HTTP collector on 127.0.0.1: keeps every decoded export request."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/traces":
                    msg, reply = ExportTraceServiceRequest.FromString(body), ExportTraceServiceResponse()
                    target = receiver.traces
                elif self.path == "/v1/metrics":
                    msg, reply = ExportMetricsServiceRequest.FromString(body), ExportMetricsServiceResponse()
                    target = receiver.metrics
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver._cond:
                    target.append(msg)
                    receiver.headers.append(dict(self.headers))
                    receiver._cond.notify_all()
                out = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def spans(self) -> list[tuple[dict, Span]]:
        """(resource attributes, span) for every span received."""
        out = []
        for req in self.traces:
            for rs in req.resource_spans:
                resource = _attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, s) for s in ss.spans)
        return out

    def histogram_points(self, name: str) -> list:
        """Data points of the named histogram in the last metrics export that has it
        (cumulative temporality: the last one holds the totals)."""
        found = []
        for req in self.metrics:
            points = [
                p
                for rm in req.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == name
                for p in m.histogram.data_points
            ]
            if points:
                found = points
        return found

    def metric_units(self) -> dict[str, str]:
        return {
            m.name: m.unit
            for req in self.metrics
            for rm in req.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind)


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def models() -> Iterator[ModelRegistry]:
    """One loaded SmolLM2 for the whole module (runtimes given it do not close it)."""
    registry = ModelRegistry()
    try:
        yield registry
    finally:
        registry.close()


def _settings(tmp_path, otel: dict | None, *, privacy_content: bool = False) -> config.Settings:
    raw = {
        "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs"), "instance": "otel-test"},
        "privacy": {"capture_content": privacy_content},
        "models": [
            {"id": "smollm2", "kind": "llama_cpp", "n_ctx": 1024},
            {
                "id": "closed",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "model": "nobody-home",
                "provider": "openai",
                "timeout_s": 5,
                "retries": 0,  # one attempt per request: spans of a retried request have a test of their own
            },
            {
                "id": "closed-retried",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "model": "nobody-home",
                "provider": "openai",
                "timeout_s": 5,
                "retries": 2,
                "retry_base_s": 0.01,
            },
        ],
    }
    if otel is not None:
        raw["otel"] = {"enabled": True, **otel}
    return config.parse(raw)


def _ask(rt: Runtime, model: str = "smollm2", conversation: str | None = "conv-7") -> float:
    t0 = time.perf_counter()
    try:
        with rt.chat(model, PROMPT, GEN, session_id="s-otel", conversation_id=conversation) as reply:
            for _ in reply:
                pass
    except ModelError:
        pass
    return time.perf_counter() - t0


def _records(rt: Runtime) -> dict:
    return {r.id: r for r in list_requests(rt.store, Filters()).records}


def _close(rt: Runtime) -> None:
    rt.monitor.drain()  # every record has reached the listeners before the exporter closes
    rt.close()


def _expected_attributes(r) -> dict:
    """The record's fields under their OTel names, written out one by one."""
    want = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": r.provider,
        "gen_ai.request.model": r.provider_model,
        "gen_ai.request.temperature": r.temperature,
        "gen_ai.request.top_p": r.top_p,
        "gen_ai.request.max_tokens": r.max_tokens,
        "chatwatch.model": r.model,
        "chatwatch.record_id": r.id,
        "chatwatch.request_id": r.request_id,
        "chatwatch.attempt": r.attempt,
        "chatwatch.status": r.status,
        "chatwatch.mode": r.mode,
        "chatwatch.stream": r.stream,
        "chatwatch.queue_s": r.queue_s,
        "chatwatch.price_source": r.price_source,
    }
    optional = {
        "gen_ai.response.model": r.response_model,
        "gen_ai.usage.input_tokens": r.input_tokens,
        "gen_ai.usage.output_tokens": r.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": r.cache_read_tokens,
        "gen_ai.response.time_to_first_chunk": r.ttft_s,
        "error.type": r.error_type,
        "gen_ai.conversation.id": r.conversation_id,
        "chatwatch.retry_reason": r.retry_reason,
        "chatwatch.fallback_from": r.fallback_from,
        "chatwatch.compare_id": r.compare_id,
        "chatwatch.token_source": r.token_source,
    }
    want.update({k: v for k, v in optional.items() if v is not None})
    if r.finish_reason is not None:
        want["gen_ai.response.finish_reasons"] = [r.finish_reason]
    if r.cost_usd is not None:
        want["chatwatch.cost_usd"] = r.cost_usd  # compared as a Decimal: exact, whatever its text
    return want


def test_spans_and_metrics_equal_the_records(tmp_path, receiver, models):
    rt = Runtime(_settings(tmp_path, {"endpoint": receiver.endpoint}), role="cli", models=models)
    _ask(rt)  # the real SmolLM2
    _ask(rt, "closed", conversation=None)  # connection refused: an error attempt
    records = _records(rt)
    _close(rt)
    assert len(records) == 2
    ok = next(r for r in records.values() if r.status == "ok")
    err = next(r for r in records.values() if r.status == "error")
    assert ok.input_tokens and ok.output_tokens and ok.ttft_s is not None and ok.cost_usd == 0
    assert err.error_type and err.model == "closed"

    spans = receiver.spans()
    assert len(spans) == 2
    by_record = {_attrs(s.attributes)["chatwatch.record_id"]: (res, s) for res, s in spans}
    assert set(by_record) == set(records)
    for rid, (resource, span) in by_record.items():
        r = records[rid]
        assert resource["service.name"] == "chatwatch"
        assert resource["service.instance.id"] == "otel-test"
        assert resource["service.version"] == __version__
        assert span.name == f"chat {r.provider_model}"
        assert span.kind == Span.SPAN_KIND_CLIENT
        got = _attrs(span.attributes)
        if "chatwatch.cost_usd" in got:
            assert "E" not in got["chatwatch.cost_usd"].upper()  # plain decimal text, no exponent
            got["chatwatch.cost_usd"] = Decimal(got["chatwatch.cost_usd"])
        assert got == _expected_attributes(r), rid
        assert "gen_ai.input.messages" not in got and "gen_ai.output.messages" not in got  # content off by default
        # The record's own times: started_at + queue, then the latency.
        start_ns = round(r.started_at.timestamp() * 1e6) * 1000 + round(r.queue_s * 1e9)
        assert abs(span.start_time_unix_nano - start_ns) <= 1000
        length = span.end_time_unix_nano - span.start_time_unix_nano
        assert abs(length - round((r.latency_s or 0.0) * 1e9)) <= 1000
    assert by_record[ok.id][1].status.code != Status.STATUS_CODE_ERROR
    err_span = by_record[err.id][1]
    assert err_span.status.code == Status.STATUS_CODE_ERROR
    assert err_span.status.message == err.error_message

    # Metrics: the conventions' bounds, one observation per record where the value exists.
    assert receiver.metric_units() == {
        "gen_ai.client.operation.duration": "s",
        "gen_ai.client.operation.time_to_first_chunk": "s",
        "gen_ai.client.token.usage": "{token}",
    }
    with_latency = [r for r in records.values() if r.latency_s is not None]
    durations = receiver.histogram_points("gen_ai.client.operation.duration")
    assert len(durations) == len(with_latency)
    for point in durations:
        a = _attrs(point.attributes)
        r = next(x for x in with_latency if x.model == a["chatwatch.model"])
        assert list(point.explicit_bounds) == SECONDS_BOUNDS
        assert point.count == 1 and point.sum == pytest.approx(r.latency_s, abs=1e-12)
        bucket = bisect.bisect_left(SECONDS_BOUNDS, r.latency_s)  # buckets are (lo, hi]
        assert [i for i, n in enumerate(point.bucket_counts) if n] == [bucket]
        assert a.get("error.type") == r.error_type
        assert a["gen_ai.provider.name"] == r.provider and a["gen_ai.request.model"] == r.provider_model
        assert not {"chatwatch.record_id", "chatwatch.request_id", "gen_ai.conversation.id"} & set(a)

    (ttfc,) = receiver.histogram_points("gen_ai.client.operation.time_to_first_chunk")
    assert list(ttfc.explicit_bounds) == SECONDS_BOUNDS
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(ok.ttft_s, abs=1e-12)
    assert _attrs(ttfc.attributes)["chatwatch.model"] == "smollm2"

    tokens = {
        (_attrs(p.attributes)["chatwatch.model"], _attrs(p.attributes)["gen_ai.token.type"]): p
        for p in receiver.histogram_points("gen_ai.client.token.usage")
    }
    want_tokens = {
        (r.model, kind): n
        for r in records.values()
        for kind, n in (("input", r.input_tokens), ("output", r.output_tokens))
        if n is not None
    }
    assert {k: (p.count, p.sum) for k, p in tokens.items()} == {k: (1, n) for k, n in want_tokens.items()}
    assert all(list(p.explicit_bounds) == TOKEN_BOUNDS for p in tokens.values())


@pytest.mark.parametrize(
    ("otel_content", "privacy_content", "attached"),
    [(False, True, False), (True, False, False), (True, True, True)],
)
def test_content_only_with_both_switches_on(tmp_path, receiver, models, otel_content, privacy_content, attached):
    settings = _settings(
        tmp_path, {"endpoint": receiver.endpoint, "capture_content": otel_content}, privacy_content=privacy_content
    )
    rt = Runtime(settings, role="cli", models=models)
    _ask(rt)
    (record,) = _records(rt).values()
    _close(rt)
    ((_, span),) = receiver.spans()
    got = _attrs(span.attributes)
    if not attached:
        assert "gen_ai.input.messages" not in got and "gen_ai.output.messages" not in got
        return
    assert record.prompt_text == PROMPT[-1].content and record.response_text
    assert json.loads(got["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": record.prompt_text}]}
    ]
    assert json.loads(got["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": record.response_text}],
            "finish_reason": record.finish_reason,
        }
    ]


def test_each_attempt_of_a_retried_request_is_a_span_of_its_own(tmp_path, receiver, models):
    rt = Runtime(_settings(tmp_path, {"endpoint": receiver.endpoint}), role="cli", models=models)
    _ask(rt, "closed-retried")
    records = sorted(_records(rt).values(), key=lambda r: r.attempt)
    _close(rt)
    assert [r.attempt for r in records] == [1, 2, 3]
    spans = sorted((_attrs(s.attributes) for _, s in receiver.spans()), key=lambda a: a["chatwatch.attempt"])
    assert [a["chatwatch.record_id"] for a in spans] == [r.id for r in records]
    assert {a["chatwatch.request_id"] for a in spans} == {records[0].id}
    assert [a.get("chatwatch.retry_reason") for a in spans] == [None, "connection", "connection"]
    assert all(a["error.type"] == "connection" for a in spans)


def test_headers_come_from_the_named_variable(tmp_path, receiver, models, monkeypatch):
    monkeypatch.setenv("OTEL_TEST_HEADERS", "authorization=Bearer%20s3cr3t-collector-key,x-team=chat")
    rt = Runtime(
        _settings(tmp_path, {"endpoint": receiver.endpoint, "headers_env": "OTEL_TEST_HEADERS"}),
        role="cli",
        models=models,
    )
    _ask(rt, "closed")
    _close(rt)
    assert receiver.headers
    for h in receiver.headers:
        lower = {k.lower(): v for k, v in h.items()}
        assert lower["authorization"] == "Bearer s3cr3t-collector-key" and lower["x-team"] == "chat"
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.jsonl"))
    assert "s3cr3t-collector-key" not in logs


@pytest.mark.parametrize("collector", ["hanging", "dead"])
def test_a_broken_collector_never_delays_a_reply(tmp_path, models, hanging_webhook, monkeypatch, collector):
    """Exports run every 100 ms (spans) and 200 ms (metrics) against a collector that accepts
    and never answers, or a closed port: replies take as long as with OTel off."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the SDK's own knob: export while we chat
    endpoint = f"http://127.0.0.1:{hanging_webhook.port if collector == 'hanging' else free_port()}"
    timeout_s = 2.0
    rounds = 4

    def replies(otel: dict | None, folder: str) -> tuple[list[float], float]:
        rt = Runtime(_settings(tmp_path / folder, otel), role="cli", models=models)
        _ask(rt)  # warm-up
        times = [_ask(rt) for _ in range(rounds)]
        rt.monitor.drain()
        t0 = time.perf_counter()
        rt.close()
        return times, time.perf_counter() - t0

    plain, _ = replies(None, "off")
    broken, close_s = replies({"endpoint": endpoint, "timeout_s": timeout_s, "metric_interval_s": 0.2}, "on")
    if collector == "hanging":
        assert hanging_webhook.connections  # the exporter did reach it, and got no answer
    # Generous margin: a shared 2-core machine; a blocked reply would take >= timeout_s more.
    assert statistics.median(broken) <= statistics.median(plain) * 1.5 + 0.3, (plain, broken)
    assert max(broken) < max(plain) + timeout_s, (plain, broken)
    assert close_s <= timeout_s + 1.0, close_s
