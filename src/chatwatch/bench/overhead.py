"""What the instrumentation adds to a request: a replayed 200-chunk stream (no model time)
read bare and through the Monitor (record, price, memory samples, log lines and the SQLite
commit included), interleaved; then compared with real SmolLM2 requests of the same run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Generator, Sequence
from pathlib import Path

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

    def chat(self, messages, settings, *, stream=True, on_wait=None):
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


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(args, settings) -> dict:
    from chatwatch.config import parse
    from chatwatch.logs.configure import configure_logging
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.runtime import Runtime
    from chatwatch.store.records import Store
    from chatwatch.telemetry.monitor import Monitor

    scratch = Path(tempfile.mkdtemp(prefix="chatwatch-bench-overhead-"))
    cfg = parse(
        {
            "app": {"data_dir": str(scratch / "data"), "log_dir": str(scratch / "logs")},
            "models": [{"id": "replay", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "provider": "replay"}],
        }
    )
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

    for _ in range(50):  # warm-up: imports, prepared statements, caches
        bare(), monitored()

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

    added = measure(settle=True)
    p50, p99 = statistics.median(added), _percentile(added, 0.99)
    print(f"{args.runs} runs of {args.chunks} chunks: added p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")
    # Back to back, thousands of requests a second: the log writer's backlog then competes
    # with each request for the GIL at every system call. Reported, not the target.
    burst = measure(settle=False)
    burst_p50, burst_p99 = statistics.median(burst), _percentile(burst, 0.99)
    print(f"back to back: added p50 {burst_p50 * 1e3:.3f} ms, p99 {burst_p99 * 1e3:.3f} ms")

    # The real thing, same run: SmolLM2 requests through the full runtime.
    local = next(m for m in settings.models if m.kind == "llama_cpp")
    rt = Runtime(cfg.model_copy(update={"models": [local]}), role="bench")
    times = []
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
    rt.close()
    model_s = statistics.median(times)
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
