"""CLI commands over the recorded history: export, stats, cleanup (see chatwatch/store/retention.py)."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import socket
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TextIO

from chatwatch.config import ConfigError, load
from chatwatch.store.record import exact_usd

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '24h', '7d', '2w' -> timedelta; a clear error otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise ConfigError(f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 24h, 7d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _filters(args):
    from chatwatch.reports.queries import Filters

    since = datetime.now(UTC) - parse_duration(args.since) if args.since else None
    return Filters(since=since, models=tuple(args.model or ()), statuses=tuple(args.status or ()))


def cmd_export(args) -> int:
    from chatwatch.reports.export import write_export
    from chatwatch.store.records import Store

    settings = load(args.config)
    filters = _filters(args)
    with Store.open(settings.store_url) as store:
        if args.output and args.output != "-":
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = write_export(store, out, args.format, filters)
            print(f"exported {count} records to {args.output}", file=sys.stderr)
        else:
            write_export(store, sys.stdout, args.format, filters)
    return 0


def cmd_stats(args) -> int:
    from chatwatch.reports.forecast import cost_forecast
    from chatwatch.reports.queries import per_model, summary
    from chatwatch.reports.savings import cache_savings
    from chatwatch.store.records import Store

    settings = load(args.config)
    filters = _filters(args)
    now = datetime.now(UTC)
    # The dashboard's store settings, so stats and the page take the same path (exact or
    # histogram) for the same range.
    with Store.from_settings(settings) as store:
        rows = [("all", summary(store, filters))] + [(s.model, s) for s in per_model(store, filters)]
        savings = [s for s in cache_savings(store, filters) if s.hits]
        budgets = budget_lines(store, settings, now)
        forecast = cost_forecast(store, now, models=tuple(args.model or ()))
    # Percentiles are the reports summary's (chatwatch.reports.percentile), never recomputed here;
    # both error rates, rescued, retries and fallbacks are reports.attempts' definitions.
    # requests: records (one per attempt); err%: failed attempts / attempts (the model error
    # rate); user%: requests whose last attempt failed / user requests ("all" row only: a user
    # request may span models).
    print(
        f"{'model':<22}{'requests':>9}{'errors':>8}{'err%':>7}{'user%':>7}{'rescued':>8}{'retries':>8}"
        f"{'fallback':>9}{'p50 s':>8}{'p95 s':>8}  cost"
    )
    for name, s in rows:
        o = s.outcomes
        p50, p95 = (_seconds(s, f) for f in ("latency_p50_s", "latency_p95_s"))
        user = _percent(o.user_error_rate) if name == "all" else "-"
        cost = cost_text(s.cost_usd, s.unpriced, s.requests)
        print(
            f"{name:<22}{s.requests:>9}{s.errors:>8}{_percent(s.error_rate):>7}{user:>7}{o.rescued:>8}{o.retries:>8}"
            f"{o.fallback_served:>9}{p50:>8}{p95:>8}  {cost}"
        )
    if savings:
        # hit%: hits / attempts of the model (reports/savings.py), over the same filters.
        print(f"\ncache savings\n{'model':<22}{'hits':>9}{'attempts':>9}{'hit%':>7}{'saved s':>10}  saved")
        for c in savings:
            print(
                f"{c.model:<22}{c.hits:>9}{c.attempts:>9}{_percent(c.hit_rate):>7}{c.saved_s:>10.2f}  "
                f"{cost_text(c.saved_usd, c.unpriced_hits, c.hits)}"
            )
    if budgets:
        print("\nbudgets (this period, UTC)")
        for line in budgets:
            print(line)
    if forecast.total is not None:  # before a whole day of requests there is nothing to project
        print("\nforecast")
        for line in forecast_lines(forecast):
            print(line)
    return 0


def budget_lines(store, settings, now: datetime) -> list[str]:
    """One line per [[budgets]] entry: its period's exact spend (the store's booking, as the
    dashboard shows it), limit, share used, action and reset, and the period's unpriced
    requests (no dollars booked: their cost is unknown)."""
    from chatwatch.reports.queries import Filters, summary
    from chatwatch.resilience.budget import Budgets
    from chatwatch.telemetry.pricing import Pricer

    configs = {b.name: b for b in settings.budgets}
    out = []
    for b in Budgets(store.engine, settings, Pricer(settings), instance="cli").status(now):
        c = configs[b.name]
        limit = "no dollar limit" if b.limit_usd is None else f"of ${exact_usd(Decimal(str(b.limit_usd)))}"
        tokens = f"{b.spent_tokens:,}" + ("" if b.limit_tokens is None else f" / {b.limit_tokens:,}")
        action = {"block": "refuses requests", "warn": "only warns", "fallback": f"sends requests to {c.fallback}"}
        unpriced = summary(
            store, Filters(since=b.period_start, until=now, models=(b.model,) if b.model else ())
        ).unpriced
        out.append(
            f"{b.name:<22}{b.period:<6}{b.model or 'all models':<16} spent ${exact_usd(b.spent_usd)} {limit}"
            f" ({_percent(b.used)}), tokens {tokens}, reserved ${exact_usd(b.reserved_usd)}, {unpriced} unpriced;"
            f" {action[c.action]} at the limit; resets {b.resets_at:%Y-%m-%d %H:%M} UTC"
        )
    return out


def forecast_lines(forecast) -> list[str]:
    """The month-end forecast (one with a total projection) as the dashboard shows it: exact
    spend so far, projections with their 95 % band, per model; what it leaves out
    (unpriced) said in words."""
    out = [f"UTC, {forecast.at:%Y-%m}: {forecast.method}"]
    for p in [forecast.total, *forecast.per_model]:
        (dl, dh), (ml, mh) = p.day_end_band, p.month_end_band
        out.append(
            f"{p.scope:<22} month ${exact_usd(p.month_spent_usd)}, today ${exact_usd(p.today_spent_usd)}; "
            f"day-end ${p.day_end_usd:,.4f} (95 %: {dl:,.4f}-{dh:,.4f}), "
            f"month-end ${p.month_end_usd:,.4f} (95 %: {ml:,.4f}-{mh:,.4f})"
        )
    if forecast.total.unpriced_requests:
        out.append(f"{forecast.total.unpriced_requests:,} requests this month have no price: in no sum")
    if forecast.unpriced_models:
        out.append(f"no forecast (cost unknown, unpriced): {', '.join(forecast.unpriced_models)}")
    return out


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _seconds(s, field: str) -> str:
    """A percentile in seconds, or the histogram's bound ("> 2 h") when it lies beyond it."""
    beyond = s.beyond.get(field)
    if beyond is not None:
        return beyond.text
    value = getattr(s, field)
    return "-" if value is None else f"{value:.2f}"


