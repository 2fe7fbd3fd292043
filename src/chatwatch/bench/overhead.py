"""What the instrumentation adds to a request: a replayed 200-chunk stream (no model time)
read bare, through the Monitor (record, price, memory samples, log lines and the SQLite
commit included), and through a Monitor with the Prometheus and OpenTelemetry exporters
listening (Prometheus serving /metrics on loopback, OTel exporting spans and metrics over
OTLP/HTTP to a loopback receiver every second), interleaved in one run so both columns see
the same machine; then compared with real SmolLM2 requests of the same run.
Percentiles are chatwatch.reports.percentile's (numpy linear), the same as the dashboard's;
the target is added p99 <= 1 ms, with and without the exporters. A last column times what the
attempt chain (resilience/chain.py: request checks, window fit, gates, breaker) adds on top
of the Monitor for a request that needs none of its help: nothing configured to refuse it,
its breaker closed, no retry."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from chatwatch.reports.percentile import percentile

HELP = "time the monitor adds per request (commit included) vs a real local request"


def add_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--model-runs", type=int, default=5, dest="model_runs")
    parser.add_argument(
        "--export-interval",
        type=float,
        default=0.2,
        dest="export_interval",
        help="seconds between OTel metric exports and between /metrics scrapes (default 0.2: 75 times more "
        "often than [otel] metric_interval_s's default and Prometheus' usual 15 s, so that several land "
        "in every block of timed requests: an upper bound)",
    )


class ReplayModel:
    """A model that replays a recorded stream instantly: only chatwatch's own cost is left."""

    provider = "replay"
    provider_model = "replay"

    def __init__(self, chunks: Sequence[str]):
        self.id = "replay"
        self._chunks = list(chunks)

    def chat(self, messages, settings, *, stream=True, on_wait=None, deadline=None):
        from chatwatch.models.contract import ChatStream, StreamProgress, StreamResult, Usage

        progress = StreamProgress()

        def gen() -> Generator[str, None, StreamResult]:
            progress.mark_started()
            for c in self._chunks:
                progress.output_tokens += 1
                yield c
            return StreamResult("".join(self._chunks), "stop", Usage(20, len(self._chunks), "counted"))

        return ChatStream(gen(), progress)

    def check(self):
        from chatwatch.models.contract import Availability

        return Availability(True, "replay")


def run(args, settings) -> dict:
    from chatwatch.config import parse
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.runtime import Runtime

    with tempfile.TemporaryDirectory(prefix="chatwatch-bench-overhead-") as scratch:
        cfg = parse(
            {
                "app": {"data_dir": str(Path(scratch) / "data"), "log_dir": str(Path(scratch) / "logs")},
                "models": [
                    {"id": "replay", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "provider": "replay"}
                ],
            }
        )
        added, burst, exp_added, exp_burst, chain_added = _replayed(args, cfg)
        # The real thing, same run: SmolLM2 requests through the full runtime.
        local = next(m for m in settings.models if m.kind == "llama_cpp")
        times = []
        with Runtime(cfg.model_copy(update={"models": [local]}), role="bench") as rt:
            for i in range(args.model_runs + 1):
                t0 = time.perf_counter()
                with rt.chat(
                    local.id,
                    [Message("user", "Explain in a few sentences why the sky is blue.")],
                    GenerationSettings(max_tokens=local.defaults.max_tokens, seed=i),
                    session_id="bench",
                ) as s:
                    for _ in s:
                        pass
                if i:  # the first includes the model load
                    times.append(time.perf_counter() - t0)
    p50, p99 = percentile(added, 50), percentile(added, 99)
    burst_p50, burst_p99 = percentile(burst, 50), percentile(burst, 99)
    model_s = percentile(times, 50)
    print(f"median SmolLM2 request: {model_s:.3f} s over {len(times)} runs")
    return {
        "bench": "overhead",
        "runs": args.runs,
        "chunks": args.chunks,
        "added_p50_ms": round(p50 * 1e3, 4),
        "added_p99_ms": round(p99 * 1e3, 4),
        "back_to_back_added_p50_ms": round(burst_p50 * 1e3, 4),
        "back_to_back_added_p99_ms": round(burst_p99 * 1e3, 4),
        "export_interval_s": args.export_interval,
        "exporters_added_p50_ms": round(percentile(exp_added, 50) * 1e3, 4),
        "exporters_added_p99_ms": round(percentile(exp_added, 99) * 1e3, 4),
        "exporters_back_to_back_added_p50_ms": round(percentile(exp_burst, 50) * 1e3, 4),
        "exporters_back_to_back_added_p99_ms": round(percentile(exp_burst, 99) * 1e3, 4),
        "chain_added_p50_ms": round(percentile(chain_added, 50) * 1e3, 4),
        "chain_added_p99_ms": round(percentile(chain_added, 99) * 1e3, 4),
        "model_request_s": round(model_s, 4),
        "overhead_ratio": round(p50 / model_s, 6),
    }


