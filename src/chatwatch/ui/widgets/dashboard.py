"""Streamlit rendering of the dashboard and of one request's detail. Logic lives in the
pure modules (widgets/charts.py, widgets/format.py, reports/logsearch.py); this only lays it out.

Text that came from prompts, replies, errors or logs goes through st.dataframe, st.text
or st.code only, which show it as text (never markdown or HTML). Every table shows an
unknown cell as "—" (Streamlit's default is the English word "None").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import streamlit as st

from chatwatch.config import Settings
from chatwatch.i18n import t
from chatwatch.reports.dashboard import DashboardData
from chatwatch.reports.export import MEDIA_TYPES, Format
from chatwatch.reports.queries import Filters
from chatwatch.store.records import Store
from chatwatch.telemetry import memory
from chatwatch.ui.data import export_data, log_lines, request_attempts, request_detail
from chatwatch.ui.widgets import charts
from chatwatch.ui.widgets.format import (
    NONE,
    exact_usd,
    fmt_bytes,
    fmt_cost,
    fmt_int,
    fmt_pct,
    fmt_percentile,
    fmt_rate,
    fmt_satisfaction,
    fmt_seconds,
    fmt_time,
    label,
)

KPI_COLUMNS = 4  # wide enough for '12.3 tok/s' on a laptop screen
PERCENT = st.column_config.NumberColumn(format="%.2f %%")
SECONDS = st.column_config.NumberColumn(format="%.3f")
EMPTY_CELL = NONE  # what st.dataframe shows for a missing value


Kpi = tuple[str, str, str | None, str | None]  # label, value, delta (a neutral note), help


def kpis(data: DashboardData, lang: str, sample: memory.MemorySample) -> list[Kpi]:
    """(label, value, delta, help) of every KPI, in display order."""
    s = data.overview.summary
    o = s.outcomes  # both error rates and rescued: reports/attempts.py
    sat = data.satisfaction
    # "+N unpriced" goes under the cost as a neutral note, so the value itself stays readable.
    unpriced = t("dash.unpriced_suffix", lang, n=f"{s.unpriced:,}") if 0 < s.unpriced < s.requests else None
    return [
        (
            # What users asked; each retry or fallback is one more attempt (a record of its own).
            t("dash.kpi.requests", lang),
            fmt_int(o.user_requests),
            None,
            t("dash.kpi.requests.help", lang, records=f"{s.requests:,}", retries=f"{o.retries:,}"),
        ),
        (
            t("dash.kpi.error_rate", lang),
            fmt_pct(s.error_rate),
            None,
            t(
                "dash.kpi.error_rate.help",
                lang,
                failed=f"{o.failed_attempts:,}",
                attempts=f"{o.attempts:,}",
                refused=f"{o.refused:,}",
            ),
        ),
        (
            t("dash.kpi.user_error_rate", lang),
            fmt_pct(o.user_error_rate),
            None,
            t(
                "dash.kpi.user_error_rate.help",
                lang,
                failed=f"{o.failed_requests:,}",
                requests=f"{o.user_requests:,}",
            ),
        ),
        (
            t("dash.kpi.rescued", lang),
            fmt_int(o.rescued),
            None,
            t("dash.kpi.rescued.help", lang, retries=f"{o.retries:,}", fallbacks=f"{o.fallback_served:,}"),
        ),
        (
            t("dash.kpi.cancel_rate", lang),
            fmt_pct(s.cancelled / s.requests if s.requests else None),
            None,
            t("dash.kpi.cancel_rate.help", lang, cancelled=f"{s.cancelled:,}", requests=f"{s.requests:,}"),
        ),
        (t("dash.kpi.latency_mean", lang), fmt_seconds(s.latency_mean_s), None, None),
        (t("dash.kpi.latency_p50", lang), fmt_percentile(s, "latency_p50_s"), None, None),
        (t("dash.kpi.latency_p95", lang), fmt_percentile(s, "latency_p95_s"), None, None),
        (t("dash.kpi.latency_p99", lang), fmt_percentile(s, "latency_p99_s"), None, None),
        (t("dash.kpi.ttft_p50", lang), fmt_percentile(s, "ttft_p50_s"), None, None),
        (t("dash.kpi.ttft_p95", lang), fmt_percentile(s, "ttft_p95_s"), None, None),
        (
            t("dash.kpi.tokens_per_s", lang),
            fmt_rate(s.output_tokens_per_s),
            None,
            t("dash.kpi.tokens_per_s.help", lang),
        ),
        (t("dash.kpi.input_tokens", lang), fmt_int(s.input_tokens), None, None),
        (t("dash.kpi.output_tokens", lang), fmt_int(s.output_tokens), None, None),
        (
            t("dash.kpi.cost", lang),
            fmt_cost(s.cost_usd, s.unpriced, s.requests, lang, note=False),
            unpriced,
            t("dash.kpi.cost.help", lang, exact=exact_usd(s.cost_usd), unpriced=f"{s.unpriced:,}"),
        ),
        (t("dash.kpi.rss", lang), fmt_bytes(sample.rss_bytes), None, t("dash.kpi.rss.help", lang)),
        (
            t("dash.kpi.available", lang),
            fmt_bytes(sample.system_available_bytes),
            None,
            t("dash.kpi.available.help", lang),
        ),
        (
            t("dash.kpi.satisfaction", lang),
            fmt_satisfaction(sat.up, sat.total, lang),
            None,
            t("dash.kpi.satisfaction.help", lang, up=f"{sat.up:,}", total=f"{sat.total:,}"),
        ),
    ]


def render_dashboard(data: DashboardData, lang: str, updated: datetime, range_label: str) -> None:
    st.caption(t("dash.updated", lang, time=updated.strftime("%H:%M:%S"), range=range_label))
    st.caption(t(f"dash.method.{data.overview.summary.percentile_method}", lang))
    coverage = data.overview.summary.coverage  # retention cleaned up raw rows of this range
    if coverage is not None:
        if coverage.raw_from is None:
            st.caption(t("dash.coverage.none", lang))
        else:
            key = "dash.coverage.rollups" if coverage.counted else "dash.coverage.partial"
            st.caption(t(key, lang, date=fmt_time(coverage.raw_from)))
    if data.losses:
        st.warning(t("dash.losses", lang, n=f"{data.losses.count:,}", reasons="; ".join(data.losses.reasons)))
    items = kpis(data, lang, memory.sample())
    for start in range(0, len(items), KPI_COLUMNS):
        for col, (name, value, delta, help_) in zip(st.columns(KPI_COLUMNS), items[start : start + KPI_COLUMNS]):
            col.metric(name, value, delta, delta_color="off", delta_arrow="off", help=help_, border=True)
    ov = data.overview
    if ov.summary.requests == 0:
        st.info(t("dash.empty", lang))
    else:
        ts = ov.timeseries.frame
        colors = charts.model_colors([s.model or "?" for s in ov.per_model])
        left, right = st.columns([1, 2])
        left.plotly_chart(charts.model_share(ov.per_model, lang, colors), key="chart_share")
        right.plotly_chart(charts.requests_errors(ts, lang, colors), key="chart_requests")
        left, right = st.columns(2)
        left.plotly_chart(charts.latency_over_time(ts, lang, colors), key="chart_latency")
        right.plotly_chart(charts.tokens_cost_over_time(ts, lang, colors), key="chart_tokens_cost")
        left, right = st.columns(2)
        left.plotly_chart(charts.ttft_distribution(ov.ttft_histogram, lang, colors), key="chart_ttft")
        right.plotly_chart(charts.memory_over_time(data.memory, lang), key="chart_memory")
        st.subheader(t("dash.models_table", lang))
        st.dataframe(
            charts.model_table(ov.per_model, data.feedback, lang),
            hide_index=True,
            placeholder=EMPTY_CELL,
            column_config={
                t("dash.col.error_rate", lang): PERCENT,
                t("dash.col.satisfaction", lang): PERCENT,
                t("dash.col.latency_p50", lang): SECONDS,
                t("dash.col.latency_p95", lang): SECONDS,
                t("dash.col.ttft_p50", lang): SECONDS,
                t("dash.col.tokens_per_s", lang): st.column_config.NumberColumn(format="%.1f"),
                t("dash.col.cost_per_1k", lang): st.column_config.NumberColumn(
                    format="$%.4f", help=t("dash.col.cost_per_1k.help", lang)
                ),
            },
        )
        beyond = [
            f"{s.model} {t('dash.kpi.' + name.removesuffix('_s'), lang)} {b.text}"
            for s in ov.per_model
            for name, b in s.beyond.items()
            if not name.endswith("_p99_s")  # the table has no p99 column
        ]
        if beyond:
            st.caption(t("dash.beyond", lang, cells="; ".join(beyond)))
    st.subheader(t("dash.errors_table", lang))
    if data.recent_errors:
        st.dataframe(charts.errors_table(data.recent_errors, lang), hide_index=True, placeholder=EMPTY_CELL)
    else:
        st.caption(t("dash.no_errors", lang))


def render_export(store_at: Callable[[], Store], filters_at: Callable[[], Filters], lang: str, now: datetime) -> None:
    """One click each: the file is produced when clicked (a callable), never behind a button,
    for the view's filters at that moment (`filters_at()`).

    Draw this outside any auto-refreshing fragment: a redraw replaces the button's deferred
    file, and a click that lands on the replaced one gets no file ("Deferred file not
    found" on the server)."""
    st.subheader(t("dash.export", lang))
    stamp = now.strftime("%Y%m%d-%H%M%S")
    json_col, csv_col, _ = st.columns([1, 1, 3])
    for col, fmt in ((json_col, "json"), (csv_col, "csv")):
        col.download_button(
            t(f"dash.export.{fmt}", lang),
            data=_export(store_at, fmt, filters_at),
            file_name=f"chatwatch-requests-{stamp}.{fmt}",
            mime=MEDIA_TYPES[fmt],
            icon="⬇️",
            on_click="ignore",
            key=f"export_{fmt}",
            help=t("dash.export.help", lang),
        )


def _export(store_at: Callable[[], Store], fmt: Format, filters_at: Callable[[], Filters]) -> Callable[[], str]:
    """The file made at the click, from the store and view of that moment (the runtime may
    have been swapped by a config edit since the button was drawn)."""

    def produce() -> str:
        return export_data(store_at(), fmt, filters_at())()

    return produce


# --- one request ------------------------------------------------------------------------------


def render_request_detail(settings: Settings, request_id: str, lang: str) -> None:
    record, thumb = request_detail(request_id)
    if record is None:
        st.warning(t("req.not_found", lang))
        return
    st.code(record.id, language=None)
    fields, texts = st.columns([1, 1])
    with fields:
        st.markdown(f"**{t('req.fields', lang)}**")
        st.dataframe(charts.record_fields(record, lang), hide_index=True, height=420, placeholder=EMPTY_CELL)
    with texts:
        if record.error_message:
            st.markdown(f"**{t('req.error', lang)}**")
            kind = label("error_type", record.error_type, lang)
            st.code(f"[{kind}] {record.error_message}", language=None, wrap_lines=True)
        if record.prompt_text is None and record.response_text is None:
            st.caption(t("req.no_content", lang))
        for key, text in (("req.prompt", record.prompt_text), ("req.response", record.response_text)):
            if text is not None:
                st.markdown(f"**{t(key, lang)}**")
                st.text(text)
        st.markdown(f"**{t('req.feedback', lang)}**")
        if thumb is None:
            st.caption(t("req.feedback.none", lang))
        else:
            key = "req.feedback.up" if thumb.score else "req.feedback.down"
            st.caption(t(key, lang, time=fmt_time(thumb.created_at)))
    st.markdown(f"**{t('req.timeline', lang)}**")
    attempts = request_attempts(record.id)
    if len(attempts) > 1:
        st.dataframe(charts.attempt_timeline(attempts, lang), hide_index=True, placeholder=EMPTY_CELL)
    else:
        st.caption(t("req.timeline.single", lang))
    render_log_lines(settings, record.id, record.started_at, lang)


def render_log_lines(settings: Settings, request_id: str, started: datetime, lang: str) -> None:
    st.markdown(f"**{t('req.logs', lang)}**")
    scan = log_lines(str(settings.app.log_dir), request_id, started)
    if not scan.lines:
        st.caption(t("req.logs.none", lang, dir=settings.app.log_dir))
    else:
        rows = [
            {
                t("req.col.time", lang): str(d.get("timestamp", "")),
                t("req.col.level", lang): str(d.get("level", "")),
                t("req.col.logger", lang): str(d.get("logger", "")),
                t("req.col.log_message", lang): str(d.get("message", "")),
                t("req.col.file", lang): str(d.get("_file", "")),
            }
            for d in scan.lines
        ]
        st.dataframe(rows, hide_index=True, placeholder=EMPTY_CELL)
        with st.expander(t("req.logs.raw", lang)):
            st.code(
                "\n".join(
                    json.dumps({k: v for k, v in d.items() if k != "_file"}, ensure_ascii=False) for d in scan.lines
                ),
                language="json",
            )
    st.caption(t("req.logs.scanned", lang, lines=len(scan.lines), files=scan.files_scanned))
    if scan.capped:
        st.caption(t("req.logs.capped", lang, mb=round(scan.bytes_scanned / 1024 / 1024, 1)))
