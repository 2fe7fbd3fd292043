"""What each rule kind measures, and when it holds.

Every rule reads raw `requests` rows of its window with the (model, started_us) or
(started_us) index; windows are minutes to a day, so raw rows are cheap and exact.
Cancelled requests are the user's choice, not the model's health: every rule but
daily_cost (money spent is spent) ignores them.

Percentiles (latency_p95, ttft_p95) come from `chatwatch.reports.percentile.percentile`,
the dashboard's own function (numpy's linear method on the raw values), so "latency p95 >
2 s" fires exactly when the dashboard shows a p95 above 2 s for the same window, model and
statuses (ok and error: cancelled requests left out). Alerts always read the raw rows of
their window, whatever its size. The dashboard reads raw rows too ("exact", and the page
says so) while the whole hours around its range hold at most
`[dashboard] exact_percentiles_max_rows` requests; beyond that it shows the rollups'
histogram estimate (within 5 %) and may differ from the alert by that much, never more.

A window with fewer than `min_requests` requests (or none) is "no data": neither holding
nor clear, with no value, so an alert never "recovers" because requests stopped coming
(the engine then keeps it firing, resolves it as "no data" or fires on it, see engine.py)
-- unless the rule says `no_data = "zero"`: then the window measures 0 and clears.

latency_p95_anomaly, ttft_p95_anomaly, error_rate_anomaly and traffic_drop compare the
window with a baseline (alerts/baseline.py): the same window on each of the past 7 days, or
the `baseline_windows` windows right before it (`baseline = "recent"`, reaching back at most
7 days in all); their threshold is a ratio to that baseline, or with `score = "z"` a number
of its standard deviations (validated by baseline.validate_threshold).

circuit_open reads the circuit breakers' table instead (store/breakers.py, written by
resilience/breaker.py): it holds while a circuit in its scope is not closed (open, or
half-open with a probe deciding) and resolves as soon as it closes; its value is the number
of such circuits, and it never lacks data.

Units: error_rate a fraction (0.05 = 5 %), latencies in seconds, daily_cost in dollars per
UTC day, memory in MB (MiB, as `ps` and `top` count), consecutive_failures a count;
no_success has no threshold (a model with requests and not one success).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from chatwatch.alerts import baseline
from chatwatch.alerts.model import (
    BASELINE_CHOICES,
    BASELINE_KINDS,
    KINDS,
    NEEDS_DATA,
    NO_DATA_CHOICES,
    SCORE_CHOICES,
    SEVERITIES,
    US_PER_MIN,
    USES_MIN_REQUESTS,
    Measurement,
    Rule,
)
from chatwatch.alerts.text import Problem
from chatwatch.reports.percentile import percentile
from chatwatch.store.breakers import open_models
from chatwatch.store.record import LOCAL_REFUSALS
from chatwatch.store.schema import model_loads, requests

# A firing alert resolves only once its value is this far below the threshold, so a value
# hovering around the threshold does not flap between firing and resolved.
HYSTERESIS = 0.10
MB = 1 << 20
NANO_PER_USD = 1_000_000_000
US_PER_DAY = 86_400_000_000
# consecutive_failures reads at most this many latest requests per model.
STREAK_SCAN = 200
# Kinds compared continuously (hysteresis applies); counts resolve as soon as they stop holding.
_CONTINUOUS = frozenset({"error_rate", "latency_p95", "ttft_p95", "slow_response", "daily_cost", "memory"})


# --- validation ----------------------------------------------------------------------------


def validate(rule: Rule, *, known_models: Iterable[str] | None = None) -> dict[str, Problem]:
    """Problems with `rule`, by field name; empty when the rule can be saved."""
    errors: dict[str, Problem] = {}
    name = rule.name.strip()
    if not name:
        errors["name"] = Problem.of("err.name_required")
    elif len(name) > 200:
        errors["name"] = Problem.of("err.name_long")
    if rule.kind not in KINDS:
        errors["kind"] = Problem.of("err.kind", value=rule.kind, options=", ".join(KINDS))
    if rule.severity not in SEVERITIES:
        errors["severity"] = Problem.of("err.severity", value=rule.severity, options=", ".join(SEVERITIES))
    t = rule.threshold
    if not math.isfinite(t):
        errors["threshold"] = Problem.of("err.number")
    elif rule.kind == "error_rate" and not 0 < t <= 1:
        errors["threshold"] = Problem.of("err.fraction", value=t)
    elif rule.kind == "consecutive_failures" and (t < 1 or t != int(t)):
        errors["threshold"] = Problem.of("err.whole", value=t)
    elif rule.kind in ("latency_p95", "ttft_p95", "slow_response", "memory") and t <= 0:
        errors["threshold"] = Problem.of("err.positive", value=t)
    elif rule.kind == "daily_cost" and t < 0:
        errors["threshold"] = Problem.of("err.cost", value=t)
    elif rule.kind in BASELINE_KINDS and not baseline.validate_threshold(rule.kind, t, rule.score):
        key = "err.z" if rule.score == "z" else "err.drop" if rule.kind == "traffic_drop" else "err.ratio"
        errors["threshold"] = Problem.of(key, value=t, most=f"{baseline.Z_MAX:g}")
    if not (math.isfinite(rule.window_minutes) and 0 < rule.window_minutes <= 24 * 60):
        errors["window_minutes"] = Problem.of("err.window", value=rule.window_minutes)
    if rule.min_requests < 0 or rule.min_requests != int(rule.min_requests):
        errors["min_requests"] = Problem.of("err.min_requests", value=rule.min_requests)
    if not (math.isfinite(rule.for_minutes) and rule.for_minutes >= 0):
        errors["for_minutes"] = Problem.of("err.for_minutes", value=rule.for_minutes)
    if rule.no_data not in NO_DATA_CHOICES:
        errors["no_data"] = Problem.of("err.no_data", value=rule.no_data, options=", ".join(NO_DATA_CHOICES))
    if rule.baseline not in BASELINE_CHOICES:
        errors["baseline"] = Problem.of("err.baseline", value=rule.baseline, options=", ".join(BASELINE_CHOICES))
    if rule.score not in SCORE_CHOICES:
        errors["score"] = Problem.of("err.score", value=rule.score, options=", ".join(SCORE_CHOICES))
    n = rule.baseline_windows
    if n != int(n) or n < 2:
        errors["baseline_windows"] = Problem.of("err.baseline_windows", value=n)
    elif rule.kind in BASELINE_KINDS and rule.baseline == "recent" and "window_minutes" not in errors:
        if n * rule.window_minutes > baseline.RECENT_MAX_MINUTES:
            errors["baseline_windows"] = Problem.of(
                "err.recent_span", value=n, window=f"{rule.window_minutes:g}", days=baseline.BASELINE_DAYS
            )
    if rule.model is not None and known_models is not None and rule.model not in set(known_models):
        errors["model"] = Problem.of("err.model", value=rule.model)
    return errors


# --- measurement ---------------------------------------------------------------------------

Measure = Callable[[sa.Connection, Rule, int], Measurement]


def measure(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    """The rule's value at `now_us` from the store (read-only)."""
    return _MEASURES[rule.kind](conn, rule, now_us)