BLOCKS = 4  # alternating blocks per column, each a few export intervals long: both see the same minutes


def _replayed(args, cfg) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Time added per request by the Monitor, plain and with both exporters listening:
    settled (log writer and listeners idle) and back to back.

    The two columns run in alternating blocks rather than request by request: the exporters'
    threads (span batches, metric exports every second, scrapes) would otherwise run during
    the plain column too. Each exporter block builds its own Monitor, Prometheus exporter,
    OTel exporter and scraper, and closes them before the next plain block."""
    from chatwatch.logs.configure import configure_logging
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.resilience.breaker import Breakers
    from chatwatch.resilience.budget import Budgets
    from chatwatch.resilience.cache import ResponseCache
    from chatwatch.resilience.chain import Chain
    from chatwatch.resilience.gates import Gates
    from chatwatch.resilience.ratelimit import RateLimits
    from chatwatch.store.records import Store
    from chatwatch.telemetry.monitor import Monitor

    logs = configure_logging(cfg.app.log_dir, role="bench", instance="bench", console=False)
    store = Store.open(cfg.store_url)
    # Each column writes its own SQLite file, so each store sees `runs` commits, as the plain
    # column always has (a store's tail latency grows with the commits it has taken).
    exporters_store = Store.open(f"sqlite:///{Path(cfg.app.data_dir) / 'exporters.db'}")
    # SQLite's automatic WAL checkpoint (every 1,000 pages: about one commit in 150 here) is
    # a few milliseconds of fsync that lands on whichever request crosses it, in whichever
    # column: it swamps the exporters' difference at p99 (seen: the sign of that difference
    # flipping between runs). So checkpoints run between blocks, untimed, in both stores
    # alike; the store's own cost is `bench ingest`'s.
    for s in (store, exporters_store):
        sa.event.listen(s.engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA wal_autocheckpoint = 0"))
        s.engine.dispose()

    def checkpoint() -> None:
        for s in (store, exporters_store):
            with s.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    plain = Monitor(cfg, store, instance="bench")
    model = ReplayModel([f"tok{i} " for i in range(args.chunks)])
    messages = [Message("user", "Replay, please.")]
    gen = GenerationSettings(max_tokens=args.chunks)

    def bare() -> float:
        t0 = time.perf_counter()
        with model.chat(messages, gen) as s:
            for _ in s:
                pass
        return time.perf_counter() - t0

    def monitored(monitor: Monitor) -> float:
        t0 = time.perf_counter()
        with monitor.chat(model, cfg.models[0], messages, gen, session_id="bench") as s:
            for _ in s:
                pass
        return time.perf_counter() - t0

    class _OneModel:  # the chain's model registry: always the replay model
        def get(self, config):
            return model

    breakers = Breakers(store.engine, cfg.models, instance="bench")
    gates = Gates(
        RateLimits(store.engine, cfg),
        Budgets(store.engine, cfg, plain.pricer, instance="bench"),
        ResponseCache(store.engine),
    )
    chain = Chain(cfg, plain, _OneModel(), breakers, gates)

    def chained() -> float:
        t0 = time.perf_counter()
        with chain.chat(cfg.models[0].id, messages, gen, session_id="bench") as s:
            for _ in s:
                pass
        return time.perf_counter() - t0

    def chain_column(runs: int) -> list[float]:
        """Chain minus Monitor, in pairs of alternating order, settled like the first column."""
        for _ in range(20):
            monitored(plain), chained()
        added = []
        for i in range(runs):
            if i % 200 == 0:
                checkpoint()
            logs.flush()
            plain.drain()
            if i % 2:
                m, c = monitored(plain), chained()
            else:
                c, m = chained(), monitored(plain)
            added.append(c - m)
        return added

    def block(monitor: Monitor, runs: int, settle: bool) -> list[float]:
        for _ in range(20):  # warm-up of this block's monitor (untimed)
            bare(), monitored(monitor)
        added = []
        for i in range(runs):
            if settle:
                # Untimed: let the log writer thread finish the previous request's lines and
                # the listeners see its record, as they have long done between two chat
                # requests (seconds apart, not 0.5 ms). The exporters' own threads keep their
                # schedule.
                logs.flush()
                monitor.drain()
            if i % 2:
                b, m = bare(), monitored(monitor)
            else:
                m, b = monitored(monitor), bare()
            added.append(m - b)
        return added

    def measure(receiver: _Receiver, settle: bool) -> tuple[list[float], list[float]]:
        added, with_exporters = [], []
        per_block = max(1, args.runs // BLOCKS)
        posts, scrapes = dict(receiver.posts), 0
        for _ in range(BLOCKS):
            checkpoint()
            added += block(plain, per_block, settle)
            checkpoint()
            with _exporters(cfg, exporters_store, receiver.endpoint, args.export_interval) as (watched, scraper):
                with_exporters += block(watched, per_block, settle)
                scrapes += scraper.scrapes
        sent = {path: n - posts.get(path, 0) for path, n in receiver.posts.items()}
        print(
            f"  during the exporters' column: {scrapes} scrapes, {sent.get('/v1/metrics', 0)} OTLP metric and "
            f"{sent.get('/v1/traces', 0)} span exports (one of each per block is its close)"
        )
        return added, with_exporters

    def line(name: str, values: list[float]) -> str:
        return f"  {name:<28}p50 {percentile(values, 50) * 1e3:.3f} ms, p99 {percentile(values, 99) * 1e3:.3f} ms"

    try:
        with _otlp_receiver() as receiver:
            for _ in range(50):  # warm-up: imports, SQLAlchemy's compiled cache, pooled connections
                bare(), monitored(plain)
            print(f"{args.runs // BLOCKS * BLOCKS} runs of {args.chunks} chunks per column, added per request:")
            added, exp_added = measure(receiver, settle=True)
            print(line("monitor", added))
            print(line("monitor + Prometheus/OTel", exp_added))
            # Back to back, thousands of requests a second: the log writer's backlog then competes
            # with each request for the GIL at every system call. Reported, not the target.
            print("back to back:")
            burst, exp_burst = measure(receiver, settle=False)
            print(line("monitor", burst))
            print(line("monitor + Prometheus/OTel", exp_burst))
            chain_added = chain_column(args.runs // 2)
            print(line("the chain over the monitor", chain_added))
    finally:
        breakers.close()
        plain.close()
        store.close()
        exporters_store.close()
        logs.close()
    return added, burst, exp_added, exp_burst, chain_added


@contextmanager
def _exporters(cfg, store, endpoint: str, interval_s: float) -> Iterator:
    """A Monitor with chatwatch's two exporters listening, as `chatwatch run` has them:
    Prometheus serving /metrics on loopback (scraped every `interval_s`) and OpenTelemetry
    exporting to `endpoint` (spans in the SDK's batches, metrics every `interval_s`)."""
    from chatwatch.config import PrometheusConfig
    from chatwatch.exporters.otel import OtelExporter
    from chatwatch.exporters.prometheus import PrometheusExporter
    from chatwatch.telemetry.monitor import Monitor

    otel_cfg = cfg.model_copy(
        update={
            "otel": cfg.otel.model_copy(update={"enabled": True, "endpoint": endpoint, "metric_interval_s": interval_s})
        }
    )
    prometheus = PrometheusExporter(PrometheusConfig(enabled=True, port=0))
    prometheus.declare(cfg.models)
    prometheus.start()
    otel = OtelExporter(otel_cfg, instance="bench-exporters")
    scraper = _Scraper(prometheus.url, interval_s)
    monitor = Monitor(otel_cfg, store, instance="bench-exporters")
    monitor.add_listener(prometheus.on_record)
    monitor.add_listener(otel.on_record)
    try:
        yield monitor, scraper
    finally:
        monitor.close()  # hands its last records to the exporters before they close
        scraper.close()
        otel.close()
        prometheus.close()


class _Scraper:
    """GETs /metrics every `interval_s` on its own thread, as a Prometheus server would."""

    def __init__(self, url: str, interval_s: float) -> None:
        self.url, self.interval_s, self.scrapes = url, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-scraper")
        self._thread.start()

    def _loop(self) -> None:
        import urllib.request

        while not self._stop.wait(self.interval_s):
            with urllib.request.urlopen(self.url, timeout=5) as resp:
                resp.read()
            self.scrapes += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Receiver:
    endpoint: str
    posts: dict[str, int]


@contextmanager
def _otlp_receiver() -> Iterator[_Receiver]:
    """A loopback OTLP/HTTP endpoint that takes every export and answers 200 with an empty
    response (what a collector does), so the exporter does its whole job: encode, send, wait."""
    receiver = _Receiver()
    receiver.posts = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.posts[self.path] = receiver.posts.get(self.path, 0) + 1
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="bench-otlp")
    thread.start()
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