def cost_text(cost_usd: Decimal, unpriced: int, requests: int) -> str:
    """What `requests` cost, exactly and honestly: `$0.000123`, `$0.000123 + 2 unpriced`
    when some have no known price, `unpriced` when none has, `-` without requests. An
    unknown cost is never shown as $0."""
    if requests == 0:
        return "-"
    if unpriced >= requests:
        return "unpriced"
    text = f"${exact_usd(cost_usd)}"
    return f"{text} + {unpriced} unpriced" if unpriced else text


# Stage names of the retention cleanup, as the progress bar calls them.
_STAGE_LABELS = {
    "requests": "raw records",
    "feedback": "feedback",
    "model_loads": "model loads",
    "record_losses": "record losses",
    "rollups": "rollups",
    "response_cache": "cached answers",
    "rate_events": "rate events",
    "budget_reservations": "budget reservations",
    "budget_usage": "budget periods",
}


class ProgressBar:
    """`deleting raw records: [#####.....] 50,000/100,000` on stderr: redrawn in place on a
    terminal; elsewhere (pipes, log files) a line per tenth done, so output stays short."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30):
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._stage: str | None = None
        self._tenth = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.finish()
            self._stage, self._tenth = stage, -1
        total = max(total, done, 1)
        filled = self.width * done // total
        line = (
            f"deleting {_STAGE_LABELS.get(stage, stage)}: "
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{total:,}"
        )
        if self.tty:
            self.stream.write("\r" + line)
        elif (tenth := 10 * done // total) != self._tenth:
            self._tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = None


def cmd_cleanup(args) -> int:
    from chatwatch.logs.configure import configure_logging
    from chatwatch.store.records import Store
    from chatwatch.store.retention import run_cleanup

    settings = load(args.config)
    older_than = parse_duration(args.older_than) if args.older_than else None
    if older_than is not None and older_than <= timedelta(0):
        raise ConfigError(f"invalid duration {args.older_than!r}: it must be more than zero")
    # The cleanup goes to this process's log file like every cleanup. log_days=inf: setting
    # up logging must not prune log files itself (the cleanup counts them; --dry-run keeps them).
    logs = configure_logging(
        settings.app.log_dir,
        role="cli",
        instance=settings.app.instance or socket.gethostname(),
        level=settings.logs.level,
        max_mb=settings.logs.max_mb,
        log_days=math.inf,
        console=False,
    )
    bar = ProgressBar(sys.stderr)
    with contextlib.closing(logs), Store.open(settings.store_url) as store:
        try:
            report = run_cleanup(
                store,
                settings.retention,
                settings.app.log_dir,
                dry_run=args.dry_run,
                older_than=older_than,
                progress=bar,
                trigger="cli",
                budget_configs=settings.budgets,
            )
        finally:
            bar.finish()
    r = report
    print(
        f"{'dry run: would delete' if r.dry_run else 'deleted'} "
        f"(raw rows before {r.raw_before:%Y-%m-%d %H:%M} UTC, rollups before {r.rollups_before:%Y-%m-%d %H:%M} UTC, "
        f"log files older than {settings.retention.log_days:g} days)"
    )
    for label, n in (
        ("raw records", r.requests),
        ("rollup rows", r.rollups),
        ("feedback", r.feedback),
        ("model loads", r.model_loads),
        ("record losses", r.record_losses),
        ("cached answers", r.response_cache),
        ("rate events", r.rate_events),
        ("budget periods", r.budget_usage),
        ("budget reservations", r.budget_reservations),
        ("log files", len(r.log_files)),
    ):
        print(f"  {label:<20}{n:>12,}")
    if r.bytes_freed is not None:
        print(f"  {'bytes freed':<20}{r.bytes_freed:>12,}  ({r.bytes_freed / 1e6:.1f} MB, SQLite)")
    return 0


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DURATION", help="only requests newer than this, e.g. 24h, 7d")
    p.add_argument("--model", metavar="ID", action="append", help="only this model (repeatable)")
    p.add_argument(
        "--status", choices=("ok", "error", "cancelled"), action="append", help="only this status (repeatable)"
    )


def add_data_commands(sub, common) -> None:
    p = sub.add_parser("export", help="export request records as CSV, JSON or JSONL")
    common(p)
    p.add_argument("--format", choices=("csv", "json", "jsonl"), default="jsonl")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    add_filter_arguments(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "stats",
        help="records, model and user-facing error rates, rescued, retries, fallbacks served, latency and cost per "
        "model; cache savings, budgets and the month-end forecast",
    )
    common(p)
    add_filter_arguments(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("cleanup", help="delete records, rollups and log files past retention")
    common(p)
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        dest="older_than",
        help="delete raw records older than this (e.g. 30d) instead of retention.raw_days",
    )
    p.set_defaults(func=cmd_cleanup)