def _window(rule: Rule, now_us: int) -> int:
    return now_us - int(rule.window_minutes * US_PER_MIN)


def _scoped(stmt: sa.Select, rule: Rule, since_us: int, now_us: int, *, cancelled: bool = False) -> sa.Select:
    stmt = stmt.where(requests.c.started_us >= since_us, requests.c.started_us <= now_us)
    if rule.model is not None:
        stmt = stmt.where(requests.c.model == rule.model)
    if not cancelled:
        stmt = stmt.where(requests.c.status != "cancelled")
    return stmt


def enough_data(rule: Rule, samples: int) -> bool:
    """Whether `samples` requests (or readings) in the window are enough to measure `rule`."""
    if rule.kind not in NEEDS_DATA:
        return True
    return samples >= max(1, rule.min_requests) if rule.kind in USES_MIN_REQUESTS else samples > 0


def _result(rule: Rule, value: float | None, samples: int, holds: bool, model: str | None) -> Measurement:
    if value is None or not enough_data(rule, samples):
        if rule.no_data == "zero":
            # The user's choice: an empty window measures 0, which meets no kind's limit (every
            # threshold here is positive, daily_cost's "above" included) and so clears.
            return Measurement(value=0.0, samples=samples, holds=False, clear=True, model=rule.model)
        # Nothing to compare: neither holding nor clear, and no value made up from nothing.
        return Measurement(value=None, samples=samples, holds=False, clear=False, no_data=True)
    if holds:
        clear = False
    elif rule.kind not in _CONTINUOUS:
        clear = True
    else:
        clear = value <= rule.threshold * (1 - HYSTERESIS)
    return Measurement(
        value=value, samples=samples, holds=holds, clear=clear, model=model if rule.model is None else rule.model
    )


