"""What the instrumentation adds to a request: a replayed 200-chunk stream (no model time)
read bare and through the Monitor (record, price, memory samples, log lines and the SQLite
commit included), interleaved; then compared with real SmolLM2 requests of the same run.
Percentiles are chatwatch.reports.percentile's (numpy linear), the same as the dashboard's;
the target is added p99 <= 1 ms."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Generator, Sequence
from pathlib import Path

from chatwatch.reports.percentile import percentile

HELP = "time the monitor adds per request (commit included) vs a real local request"


def add_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--model-runs", type=int, default=5, dest="model_runs")


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
        added, burst = _replayed(args, cfg)
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
        "model_request_s": round(model_s, 4),
        "overhead_ratio": round(p50 / model_s, 6),
    }


def _replayed(args, cfg) -> tuple[list[float], list[float]]:
    """Time added per request by the Monitor: settled (log writer idle) and back to back."""
    from chatwatch.logs.configure import configure_logging
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.store.records import Store
    from chatwatch.telemetry.monitor import Monitor

    logs = configure_logging(cfg.app.log_dir, role="bench", instance="bench", console=False)
    store = Store.open(cfg.store_url)
    monitor = Monitor(cfg, store, instance="bench")
    model = ReplayModel([f"tok{i} " for i in range(args.chunks)])
    messages = [Message("user", "Replay, please.")]
    gen = GenerationSettings(max_tokens=args.chunks)

    def bare() -> float:
        t0 = time.perf_counter()
        with model.chat(messages, gen) as s:
            for _ in s:
                pass
        return time.perf_counter() - t0

    def monitored() -> float:
        t0 = time.perf_counter()
        with monitor.chat(model, cfg.models[0], messages, gen, session_id="bench") as s:
            for _ in s:
                pass
        return time.perf_counter() - t0

    def measure(settle: bool) -> list[float]:
        added = []
        for i in range(args.runs):
            if settle:
                # Untimed: let the log writer thread finish the previous request's lines, as it
                # has long done between two chat requests (seconds apart, not 0.5 ms).
                logs.flush()
            if i % 2:
                b, m = bare(), monitored()
            else:
                m, b = monitored(), bare()
            added.append(m - b)
        return added

    try:
        for _ in range(50):  # warm-up: imports, SQLAlchemy's compiled cache, pooled connections
            bare(), monitored()
        added = measure(settle=True)
        print(
            f"{args.runs} runs of {args.chunks} chunks: added p50 {percentile(added, 50) * 1e3:.3f} ms, "
            f"p99 {percentile(added, 99) * 1e3:.3f} ms"
        )
        # Back to back, thousands of requests a second: the log writer's backlog then competes
        # with each request for the GIL at every system call. Reported, not the target.
        burst = measure(settle=False)
        print(f"back to back: added p50 {percentile(burst, 50) * 1e3:.3f} ms, p99 {percentile(burst, 99) * 1e3:.3f} ms")
    finally:
        monitor.close()
        store.close()
        logs.close()
    return added, burst
