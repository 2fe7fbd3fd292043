"""What the response cache (resilience/cache.py, #12) gives a replayed workload: N requests
at temperature 0 in which a fixed share of the prompts repeat an earlier one, sent one after
another through `Runtime.chat` with the model's `cache = true`, in one run.

Why a benchmark of its own: the cache's worth is a hit rate, dollars not spent and the wait
a user no longer has, and all three are read from the run's own records (the records a
dashboard would show): `cache_hit`, `saved_usd` (exact decimals, summed as such) and the
wall time of each request as its caller saw it, hits against misses in the same run. The
store lives in a fresh folder (`--data-dir`, else a temporary one) with content capture on,
which the cache requires; the model is the configured one named by `--model` (default: the
first local model), e.g. a priced OpenAI-compatible endpoint for real dollars: a hit saves
what its original call cost, and an unpriced original saves an unknown amount, counted as
`unpriced_hits`, never as $0."""

from __future__ import annotations

import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

HELP = "hit rate, $ saved per 1,000 requests and hit vs miss latency of the response cache"

SESSION = "bench-cache"  # the workload's requests; the warm-up request has its own session

TOPICS = (
    "a rainbow",
    "gravity",
    "a volcano",
    "photosynthesis",
    "a glacier",
    "an eclipse",
    "a tide",
    "a comet",
    "thunder",
    "a desert",
    "a coral reef",
    "a magnet",
)


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=200, help="requests in the workload (default 200)")
    parser.add_argument(
        "--repeat", type=float, default=0.3, help="share of the requests that repeat an earlier prompt (default 0.3)"
    )
    parser.add_argument("--model", metavar="ID", help="a configured model (default: the first llama_cpp model)")
    parser.add_argument("--max-tokens", type=int, default=16, dest="max_tokens")
    parser.add_argument("--seed", type=int, default=0, help="shuffles which requests repeat and what (default 0)")
    parser.add_argument(
        "--data-dir", dest="data_dir", metavar="DIR", help="keep the run's store and logs here (default: a temp folder)"
    )


def workload(n: int, repeat: float, seed: int) -> list[str]:
    """n prompts of which round(n * repeat) repeat an earlier prompt (never the first)."""
    if n < 1 or not 0 <= repeat < 1:
        raise SystemExit("chatwatch: --requests must be at least 1 and --repeat from 0 to below 1")
    rng = random.Random(seed)
    repeats = set(rng.sample(range(1, n), min(n - 1, round(n * repeat))))
    prompts: list[str] = []
    unique: list[str] = []
    for i in range(n):
        if i in repeats:
            prompts.append(rng.choice(unique))
        else:
            k = len(unique)
            unique.append(f"Question {k + 1}: in one short sentence, what is {TOPICS[k % len(TOPICS)]}?")
            prompts.append(unique[-1])
    return prompts


def _settings(settings, model_id: str | None, folder: Path):
    """The configured model with its cache on, alone, in a store of its own."""
    from chatwatch.config import PrivacyConfig, StoreConfig

    if model_id:
        model = settings.model(model_id)
    else:
        model = next((m for m in settings.models if m.kind == "llama_cpp"), settings.default_model)
    model = model.model_copy(update={"cache": True, "fallbacks": [], "context_fallbacks": []})
    return settings.model_copy(
        update={
            "app": settings.app.model_copy(update={"data_dir": folder / "data", "log_dir": folder / "logs"}),
            "store": StoreConfig(),
            "privacy": PrivacyConfig(capture_content=True),
            "models": [model],
            "budgets": [],
            "otel": settings.otel.model_copy(update={"enabled": False}),
        }
    ), model


def _ask(rt, model_id: str, prompt: str, generation, session_id: str):
    from chatwatch.models.contract import Message

    started = time.perf_counter()
    with rt.chat(model_id, [Message("user", prompt)], generation, session_id=session_id) as reply:
        for _ in reply:
            pass
    return reply.record, time.perf_counter() - started


def run(args, settings) -> dict:
    from chatwatch.models.contract import GenerationSettings
    from chatwatch.reports.percentile import percentile
    from chatwatch.runtime import Runtime
    from chatwatch.store.record import exact_usd

    prompts = workload(args.requests, args.repeat, args.seed)
    generation = GenerationSettings(temperature=0.0, max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory(prefix="chatwatch-bench-cache-") as scratch:
        folder = Path(args.data_dir) if args.data_dir else Path(scratch)
        cfg, model = _settings(settings, args.model, folder)
        print(f"model {model.id}: {args.requests} requests, {args.repeat:.0%} repeats, max_tokens={args.max_tokens}")
        # The CLI's role: short-lived, no retention task, log lines to the file only (not one
        # console line per request between the figures).
        with Runtime(cfg, role="cli") as rt:
            _ask(rt, model.id, "Say hi.", generation, f"{SESSION}-warmup")  # the model load, out of the figures
            runs = []
            for i, prompt in enumerate(prompts, 1):
                runs.append(_ask(rt, model.id, prompt, generation, SESSION))
                if i % 50 == 0:
                    print(f"{i} requests, {sum(r.cache_hit for r, _ in runs)} hits")
    failed = [r for r, _ in runs if r.status != "ok"]
    hits = [(r, s) for r, s in runs if r.cache_hit]
    misses = [(r, s) for r, s in runs if not r.cache_hit and r.status == "ok"]
    priced = [r.saved_usd for r, _ in hits if r.saved_usd is not None]
    saved = sum(priced, Decimal(0))
    spent = [r.cost_usd for r, _ in misses]
    n = len(runs)

    def per_1000(total: Decimal) -> str:
        return exact_usd(total * 1000 / n)

    def p50_ms(side) -> float | None:
        return round(percentile([s for _, s in side], 50) * 1e3, 3) if side else None

    hit_ms, miss_ms = p50_ms(hits), p50_ms(misses)
    figures = {
        "bench": "cache",
        "model": model.id,
        "requests": n,
        "repeated": n - len(set(prompts)),
        "hits": len(hits),
        "hit_rate": round(len(hits) / n, 4),
        "errors": len(failed),
        "saved_usd_per_1000_requests": per_1000(saved) if priced or not hits else None,
        "unpriced_hits": len(hits) - len(priced),
        "spent_usd_per_1000_requests": per_1000(sum(spent, Decimal(0))) if None not in spent else None,
        "price_source": sorted({r.price_source for r, _ in misses}),
        "hit_p50_ms": hit_ms,
        "miss_p50_ms": miss_ms,
        "speedup": round(miss_ms / hit_ms, 1) if hit_ms and miss_ms else None,
    }
    print(
        f"hit rate {figures['hit_rate']:.1%}; saved ${figures['saved_usd_per_1000_requests']} per 1,000 requests; "
        f"p50 {hit_ms} ms (hit) vs {miss_ms} ms (miss)"
    )
    return figures