def _error_rate(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    errors = sa.func.sum(sa.case((requests.c.status == "error", 1), else_=0))
    stmt = _scoped(sa.select(requests.c.model, sa.func.count(), errors), rule, _window(rule, now_us), now_us)
    # The model error rate: chatwatch's own refusals (open circuit, budget, rate limit) never reached a model.
    stmt = stmt.where(requests.c.error_type.is_(None) | requests.c.error_type.not_in(LOCAL_REFUSALS))
    rows = conn.execute(stmt.group_by(requests.c.model)).all()
    total = sum(r[1] for r in rows)
    failed = sum(int(r[2] or 0) for r in rows)
    if not total:
        return _result(rule, None, 0, False, None)
    worst = max(rows, key=lambda r: (int(r[2] or 0), r[0]))
    value = failed / total
    return _result(rule, value, total, value >= rule.threshold, worst[0] if failed else None)


def _p95(column: sa.Column) -> Measure:
    def run(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
        stmt = _scoped(sa.select(requests.c.model, column), rule, _window(rule, now_us), now_us)
        rows = conn.execute(stmt.where(column.isnot(None))).all()
        if not rows:
            return _result(rule, None, 0, False, None)
        by_model: dict[str, list[float]] = defaultdict(list)
        for model, v in rows:
            by_model[model].append(v)
        value = percentile([v for _, v in rows], 95)
        worst = max(by_model, key=lambda m: (percentile(by_model[m], 95), m))
        return _result(rule, value, len(rows), value > rule.threshold, worst)

    return run


def _slow_response(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    stmt = _scoped(
        sa.select(requests.c.model, sa.func.max(requests.c.latency_s), sa.func.count()),
        rule,
        _window(rule, now_us),
        now_us,
    )
    rows = conn.execute(stmt.where(requests.c.latency_s.isnot(None)).group_by(requests.c.model)).all()
    if not rows:
        return _result(rule, None, 0, False, None)
    model, value, _ = max(rows, key=lambda r: (r[1], r[0]))
    return _result(rule, value, sum(r[2] for r in rows), value > rule.threshold, model)


def _consecutive_failures(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    # Each model's newest STREAK_SCAN outcomes in one query (not a query per model).
    newest_first = sa.func.row_number().over(partition_by=requests.c.model, order_by=requests.c.started_us.desc())
    recent = _scoped(
        sa.select(requests.c.model, requests.c.status, newest_first.label("rank")), rule, _window(rule, now_us), now_us
    ).subquery()
    rows = conn.execute(
        sa.select(recent.c.model, recent.c.status)
        .where(recent.c.rank <= STREAK_SCAN)
        .order_by(recent.c.model, recent.c.rank)
    ).all()
    if not rows:
        return _result(rule, None, 0, False, None)
    streaks: dict[str, int] = {}
    broken: set[str] = set()
    for model, status in rows:  # newest first per model: count errors until the first non-error
        if model in broken:
            continue
        if status == "error":
            streaks[model] = streaks.get(model, 0) + 1
        else:
            streaks.setdefault(model, 0)
            broken.add(model)
    best_model, best_streak = None, 0
    for model in sorted(streaks):  # ties go to the first model by name, as before
        if streaks[model] > best_streak:
            best_model, best_streak = model, streaks[model]
    return _result(rule, float(best_streak), len(rows), best_streak >= rule.threshold, best_model)


def _no_success(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    ok = sa.func.sum(sa.case((requests.c.status == "ok", 1), else_=0))
    stmt = _scoped(sa.select(requests.c.model, sa.func.count(), ok), rule, _window(rule, now_us), now_us)
    rows = conn.execute(stmt.group_by(requests.c.model)).all()
    need = max(1, rule.min_requests)
    down = [(n, model) for model, n, oks in rows if n >= need and not int(oks or 0)]
    samples = max((r[1] for r in rows), default=0)  # "enough data" is per model
    if not down:
        return _result(rule, 0.0 if rows else None, samples, False, None)
    n, model = max(down)
    return _result(rule, float(n), samples, True, model)


def _daily_cost(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    day_start = now_us - now_us % US_PER_DAY  # UTC midnight
    stmt = _scoped(
        sa.select(requests.c.model, sa.func.sum(requests.c.cost_nanousd), sa.func.count()),
        rule,
        day_start,
        now_us,
        cancelled=True,
    )
    rows = conn.execute(stmt.group_by(requests.c.model)).all()
    total = sum(int(r[1] or 0) for r in rows)
    value = total / NANO_PER_USD
    worst = max(rows, key=lambda r: (int(r[1] or 0), r[0]))[0] if total else None
    # A new day starts at $0: always a value, never "no data".
    return _result(rule, value, sum(r[2] for r in rows), value > rule.threshold, worst)


def _memory(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    """The latest RSS each process reported in the window (after a request or a model
    load); the value is the largest of them."""
    since = _window(rule, now_us)
    req = _scoped(
        sa.select(requests.c.instance, requests.c.started_us, requests.c.rss_after_bytes, requests.c.model),
        rule,
        since,
        now_us,
        cancelled=True,
    ).where(requests.c.rss_after_bytes.isnot(None))
    loads = sa.select(
        model_loads.c.instance, model_loads.c.loaded_us, model_loads.c.rss_after_bytes, model_loads.c.model
    ).where(
        model_loads.c.loaded_us >= since,
        model_loads.c.loaded_us <= now_us,
        model_loads.c.rss_after_bytes.isnot(None),
    )
    if rule.model is not None:
        loads = loads.where(model_loads.c.model == rule.model)
    latest: dict[str, tuple[int, int, str]] = {}
    n = 0
    for stmt in (req, loads):
        for instance, at, rss, model in conn.execute(stmt):
            n += 1
            if instance not in latest or at > latest[instance][0]:
                latest[instance] = (at, rss, model)
    if not latest:
        return _result(rule, None, 0, False, None)
    _, rss, model = max(latest.values(), key=lambda v: v[1])
    value = rss / MB
    return _result(rule, value, n, value > rule.threshold, model)


def _circuit_open(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    """Circuits of the rule's model (or any model) that are not closed; blames the one
    open longest."""
    rows = [r for r in open_models(conn) if rule.model is None or r.model == rule.model]
    rows.sort(key=lambda r: (r.opened_us or now_us, r.model))
    return _result(rule, float(len(rows)), len(rows), bool(rows), rows[0].model if rows else None)


_MEASURES: dict[str, Measure] = {
    "error_rate": _error_rate,
    "consecutive_failures": _consecutive_failures,
    "latency_p95": _p95(requests.c.latency_s),
    "ttft_p95": _p95(requests.c.ttft_s),
    "slow_response": _slow_response,
    "daily_cost": _daily_cost,
    "memory": _memory,
    "no_success": _no_success,
    "circuit_open": _circuit_open,
    # Compared with the same window of the past days (alerts/baseline.py).
    **dict.fromkeys(BASELINE_KINDS, baseline.measure),
}
